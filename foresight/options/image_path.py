"""Option C — image/IC path: the adapter writes clean latent tokens into the DiT's own sequence.

The adapter emits K tokens of 128 latent channels with their own RoPE positions, either as
`cond_frames` extra latent frames just before the target (`placement: prepend`, where an earlier
clip would sit) or at the target's own positions (`placement: target`, as IC-LoRA references are
placed). They enter the sequence the way LTX feeds an image: clean, per-token timestep 0, no
loss, never updated by the sampler. The DiT + IC-LoRA learns LTX's flow-matching objective on the
target tokens from full noise; the adapter learns through the frozen DiT's attention.
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo, grid_positions
from foresight.options.diffusion import DiffusionOption, DiTInput


class ImagePath(DiffusionOption):
    name = "C"

    def __init__(self, placement: str = "prepend", cond_frames: int = 1, **base) -> None:
        super().__init__(**base)
        if placement not in ("prepend", "target"):
            raise ValueError(
                f"option.placement={placement!r}: use 'prepend' (extra frames before the target) "
                f"or 'target' (at the target's positions, IC-LoRA style)"
            )
        if cond_frames < 1:
            raise ValueError(f"option.cond_frames={cond_frames} must be >= 1")
        self.placement, self.cond_frames = placement, cond_frames

    def cond_positions(self, feats: Features) -> Tensor:
        """(K, 3) latent-unit positions of the adapter's tokens."""
        _, h, w = feats.grid
        device = feats.first_latent.device
        if self.placement == "target":
            return grid_positions(feats.grid, device=device)
        return grid_positions((self.cond_frames, h, w), frame_offset=-self.cond_frames, device=device)

    def dit_input(
        self,
        adapter: QueryAdapter,
        ltx: LTXVideo,
        feats: Features,
        target: Tensor,
        cond: Tensor,
        training: bool,
        null: bool = False,
    ) -> DiTInput:
        pos = self.cond_positions(feats)  # (K, 3)
        tokens = adapter(feats.vlm_states, feats.vlm_mask, pos[None])  # (B, K, 128)
        tokens = torch.zeros_like(tokens) if null else self.drop(tokens, training)
        given = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)  # (B, K)
        return DiTInput(
            tokens=torch.cat([tokens, target.to(tokens)], 1),  # (B, K+N, 128)
            cond=torch.cat([given, cond], 1),  # (B, K+N)
            coords=ltx.coords(torch.cat([pos, feats.positions()]), feats.fps),  # (B, 3, K+N)
            text=feats.text,
            text_mask=feats.text_mask,
        )
