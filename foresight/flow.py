"""Rectified flow as LTX-Video trains and samples it: the whole objective and sampler.

Notation (docs/flow.md): clean latents z0, noise e, flow time t in [0, 1],
    x_t = (1 - t) * z0 + t * e          (straight path from data at t=0 to noise at t=1)
    v   = e - z0                         (its constant velocity; the DiT predicts this)
    Euler step: x <- x - dt * v          (t decreases towards 0)

Latents here are token sequences (B, N, C) as the DiT sees them. A boolean conditioning mask
(B, N) marks tokens that are given, not generated (a first frame, option C's tokens): they sit at
t=0, are excluded from the loss and are never updated by the sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

# LTX's trainer shifts the logit-normal time sampler with sequence length: longer videos carry
# more redundant tokens, so they need more time at high noise to learn global structure.
SHIFT_TOKENS = (1024, 4096)
SHIFT_MU = (0.95, 2.05)


def shift_mu(num_tokens: int) -> float:
    """μ of the shifted logit-normal: 0.95 at 1024 tokens, 2.05 at 4096, linear (and beyond)."""
    (n0, n1), (m0, m1) = SHIFT_TOKENS, SHIFT_MU
    return m0 + (m1 - m0) * (num_tokens - n0) / (n1 - n0)


def sample_t(
    batch: int, num_tokens: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """One flow time per sample, t = sigmoid(N(μ(tokens), 1)): (B,)."""
    z = torch.randn(batch, generator=generator, device=device)
    return torch.sigmoid(z + shift_mu(num_tokens))


def interpolate(z0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = (1-t)·z0 + t·e. z0, noise: (B, N, C); t: (B, N) per-token or (B,) per-sample."""
    t = _per_token(t, z0)  # (B, N, 1)
    return (1 - t) * z0 + t * noise


def velocity(z0: Tensor, noise: Tensor) -> Tensor:
    """The DiT's target along the straight path: v = e - z0, (B, N, C)."""
    return noise - z0


def token_timesteps(t: Tensor, cond_mask: Tensor | None, num_tokens: int) -> Tensor:
    """Per-token flow time (B, N): the sample's t (B,) everywhere, 0 on conditioning tokens (B, N)."""
    t_tok = t.reshape(-1, 1).float().expand(-1, num_tokens)  # (B, N)
    return t_tok.clone() if cond_mask is None else t_tok.masked_fill(cond_mask, 0.0)


def noisy_input(z0: Tensor, noise: Tensor, t: Tensor, cond_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """The DiT input for training: (x_t with conditioning tokens left clean (B, N, C), t_tok (B, N))."""
    t_tok = token_timesteps(t, cond_mask, z0.shape[1]).to(z0)
    return interpolate(z0, noise, t_tok), t_tok


def masked_mse(pred: Tensor, target: Tensor, loss_mask: Tensor | None = None) -> Tensor:
    """MSE over tokens where loss_mask (B, N) is True, normalised by the mask mean as LTX does.

    Equal to the plain mean over the kept tokens, so the loss scale does not depend on how many
    tokens are conditioning.
    """
    err = (pred.float() - target.float()).pow(2)  # (B, N, C)
    if loss_mask is None:
        return err.mean()
    w = loss_mask.to(err.dtype).unsqueeze(-1)  # (B, N, 1)
    return (err * w).mean() / w.mean().clamp_min(1e-12)


def time_shift(t: Tensor, mu: float) -> Tensor:
    """Warp times towards high noise with the same μ as training: e^μ / (e^μ + 1/t - 1); 0 stays 0."""
    t = t.clamp(0, 1)
    shifted = math.exp(mu) / (math.exp(mu) + (1 / t.clamp_min(1e-12) - 1))
    return torch.where(t > 0, shifted, torch.zeros_like(t))


def stretch_to_terminal(ts: Tensor, terminal: float) -> Tensor:
    """Stretch decreasing times (S,) so the last equals `terminal`, keeping 1 fixed: the last Euler
    step then spans terminal -> 0 instead of most of the shifted range (LTX's shift_terminal)."""
    one_minus = 1 - ts
    return 1 - one_minus * (1 - terminal) / one_minus[-1]


def linear_quadratic(steps: int, threshold_noise: float = 0.025) -> Tensor:
    """LTX's linear-quadratic schedule (S,) from 1: the first half of the steps take 1-t linearly
    from 0 to `threshold_noise` (fine steps where the layout forms), the second half a quadratic
    from there to 1, continuous in value and slope at the seam."""
    if steps < 2:
        return torch.ones(1)
    half = steps // 2
    i = torch.arange(steps, dtype=torch.float64)
    excess = half - threshold_noise * steps  # what the quadratic part must add beyond the linear slope
    rest = steps - half
    a = excess / (half * rest**2)
    b = threshold_noise / half - 2 * excess / rest**2
    c = a * half**2
    one_minus = torch.where(i < half, i * threshold_noise / half, a * i**2 + b * i + c)
    return (1 - one_minus).float()


@dataclass(frozen=True)
class Schedule:
    """A release's sampling schedule, as its own scheduler config and inference yaml define it.

    kind "shifted" (0.9.0 / 0.9.1: diffusers' FlowMatchEulerDiscreteScheduler with
    use_dynamic_shifting and shift_terminal, via LTXPipeline / LTXImageToVideoPipeline): S times
    linspace(1, 1/S, S) warped by the training μ(tokens), stretched to end at `shift_terminal`.
    kind "linear_quadratic" (0.9.5+ dev releases: LTX-Video's LinearQuadratic sampler, the default
    of diffusers' LTXConditionPipeline): no shift. kind "list" (distilled releases): the
    checkpoint's fixed times, e.g. 0.9.8-distilled's first pass; `steps` is their count.
    Every schedule gets 0 appended: S+1 points, S Euler steps.
    """

    kind: str = "shifted"
    steps: int = 8  # the release's published step count
    shift_terminal: float | None = 0.1
    timesteps: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("shifted", "linear_quadratic", "list"):
            raise ValueError(f"schedule.kind={self.kind!r}: use shifted, linear_quadratic or list")
        if self.kind == "list":
            ts = list(self.timesteps or [])
            if (
                not ts
                or any(a <= b for a, b in zip(ts, ts[1:], strict=False))
                or not 0 < ts[-1] <= ts[0] <= 1
            ):
                raise ValueError(f"schedule.timesteps={ts}: a list schedule needs decreasing times in (0, 1]")
            object.__setattr__(self, "timesteps", tuple(float(t) for t in ts))
            object.__setattr__(self, "steps", len(ts))
        elif self.steps < 1:
            raise ValueError(f"schedule.steps={self.steps} must be >= 1")

    def times(self, num_tokens: int, steps: int | None = None, start: float = 1.0) -> Tensor:
        """Decreasing flow times (S+1,) ending at 0 for `num_tokens` generated tokens.

        steps: override the published count (not for a fixed list). start < 1 (option B): the
        point `start`, then the schedule's times below it -- where LTX's partial denoising
        (diffusers' denoise_strength, LTX's skip_initial_inference_steps) would go on from there.
        """
        if steps is not None and steps < 1:
            raise ValueError(f"sampling steps={steps} must be >= 1")
        if self.kind == "list":
            if steps is not None and steps != self.steps:
                raise ValueError(
                    f"this release samples on its fixed list of {self.steps} times {list(self.timesteps)}; "
                    f"leave option.sample_steps unset (null) instead of {steps}"
                )
            ts = torch.tensor(self.timesteps)
        else:
            n = steps or self.steps
            if self.kind == "linear_quadratic":
                ts = linear_quadratic(n)
            else:
                ts = time_shift(torch.linspace(1.0, 1.0 / n, n, dtype=torch.float64), shift_mu(num_tokens))
                if self.shift_terminal:
                    ts = stretch_to_terminal(ts, self.shift_terminal)
        ts = torch.cat([ts.float(), torch.zeros(1)])
        if start < 1.0:
            ts = torch.cat([torch.tensor([float(start)]), ts[ts < start - 1e-6]])  # no sliver of a step
        return ts


VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (x (B, N, C), t_tok (B, N)) -> v (B, N, C)


def euler_sample(velocity_fn: VelocityFn, x: Tensor, ts: Tensor, cond_mask: Tensor | None = None) -> Tensor:
    """Integrate dx/dt = v from ts[0] down to ts[-1] with Euler steps.

    x: (B, N, C) at time ts[0], conditioning tokens already holding their clean values;
    ts: (S+1,) decreasing. Conditioning tokens see t=0 and are restored after every step, so they
    come out bit-identical to what went in.
    """
    cond = None if cond_mask is None else cond_mask.unsqueeze(-1)  # (B, N, 1)
    clean = x
    for t_now, t_next in zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True):
        t_tok = token_timesteps(torch.full((x.shape[0],), t_now, device=x.device), cond_mask, x.shape[1]).to(
            x
        )
        v = velocity_fn(x, t_tok)  # (B, N, C)
        x = x - (t_now - t_next) * v.to(x.dtype)
        if cond is not None:
            x = torch.where(cond, clean, x)
    return x


# --- partial diffusion (option B) ---------------------------------------------------------------
# The adapter's estimate ẑ0 is noised to t* and the DiT integrates t* -> 0. The DiT is trained on
# the straight path it will actually follow at inference: from x_{t*} = (1-t*)·ẑ0 + t*·e to z0.
# When ẑ0 = z0 this is exactly the ordinary objective restricted to t <= t*.


def partial_start(z0_hat: Tensor, noise: Tensor, t_star: float) -> Tensor:
    """x_{t*} = (1-t*)·ẑ0 + t*·e, the sampler's starting point (B, N, C)."""
    return (1 - t_star) * z0_hat + t_star * noise


def partial_path(x_start: Tensor, z0: Tensor, t: Tensor, t_star: float) -> tuple[Tensor, Tensor]:
    """Point and velocity on the straight path from x_{t*} (at t*) to z0 (at 0).

    t: (B,) or (B, N) in (0, t*]. Returns x_t = (t/t*)·x_{t*} + (1 - t/t*)·z0 and the constant
    velocity v = (x_{t*} - z0) / t*, both (B, N, C).
    """
    s = _per_token(t, z0) / t_star  # (B, N, 1), 1 at the start, 0 at the data
    return s * x_start + (1 - s) * z0, (x_start - z0) / t_star


def sample_t_within(ts: Tensor, batch: int, device: torch.device | str = "cpu") -> Tensor:
    """(B,) flow times that cover a sampler's schedule ts (S+1,), decreasing to 0: one of its S
    intervals picked uniformly, then t uniform in (t_{k+1}, t_k].

    Option B's DiT must be trained where its sampler goes: LTX's draw scaled by t* puts almost no
    mass near 0 at real sizes (below t*/2 about 0.3% of the time at 6144 tokens) while the sampler
    spends half its steps there. Equal mass per sampler step matches what sampling asks of it.
    """
    k = torch.randint(len(ts) - 1, (batch,))
    hi, lo = ts[k], ts[k + 1]
    u = 1 - torch.rand(batch)  # (0, 1]: never exactly the interval's low end (0 is the data itself)
    # drawn on the CPU (its RNG is what a resumed run restores); a blocking copy would make the host
    # wait for the GPU to finish the last step before it could queue this one
    return (lo + (hi - lo) * u).to(device, non_blocking=True)


def _per_token(t: Tensor, like: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim == 1:
        t = t[:, None]
    return t.reshape(t.shape[0], -1, 1)
