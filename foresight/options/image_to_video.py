"""Baseline `i2v`: frozen LTX-Video image-to-video from the current frame and the caption.

No adapter output reaches the DiT: the current frame enters through LTX's first-frame path (clean,
t=0, never updated) and the caption through T5, and the release's own schedule generates the rest,
exactly as LTX's pipelines do (tests/test_parity.py holds it to diffusers' pipelines). It answers
"what does LTX-Video alone predict from this frame and this instruction?".
"""

from __future__ import annotations

from torch import Tensor

from foresight.features import Features
from foresight.models.ltx import LTXVideo
from foresight.options.diffusion import DiffusionOption, DiTInput


class ImageToVideo(DiffusionOption):
    name = "i2v"

    def dit_input(self, adapter, ltx: LTXVideo, feats: Features, target: Tensor, cond: Tensor, training: bool,
                  null: bool = False) -> DiTInput:
        return DiTInput(target, cond, ltx.coords(feats.positions(), feats.fps), feats.text, feats.text_mask)
