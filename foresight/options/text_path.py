"""Option D — text path: the adapter speaks to the DiT through its caption cross-attention.

The adapter emits `num_tokens` caption-sized tokens (4096-d for LTX's T5; the tiny twin's d_model
otherwise) that replace the T5 caption embedding or are appended after it (`mode`), as
MetaQuery- and LTX-2-style connectors do. The DiT (+ optional LoRA) is trained with LTX's own
flow-matching loss. Published VLM-to-generator bridges mostly take this path: the baseline.
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo
from foresight.options.diffusion import DiffusionOption, DiTInput

MAX_CAPTION_TOKENS = 256  # what LTX's DiT was trained to read


class TextPath(DiffusionOption):
    name = "D"

    def __init__(self, num_tokens: int = 64, mode: str = "replace", **base) -> None:
        super().__init__(**base)
        if mode not in ("replace", "append"):
            raise ValueError(
                f"option.mode={mode!r}: use 'replace' (adapter tokens only) or 'append' (after T5)"
            )
        if not 1 <= num_tokens <= MAX_CAPTION_TOKENS:
            raise ValueError(f"option.num_tokens={num_tokens} must be in 1..{MAX_CAPTION_TOKENS}")
        self.num_tokens, self.mode = num_tokens, mode

    def adapter_out_dim(self, ltx: LTXVideo) -> int:
        return ltx.caption_dim

    def caption(self, adapter: QueryAdapter, feats: Features, training: bool, null: bool = False):
        """(states (B, T', D), mask (B, T')) the DiT cross-attends to."""
        pos = torch.zeros(1, self.num_tokens, 3, device=feats.vlm_states.device)
        pos[..., 0] = torch.arange(self.num_tokens, device=pos.device)  # a 1-D row of tokens
        tokens = adapter(feats.vlm_states, feats.vlm_mask, pos)  # (B, K, D)
        tokens = torch.zeros_like(tokens) if null else self.drop(tokens, training)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)  # (B, K)
        if self.mode == "replace":
            return tokens, mask
        return torch.cat([feats.text.to(tokens), tokens], 1), torch.cat([feats.text_mask, mask], 1)

    def dit_input(
        self,
        adapter,
        ltx: LTXVideo,
        feats: Features,
        tokens: Tensor,
        cond: Tensor,
        training: bool,
        null: bool = False,
    ) -> DiTInput:
        text, text_mask = self.caption(adapter, feats, training, null)
        return DiTInput(tokens, cond, ltx.coords(feats.positions(), feats.fps), text, text_mask)
