"""The strong baselines as first-class runs: LTX continuing the clip (prefix) and frozen LTX
image-to-video (i2v), through the same training, scoring and keys as options A-D."""

from __future__ import annotations

import pytest
import torch

from foresight.eval.scoring import Scorer
from tests.helpers import build


def test_prefix_gives_the_earlier_context_frames_at_their_times(twin_dir, batch):
    module = build("prefix", twin_dir)
    assert module.adapter is None and all(
        "lora_" in n for n, p in module.named_parameters() if p.requires_grad
    )
    feats = module.features(batch)
    assert feats.context_latents.shape == (2, 128, 3, 2, 2)  # 4 context frames: 3 before the current one
    # each earlier frame is encoded alone, like the current frame is (the causal VAE's first latent frame)
    alone = module.ltx.encode((batch["context"][:, 1:2].permute(0, 4, 1, 2, 3).float() / 127.5 - 1))
    assert torch.allclose(feats.context_latents[:, :, 1:2], alone, atol=1e-5)
    opt = module.option
    inp = opt.dit_input(
        None, module.ltx, feats, feats.target_tokens(), opt.condition_mask(feats, False), False
    )
    k = 3 * 2 * 2
    assert inp.cond[:, :k].all() and inp.tokens.shape == (2, k + feats.num_tokens, 128)
    seconds = inp.coords[0, 0, :k:4] * 24  # one token per earlier frame: pixel-frame offsets at 24 fps
    assert seconds.tolist() == pytest.approx([-3.0, -2.0, -1.0])
    assert inp.coords[0, 0, k].item() == 0.0  # the current frame starts the future at t=0
    pred = opt.sample(None, module.ltx, feats, torch.Generator().manual_seed(0))
    assert torch.equal(pred[:, :, :1], feats.first_latent)


def test_baselines_report_the_same_keys_as_the_options(twin_dir, batch):
    scorer = Scorer(baselines=False)
    keys = {name: set(scorer(build(name, twin_dir), batch, seed=0)) for name in ("D", "prefix", "i2v")}
    assert keys["prefix"] == keys["D"] == keys["i2v"]


@pytest.mark.slow
def test_prefix_trains_through_train_py_and_i2v_has_nothing_to_train(tmp_path, twin_dir):
    from foresight.config import compose
    from foresight.training.train import train

    base = [
        f"paths.cache_dir={twin_dir}",
        f"paths.output_dir={tmp_path}",
        "logger=none",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "callbacks.sample_videos.every_n_steps=0",
    ]
    result = train(compose([*base, "+experiment=prefix"]))
    assert result["metrics"]["val/latent_mse"] > 0 and "val/latent_mse_instruction_gap" in result["metrics"]
    with pytest.raises(ValueError, match="option=i2v has nothing to train .* python evaluate.py option=i2v"):
        train(compose([*base, "option=i2v"]))


def test_i2v_guidance_is_the_releases_against_the_empty_prompt(twin_dir, batch):
    module = build("i2v", twin_dir)
    feats = module.features(batch)
    assert module.option.sampler_budget(module.ltx, feats) == (8, 3.0)  # the tiny twin inherits 0.9.5's CFG 3
    guided = module.option.sample(None, module.ltx, feats, torch.Generator().manual_seed(0))
    module.option.guidance = 1.0
    plain = module.option.sample(None, module.ltx, feats, torch.Generator().manual_seed(0))
    assert not torch.allclose(guided, plain) and torch.equal(guided[:, :, :1], plain[:, :, :1])


@pytest.mark.slow
def test_evaluate_py_scores_i2v_without_a_checkpoint_and_compare_shows_it(tmp_path, twin_dir):
    import json

    from foresight.eval.compare import compare
    from tests.helpers import run_script

    out = run_script(
        "evaluate.py",
        "option=i2v",
        f"paths.cache_dir={twin_dir}",
        "limit=2",
        "batch_size=2",
        f"out_dir={tmp_path / 'evals' / 'i2v'}",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "evals" / "i2v" / "evaluation.json").read_text())
    assert result["option"] == "i2v" and result["clips"] == 2 and result["config"]["run_group"] == "i2v"
    assert {"latent_mse", "psnr_copy_last_vae", "psnr_instruction_gap", "sampler/dit_calls"} <= set(
        result["metrics"]
    )
    assert (
        result["metrics"]["sampler/guidance"] == 3.0
    )  # the release's published CFG, against the empty prompt
    summary = compare([str(tmp_path / "evals")], tmp_path / "report")
    assert list(summary["groups"]) == ["i2v"]
    trains = run_script("evaluate.py", "option=B", f"paths.cache_dir={twin_dir}", timeout=600)
    assert (
        trains.returncode == 2
        and "option=B trains: give ckpt=RUN_DIR" in trains.stderr.strip().splitlines()[-1]
    )
