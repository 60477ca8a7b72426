"""Baseline `prefix`: LTX-Video fine-tuned to continue the clip, the field's standard way forward.

The earlier context frames are given to the DiT as a clean prefix before the future: each encoded on
its own by the causal VAE (a one-frame clip is one latent frame, as LTX encodes a conditioning image),
placed at its own time before the current frame (RoPE time -d/fps for the frame d frames back, as
LTXConditionPipeline places conditioning frames), at t=0, excluded from the loss, never updated by
the sampler; the current frame enters through the first-frame path and the instruction through T5.
An IC-LoRA learns LTX's flow-matching objective on the future, like LTX-2's trainer's `prefix`
condition. No VLM and no adapter: it answers "does the VLM path beat fine-tuning LTX to continue?".
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight.features import Features
from foresight.models.ltx import TEMPORAL, LTXVideo, grid_positions, pack
from foresight.options.diffusion import DiffusionOption, DiTInput


class Prefix(DiffusionOption):
    name = "prefix"
    uses_adapter = False
    needs_context_latents = True

    def dit_input(
        self,
        adapter,
        ltx: LTXVideo,
        feats: Features,
        target: Tensor,
        cond: Tensor,
        training: bool,
        null: bool = False,
    ) -> DiTInput:
        context = (
            feats.context_latents
        )  # (B, 128, C-1, h, w): the frames before the current one, oldest first
        if context is None:
            raise ValueError(
                "option=prefix needs the context frames' latents, which these features lack "
                "(a feature cache written before they were cached): re-run python preprocess.py"
            )
        prefix = pack(context)  # (B, (C-1)*h*w, 128)
        prefix = torch.zeros_like(prefix) if null else self.drop(prefix, training)
        pos = self.prefix_positions(feats)  # ((C-1)*h*w, 3)
        given = torch.ones(prefix.shape[:2], dtype=torch.bool, device=prefix.device)
        return DiTInput(
            tokens=torch.cat([prefix, target.to(prefix)], 1),  # (B, K+N, 128)
            cond=torch.cat([given, cond], 1),  # (B, K+N)
            coords=ltx.coords(torch.cat([pos, feats.positions()]), feats.fps),  # (B, 3, K+N)
            text=feats.text,
            text_mask=feats.text_mask,
        )

    @staticmethod
    def prefix_positions(feats: Features) -> Tensor:
        """(K, 3) latent-unit positions of the prefix: the frame d pixel frames before the current one
        sits at latent frame -d/8, which rope_coords turns into pixel frame -d (time -d/fps)."""
        k = feats.context_latents.shape[2]
        _, h, w = feats.grid
        pos = grid_positions((k, h, w), device=feats.first_latent.device)  # frames 0..k-1, oldest first
        pos[:, 0] = (pos[:, 0] - k) / TEMPORAL  # oldest at -k pixel frames ... newest at -1
        return pos
