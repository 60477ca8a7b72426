"""Option B — partial diffusion: the adapter's ẑ0, noised to t*, finished by the DiT (+ LoRA).

Sampling starts at t* and goes on along the release's own schedule (the times of its
`sample_steps`-step schedule below t*, as LTX's partial denoising does; for a distilled release, the
points of its fixed list below t*, so t* is best set to one of them).

Training sums the adapter's regression loss and a flow-matching loss for the DiT on the straight
path the sampler will actually follow: from x_{t*} = (1-t*)·ẑ0 + t*·e at t* to z0 at 0, velocity
(x_{t*} - z0)/t* (foresight.flow.partial_path), at times drawn where that sampler steps: one of its
intervals uniformly, then uniformly inside it (foresight.flow.sample_t_within). Whether ẑ0 is
detached there decides whether the DiT's loss also shapes the adapter (`detach_estimate`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight import flow
from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo, latent_noise, unpack
from foresight.options.base import Option


class PartialDiffusion(Option):
    name = "B"

    def __init__(
        self,
        t_star: float = 0.6,
        sample_steps: int | None = None,
        detach_estimate: bool = True,
        regression_weight: float = 1.0,
        flow_weight: float = 1.0,
        **base,
    ) -> None:
        super().__init__(**base)
        if not 0.0 < t_star <= 1.0:
            raise ValueError(f"option.t_star={t_star} must be in (0, 1]; e.g. 0.6")
        self.t_star = t_star
        self.sample_steps = sample_steps  # None: the release's published step count
        self.detach_estimate = detach_estimate
        self.regression_weight = regression_weight
        self.flow_weight = flow_weight

    def loss(
        self,
        adapter: QueryAdapter,
        ltx: LTXVideo,
        feats: Features,
        training: bool = True,
        fixed_t: float | None = None,
    ) -> dict[str, Tensor]:
        z0 = feats.target_tokens()  # (B, N, 128)
        cond = self.condition_mask(feats, training)  # (B, N)
        z_hat = self.estimate(adapter, feats, cond)  # (B, N, 128)
        regression = flow.masked_mse(z_hat, z0, ~cond)

        start = z_hat.detach() if self.detach_estimate else z_hat
        x_start = flow.partial_start(start, torch.randn_like(z0), self.t_star)  # (B, N, 128)
        if fixed_t is None:  # t in (0, t*], where the sampler steps
            t = flow.sample_t_within(self.times(ltx, feats), feats.batch_size, z0.device)  # (B,)
        else:  # validation: a fixed fraction of t*
            t = torch.full((feats.batch_size,), self.t_star * fixed_t, device=z0.device)
        x_t, v = flow.partial_path(x_start, z0, t, self.t_star)  # (B, N, 128) each
        x_t = torch.where(cond[..., None], z0, x_t)  # conditioning tokens stay clean
        t_tok = flow.token_timesteps(t, cond, feats.num_tokens)  # (B, N), 0 on conditioning
        v_pred = ltx.velocity(
            x_t, t_tok, ltx.coords(feats.positions(), feats.fps), feats.text, feats.text_mask
        )
        fm = flow.masked_mse(v_pred, v, ~cond)

        loss = self.regression_weight * regression + self.flow_weight * fm
        return {"loss": loss, "regression": regression.detach(), "flow": fm.detach()}

    @torch.no_grad()
    def sample(
        self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features, generator: torch.Generator | None = None
    ) -> Tensor:
        cond = self.condition_mask(feats, training=False)  # (B, N)
        z_hat = self.estimate(adapter, feats, cond)  # (B, N, 128)
        noise = latent_noise(feats.batch_size, z_hat.shape[-1], feats.grid, generator, z_hat.device)
        x = torch.where(cond[..., None], z_hat, flow.partial_start(z_hat, noise, self.t_star))
        coords = ltx.coords(feats.positions(), feats.fps)

        def velocity(x_t: Tensor, t_tok: Tensor) -> Tensor:
            return ltx.velocity(x_t, t_tok, coords, feats.text, feats.text_mask)

        x = flow.euler_sample(velocity, x, self.times(ltx, feats), cond)
        return unpack(x, feats.grid)

    def sampler_budget(self, ltx: LTXVideo, feats: Features) -> tuple[int, float]:
        return len(self.times(ltx, feats)) - 1, 1.0

    def times(self, ltx: LTXVideo, feats: Features) -> Tensor:
        """The sampler's flow times (S+1,): t*, then the release's schedule below it, down to 0."""
        return ltx.schedule.times(feats.num_tokens, self.sample_steps, start=self.t_star)
