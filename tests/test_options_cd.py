"""Options C and D: conditioning tokens are given (no loss, never sampled), masks hold, both learn."""

from __future__ import annotations

import pytest
import torch

from foresight.features import encode_batch
from foresight.models.ltx import pack
from tests.helpers import TWIN_LORA, build, fit


@pytest.fixture(scope="module")
def option_c(twin_dir, batch):
    module = build("C", twin_dir)
    return module, encode_batch(batch, module.vlm, module.ltx)


def test_c_conditioning_noise_does_not_change_the_loss(option_c, monkeypatch):
    module, feats = option_c
    opt = module.option
    inp = opt.dit_input(
        module.adapter, module.ltx, feats, feats.target_tokens(), opt.condition_mask(feats, False), False
    )
    base = torch.randn(inp.tokens.shape, generator=torch.Generator().manual_seed(0))
    other = torch.where(inp.cond[..., None], torch.randn_like(base) * 50, base)  # differs only where given

    def loss_with(noise):
        monkeypatch.setattr(torch, "randn_like", lambda x: noise.to(x))
        return opt.flow_loss(module.ltx, inp, feats.num_tokens, fixed_t=0.5)

    assert inp.cond[:, : inp.tokens.shape[1] - feats.num_tokens].all()  # adapter tokens are given
    assert torch.equal(loss_with(base), loss_with(other))
    monkeypatch.undo()
    changed = torch.where(inp.cond[..., None], base, base + 1)  # differs where generated: must matter
    assert not torch.equal(loss_with(base), loss_with(changed))


@pytest.mark.parametrize("placement", ["prepend", "target"])
def test_c_given_tokens_bit_identical_after_sampling(placement, twin_dir, batch):
    module = build("C", twin_dir, [f"option.placement={placement}", "option.cond_frames=2"])
    feats = encode_batch(batch, module.vlm, module.ltx)
    opt = module.option
    with torch.no_grad():
        for p in module.adapter.head.parameters():  # non-zero adapter output, so "given" is visible
            p.normal_()
        inp = opt.dit_input(
            module.adapter, module.ltx, feats, feats.known_tokens(), opt.condition_mask(feats, False), False
        )
        out = opt.generate(module.ltx, inp, feats.grid, None, torch.Generator().manual_seed(0))
    assert torch.equal(out[inp.cond], inp.tokens[inp.cond])
    k = inp.tokens.shape[1] - feats.num_tokens
    assert k == (2 * 4 if placement == "prepend" else feats.num_tokens)  # 2 frames of 2x2, or the target grid
    first = pack(feats.first_latent)
    assert torch.equal(out[:, k : k + first.shape[1]], first)  # the current frame too


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_d_padded_caption_positions_do_not_matter(mode, twin_dir, batch):
    module = build("D", twin_dir, [f"option.mode={mode}", "option.num_tokens=8"])
    feats = encode_batch(batch, module.vlm, module.ltx)
    text, mask = module.option.caption(module.adapter, feats, training=False)
    assert text.shape[1] == (8 if mode == "replace" else feats.text.shape[1] + 8)
    padded = ~feats.text_mask
    assert padded.any()
    feats.text = torch.where(padded[..., None], torch.randn_like(feats.text) * 100, feats.text)

    def loss():
        torch.manual_seed(0)
        return module.option.loss(module.adapter, module.ltx, feats, training=False, fixed_t=0.5)["loss"]

    before = loss()
    feats.text = torch.where(padded[..., None], torch.zeros_like(feats.text), feats.text)
    assert torch.allclose(before, loss(), atol=1e-5)


@pytest.mark.parametrize("option", ["C", "D"])
def test_c_and_d_overfit_a_fixed_batch(option, twin_dir, batch):
    module = build(option, twin_dir, [TWIN_LORA])
    losses = fit(module, encode_batch(batch, module.vlm, module.ltx), 150)
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.2 * first, f"option {option}: loss {first:.4f} -> {last:.4f}"


def test_c_trains_the_adapter_through_the_frozen_dit(option_c):
    module, feats = option_c
    module.adapter.zero_grad()
    with torch.no_grad():
        module.adapter.head.weight.normal_()
    module.option.loss(module.adapter, module.ltx, feats)["loss"].backward()
    assert module.adapter.in_proj[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in module.ltx.named_parameters() if "lora_" not in n)


def test_all_options_report_the_same_metric_keys(twin_dir, batch):
    keys = {}
    for option in "ABCD":
        module = build(option, twin_dir)
        keys[option] = set(module.scorer(module, batch, seed=0))
    scored = {
        f"{m}{s}"
        for m in ("latent_mse", "psnr", "ssim")
        for s in ("", "_copy_last", "_mismatched", "_instruction_gap")
    }
    scored |= {f"{m}{s}" for m in ("psnr", "ssim") for s in ("_copy_last_vae", "_vae_recon")}
    flow_keys = {f"diag/flow_t{q}" for q in (0.1, 0.3, 0.5, 0.7, 0.9)}
    recorded = {"diag/loss", "sampler/steps", "sampler/guidance", "sampler/dit_calls"}
    assert keys["A"] == scored | recorded  # no DiT, no flow loss
    assert keys["B"] == keys["C"] == keys["D"] == scored | recorded | flow_keys


def test_evaluation_is_reproducible(twin_dir, batch):
    module = build("D", twin_dir)
    a, b = module.scorer(module, batch, seed=3), module.scorer(module, batch, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["psnr_copy_last"] > 0 and 0 < a["ssim"] <= 1


def test_first_frame_probability_is_per_sample(twin_dir, batch):
    module = build("D", twin_dir, ["option.first_frame=0.5"])
    feats = encode_batch(batch, module.vlm, module.ltx)
    torch.manual_seed(0)
    masks = torch.stack(
        [module.option.condition_mask(feats, training=True) for _ in range(200)]
    )  # (200, B, N)
    per_sample = masks[..., 0].float().mean(0)  # how often each sample got its first frame
    assert ((per_sample > 0.35) & (per_sample < 0.65)).all()
    assert torch.equal(masks.any(-1), masks[..., 0])  # all tokens of frame 0 or none
    assert module.option.condition_mask(feats, training=False)[:, 0].all()  # always given at inference
    module.option.first_frame = 0.0
    assert not module.option.condition_mask(feats, training=False).any()


def test_guidance_uses_the_null_condition(twin_dir, batch):
    plain = build("C", twin_dir, ["option.sample_steps=20", "option.cond_dropout=0.1"])
    guided = build(
        "C", twin_dir, ["option.sample_steps=20", "option.cond_dropout=0.1", "option.guidance=3.0"]
    )
    guided.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for m in (plain, guided):
            m.adapter.head.weight.copy_(
                torch.linspace(-1, 1, m.adapter.head.weight.numel()).view_as(m.adapter.head.weight)
            )
    feats = encode_batch(batch, plain.vlm, plain.ltx)
    a = plain.option.sample(plain.adapter, plain.ltx, feats, torch.Generator().manual_seed(0))
    b = guided.option.sample(guided.adapter, guided.ltx, feats, torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)
    assert torch.equal(a[:, :, :1], b[:, :, :1]) and torch.equal(a[:, :, :1], feats.first_latent)
