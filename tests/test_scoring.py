"""Scores that mean the same for every option: baselines scored like predictions, and whether the
model uses the instruction at all."""

from __future__ import annotations

import torch

from foresight.eval.scoring import Scorer, gap, mismatched, ranks
from tests.helpers import build

TOLERANCE = {
    "latent_mse": 5e-5,
    "psnr": 1e-5,
    "ssim": 1e-7,
}  # float summation order, measured 8e-6, 5e-7, 7e-9


def test_copy_last_is_scored_raw_and_through_the_same_vae_round_trip(twin_dir, batch):
    module = build("A", twin_dir)
    m = Scorer()(module, batch, seed=0)
    # a prediction pays a VAE round trip that the raw copy-last does not: on the random twin VAE the
    # two copy-last scores differ, and the VAE's reconstruction of the truth bounds what any option reaches
    assert abs(m["psnr_copy_last"] - m["psnr_copy_last_vae"]) > 1.0
    assert m["psnr_vae_recon"] > m["psnr_copy_last_vae"] - 1e-3 or m["ssim_vae_recon"] > 0
    assert 0 < m["ssim_vae_recon"] <= 1


def test_instruction_gap_is_zero_when_the_text_cannot_matter(twin_dir, batch):
    """Option A whose adapter never sees the VLM states: the instruction cannot change its prediction."""
    module = build("A", twin_dir)
    with torch.no_grad():
        module.adapter.in_proj[1].weight.zero_()
        module.adapter.in_proj[1].bias.zero_()
        module.adapter.head.weight.normal_()  # a prediction that is not the zero-init mean
    m = Scorer(baselines=False)(module, batch, seed=0)
    # zero up to float summation order (the masks of different prompts differ in length)
    for name, tol in TOLERANCE.items():
        assert abs(m[f"{name}_instruction_gap"]) < tol, name


def test_instruction_gap_is_nonzero_when_the_text_must_matter(twin_dir, batch):
    """Frozen LTX image-to-video reads the caption through T5: other captions, other futures."""
    module = build("D", twin_dir)  # D's adapter tokens replace the caption: set them to depend on the text
    with torch.no_grad():
        module.adapter.head.weight.normal_()
    m = Scorer(baselines=False)(module, batch, seed=0)
    for name, tol in TOLERANCE.items():
        assert abs(m[f"{name}_instruction_gap"]) > 10 * tol, name
    assert m["latent_mse_instruction_gap"] == m["latent_mse_mismatched"] - m["latent_mse"]  # lower is better
    assert gap("psnr", torch.tensor(20.0), torch.tensor(18.0)) == 2.0  # higher is better


def test_mismatched_instructions_are_another_clips_and_need_two_clips(twin_dir, batch):
    other = mismatched({**batch, "prompt": ["p0", "p1"]})
    assert other["caption"] == [batch["caption"][1], batch["caption"][0]] and other["prompt"] == ["p1", "p0"]
    module = build("A", twin_dir)
    single = {k: v[:1] for k, v in batch.items()}
    assert not any(k.endswith("_instruction_gap") for k in Scorer(baselines=False)(module, single, seed=0))


def test_only_sampled_scores_rank():
    assert ranks("val/latent_mse") and ranks("eval/psnr") and ranks("val/lpips")
    assert not any(
        ranks(k)
        for k in (
            "val/diag/loss",
            "val/diag/flow_t0.5",
            "val/psnr_copy_last",
            "val/psnr_instruction_gap",
            "train/loss",
            "sampler/steps",
        )
    )


def test_the_sampler_budget_is_recorded_beside_the_scores(twin_dir, batch):
    """The tiny twin samples like the default release: 8 linear-quadratic steps (distilled-like times
    1, 0.99, ..., 0.725, 0.42); B from t*=0.6 takes the two below it; guidance doubles the DiT calls."""
    scorer = Scorer(baselines=False, instruction_gap=False)
    budgets = {}
    for option, overrides in (
        ("A", []),
        ("B", []),
        ("C", []),
        ("C", ["option.cond_dropout=0.1", "option.guidance=2"]),
    ):
        module = build(option, twin_dir, overrides)
        m = scorer(module, batch, seed=0)
        budgets[(option, bool(overrides))] = [
            m[f"sampler/{k}"].item() for k in ("steps", "guidance", "dit_calls")
        ]
    assert budgets == {
        ("A", False): [0, 1, 0],
        ("B", False): [2, 1, 2],
        ("C", False): [8, 1, 8],
        ("C", True): [8, 2, 16],
    }


def test_scores_are_computed_in_fp32_when_the_models_run_under_autocast(twin_dir, batch):
    """A bf16-mixed run validates under autocast, where SSIM's blurs (conv2d) would run in bf16 and its
    variance E[x^2] - E[x]^2 of 0..255 pixels cancels; the scores themselves run with autocast off."""
    from foresight.eval.metrics import ssim

    seen = []

    def probe(pred, truth):  # a frame metric that records the context it is computed in
        seen.append(torch.is_autocast_enabled("cpu"))
        return ssim(pred, truth)

    module = build("A", twin_dir)
    scorer = Scorer(frame_metrics={"probe": probe}, baselines=False, instruction_gap=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m = scorer(module, batch, seed=0)
    assert seen and not any(seen)
    assert m["probe"] == m["ssim"]  # the built-in SSIM too
    clip = batch["target"][:, 1:]
    brighter = (clip.int() + 3).clamp(max=255).to(torch.uint8)
    exact = ssim(brighter, clip)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (ssim(brighter, clip) - exact).abs().max() > 1e-3  # what the bf16 blurs would cost
