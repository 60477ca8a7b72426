"""What every adapter option shares: where the adapter's outputs live, and the known first frame.

An option is a small stateless object (its hyperparameters only). The LightningModule owns the
adapter and the frozen LTX; an option says how they make a loss from `Features` and how they
sample a future from them, so all options share one training loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo


class Option:
    """Base: the adapter predicts one 128-channel latent per target token (what A and B need)."""

    name = "base"

    def __init__(self, first_frame: float = 1.0, lora: dict | None = None) -> None:
        # first_frame: probability per training sample that the real current frame conditions the
        # generation through LTX's first-frame path; at inference it is always used when > 0.
        if not 0.0 <= first_frame <= 1.0:
            raise ValueError(f"option.first_frame={first_frame} is a probability; use a value in [0, 1]")
        self.first_frame = first_frame
        self.lora = dict(lora) if lora else None

    def adapter_out_dim(self, ltx: LTXVideo) -> int:
        return ltx.latent_channels

    def condition_mask(self, feats: Features, training: bool) -> Tensor:
        """(B, N) bool: tokens given rather than generated (the first latent frame, per sample)."""
        mask = feats.first_frame_mask()
        if self.first_frame == 0.0:
            return torch.zeros_like(mask)
        if training and self.first_frame < 1.0:
            keep = torch.rand(feats.batch_size, device=mask.device) < self.first_frame  # (B,)
            mask = mask & keep[:, None]
        return mask

    def estimate(self, adapter: QueryAdapter, feats: Features, cond: Tensor) -> Tensor:
        """The adapter's clean-latent estimate ẑ0 (B, N, 128), known tokens put in place."""
        z_hat = adapter(feats.vlm_states, feats.vlm_mask, feats.positions()[None])  # (B, N, 128)
        return torch.where(cond[..., None], feats.known_tokens(), z_hat)

    def loss(self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features,
             training: bool = True) -> dict[str, Tensor]:
        """The loss; returns {"loss": scalar, ...named parts for logging}. training=False: no dropped conditions."""
        raise NotImplementedError

    def sample(self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features,
               generator: torch.Generator | None = None) -> Tensor:
        """Predicted future latents (B, 128, f, h, w), normalised; frame 0 is the known frame."""
        raise NotImplementedError
