"""Option A — clean latents: the adapter regresses the target latents directly.

No DiT call in training or sampling: the cheapest option, and the floor the others must beat.
Inference decodes ẑ0 with the denoising decoder (the caller blends 0.025 noise, t=0.05).
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight.features import Features
from foresight.flow import masked_mse
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo, unpack
from foresight.options.base import Option


class CleanLatents(Option):
    name = "A"
    uses_dit = False

    def loss(
        self,
        adapter: QueryAdapter,
        ltx: LTXVideo,
        feats: Features,
        training: bool = True,
        fixed_t: float | None = None,
    ) -> dict[str, Tensor]:
        cond = self.condition_mask(feats, training)  # (B, N)
        z_hat = self.estimate(adapter, feats, cond)  # (B, N, 128)
        loss = masked_mse(z_hat, feats.target_tokens(), ~cond)
        return {"loss": loss, "regression": loss.detach()}

    @torch.no_grad()
    def sample(
        self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features, generator: torch.Generator | None = None
    ) -> Tensor:
        z_hat = self.estimate(adapter, feats, self.condition_mask(feats, training=False))
        return unpack(z_hat, feats.grid)
