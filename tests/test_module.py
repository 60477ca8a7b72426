"""Options A and B through the LightningModule: only adapter/LoRA train, and each option learns."""

from __future__ import annotations

import pytest
import torch

from foresight.features import encode_batch
from foresight.models.ltx import pack
from tests.helpers import TWIN_LORA, build, fit


@pytest.mark.parametrize("option,trainable", [("A", {"adapter."}), ("B", {"adapter.", "lora_"})])
def test_only_adapter_and_lora_train(option, trainable, twin_dir, batch):
    module = build(option, twin_dir)
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert names and all(any(t in n for t in trainable) for n in names)
    assert any("lora_" in n for n in names) == (option == "B")
    frozen = {n: p.detach().clone() for n, p in module.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    fit(module, encode_batch(batch, module.vlm, module.ltx), steps=2)
    for n, p in module.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen weight {n} changed"
    assert any(not torch.equal(p, before[n]) for n, p in module.named_parameters() if n in before)
    assert set(module.trainable_state_dict()) == set(names)


@pytest.mark.parametrize("option,steps", [("A", 100), ("B", 150)])
def test_option_overfits_a_fixed_batch(option, steps, twin_dir, batch):
    module = build(option, twin_dir, [TWIN_LORA] if option == "B" else [])
    losses = fit(module, encode_batch(batch, module.vlm, module.ltx), steps)
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.2 * first, f"option {option}: loss {first:.4f} -> {last:.4f}"


def test_partial_diffusion_improves_on_the_adapter_estimate(twin_dir, batch):
    """B's sampler, from ẑ0 noised to t*, ends closer to z0 than ẑ0 itself.

    The adapter is made too small to fit the batch (a 2-wide bottleneck), so ẑ0 stays imperfect
    and the DiT + LoRA, trained on B's own objective with fresh noise, has something to correct.
    """
    module = build("B", twin_dir, [TWIN_LORA, "adapter.width=2", "adapter.depth=1", "adapter.heads=1"])
    feats = encode_batch(batch, module.vlm, module.ltx)
    fit(module, feats, 300, fixed_draws=False)
    z0, future = feats.target_tokens(), ~feats.first_frame_mask()
    with torch.no_grad():
        z_hat = module.option.estimate(module.adapter, feats, feats.first_frame_mask())
        err_hat = (z_hat - z0)[future].pow(2).mean().item()
        err_sample = (
            sum(
                (
                    pack(
                        module.option.sample(
                            module.adapter, module.ltx, feats, torch.Generator().manual_seed(s)
                        )
                    )
                    - z0
                )[future]
                .pow(2)
                .mean()
                .item()
                for s in range(4)
            )
            / 4
        )
    assert err_sample < 0.8 * err_hat, (err_sample, err_hat)


def test_prediction_features_need_no_future(twin_dir, batch):
    """Without target frames only the current frame is encoded; it matches the training path's frame 0."""
    module = build("A", twin_dir)
    train_feats = encode_batch(batch, module.vlm, module.ltx)
    pred_feats = encode_batch(
        {k: v for k, v in batch.items() if k != "target"}, module.vlm, module.ltx, future_frames=17
    )
    assert pred_feats.target is None and pred_feats.grid == train_feats.grid == (3, 2, 2)
    assert torch.allclose(pred_feats.first_latent, train_feats.first_latent, atol=1e-4)
    with pytest.raises(ValueError, match="no target latents"):
        pred_feats.target_tokens()
    out = module.option.sample(module.adapter, module.ltx, pred_feats)
    assert out.shape == train_feats.target.shape
