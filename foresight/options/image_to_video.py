"""Baseline `i2v`: frozen LTX-Video image-to-video from the current frame and the caption.

No adapter output reaches the DiT: the current frame enters through LTX's first-frame path (clean,
t=0, never updated) and the caption through T5, and the release's own sampler generates the rest,
exactly as LTX's pipelines do (tests/test_parity.py holds it to diffusers' pipelines): its schedule,
and with `guidance: null` its published classifier-free guidance against the empty prompt
(diffusers' default negative prompt). It answers "what does LTX-Video alone predict from this frame
and this instruction?". Nothing trains; the baseline is scored by evaluate.py without a checkpoint.
"""

from __future__ import annotations

from torch import Tensor

from foresight.features import Features
from foresight.models.ltx import LTXVideo
from foresight.options.diffusion import DiffusionOption, DiTInput


class ImageToVideo(DiffusionOption):
    name = "i2v"
    uses_adapter = False
    learned_null = False  # LTX learned its unconditional prediction from empty prompts

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
        text, mask = feats.text, feats.text_mask
        if null:  # the empty prompt through T5
            if ltx.text_encoder is None:
                raise ValueError(
                    "option=i2v with guidance needs T5 for the empty prompt; encode live, not from the cache"
                )
            text, mask = ltx.text_encoder([""] * feats.batch_size)
        return DiTInput(target, cond, ltx.coords(feats.positions(), feats.fps), text, mask)
