"""What every adapter option shares: where the adapter's outputs live, and the known first frame.

An option is a small stateless object (its hyperparameters only). The LightningModule owns the
adapter and the frozen LTX; an option says how they make a loss from `Features` and how they
sample a future from them, so all options share one training loop. The math of each: docs/options.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight import flow
from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo


class Option:
    """Base: the adapter predicts one 128-channel latent per target token (what A and B need)."""

    name = "base"
    uses_dit = True  # whether the loss has a flow-matching term (validation reports it per t)
    uses_adapter = True  # baselines without one (prefix, i2v) also load no VLM
    needs_context_latents = False  # whether features must carry the earlier context frames' latents

    def __init__(self, first_frame: float = 1.0, lora: dict | None = None) -> None:
        # first_frame: probability per training sample that the real current frame conditions the
        # generation through LTX's first-frame path; at inference it is always used when > 0.
        if not 0.0 <= first_frame <= 1.0:
            raise ValueError(f"option.first_frame={first_frame} is a probability; use a value in [0, 1]")
        self.first_frame = first_frame
        self.lora = dict(lora) if lora else None

    @property
    def trains(self) -> bool:
        """Whether there is anything to train (an adapter or a LoRA)."""
        return self.uses_adapter or self.lora is not None

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

    def flow_times(self, batch: int, num_tokens: int, fixed_t: float | None, device) -> Tensor:
        """(B,) flow times: the shifted logit-normal draw, or a fixed value for validation."""
        if fixed_t is None:
            return flow.sample_t(batch, num_tokens, device=device)
        return torch.full((batch,), float(fixed_t), device=device)

    def estimate(self, adapter: QueryAdapter, feats: Features, cond: Tensor) -> Tensor:
        """The adapter's clean-latent estimate ẑ0 (B, N, 128), known tokens put in place."""
        z_hat = adapter(feats.vlm_states, feats.vlm_mask, feats.positions()[None])  # (B, N, 128)
        return torch.where(cond[..., None], feats.known_tokens(), z_hat)

    def loss(
        self,
        adapter: QueryAdapter,
        ltx: LTXVideo,
        feats: Features,
        training: bool = True,
        fixed_t: float | None = None,
    ) -> dict[str, Tensor]:
        """The loss; returns {"loss": scalar, ...named parts for logging}.

        training=False: no dropped conditions. fixed_t: evaluate the DiT's flow loss at this flow
        time instead of a sampled one (validation quantiles; options without a DiT ignore it).
        """
        raise NotImplementedError

    def sample(
        self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features, generator: torch.Generator | None = None
    ) -> Tensor:
        """Predicted future latents (B, 128, f, h, w), normalised; frame 0 is the known frame."""
        raise NotImplementedError

    def sampler_budget(self, ltx: LTXVideo, feats: Features) -> tuple[int, float]:
        """(Euler steps, guidance scale) of this option's sampler at these features' size."""
        return 0, 1.0
