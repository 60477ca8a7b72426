"""Option B — partial diffusion: the adapter's ẑ0, noised to t*, finished by the DiT (+ LoRA).

Training sums the adapter's regression loss and a flow-matching loss for the DiT on the straight
path the sampler will actually follow: from x_{t*} = (1-t*)·ẑ0 + t*·e at t* to z0 at 0, velocity
(x_{t*} - z0)/t* (foresight.flow.partial_path). Whether ẑ0 is detached there decides whether the
DiT's loss also shapes the adapter (`detach_estimate`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from foresight import flow
from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo, unpack
from foresight.options.base import Option


class PartialDiffusion(Option):
    name = "B"

    def __init__(self, t_star: float = 0.6, sample_steps: int = 4, detach_estimate: bool = True,
                 regression_weight: float = 1.0, flow_weight: float = 1.0, **base) -> None:
        super().__init__(**base)
        if not 0.0 < t_star <= 1.0:
            raise ValueError(f"option.t_star={t_star} must be in (0, 1]; e.g. 0.6")
        self.t_star = t_star
        self.sample_steps = sample_steps
        self.detach_estimate = detach_estimate
        self.regression_weight = regression_weight
        self.flow_weight = flow_weight

    def loss(self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features,
             training: bool = True, fixed_t: float | None = None) -> dict[str, Tensor]:
        z0 = feats.target_tokens()  # (B, N, 128)
        cond = self.condition_mask(feats, training)  # (B, N)
        z_hat = self.estimate(adapter, feats, cond)  # (B, N, 128)
        regression = flow.masked_mse(z_hat, z0, ~cond)

        start = z_hat.detach() if self.detach_estimate else z_hat
        x_start = flow.partial_start(start, torch.randn_like(z0), self.t_star)  # (B, N, 128)
        # t in (0, t*]: the training sampler's shape (or a fixed quantile), scaled into the partial interval
        t = self.t_star * self.flow_times(feats.batch_size, feats.num_tokens, fixed_t, z0.device)  # (B,)
        x_t, v = flow.partial_path(x_start, z0, t, self.t_star)  # (B, N, 128) each
        x_t = torch.where(cond[..., None], z0, x_t)  # conditioning tokens stay clean
        t_tok = flow.token_timesteps(t, cond, feats.num_tokens)  # (B, N), 0 on conditioning
        v_pred = ltx.velocity(x_t, t_tok, feats.coords(), feats.text, feats.text_mask)
        fm = flow.masked_mse(v_pred, v, ~cond)

        loss = self.regression_weight * regression + self.flow_weight * fm
        return {"loss": loss, "regression": regression.detach(), "flow": fm.detach()}

    @torch.no_grad()
    def sample(self, adapter: QueryAdapter, ltx: LTXVideo, feats: Features,
               generator: torch.Generator | None = None) -> Tensor:
        cond = self.condition_mask(feats, training=False)  # (B, N)
        z_hat = self.estimate(adapter, feats, cond)  # (B, N, 128)
        noise = torch.randn(z_hat.shape, generator=generator, device=z_hat.device)
        x = torch.where(cond[..., None], z_hat, flow.partial_start(z_hat, noise, self.t_star))
        coords = feats.coords()

        def velocity(x_t: Tensor, t_tok: Tensor) -> Tensor:
            return ltx.velocity(x_t, t_tok, coords, feats.text, feats.text_mask)

        x = flow.euler_sample(velocity, x, flow.schedule(self.sample_steps, self.t_star), cond)
        return unpack(x, feats.grid)
