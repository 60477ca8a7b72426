"""Learning-rate schedules, configured like the optimizer (`module.scheduler` in conf/train.yaml: a
partial that the module calls with its optimizer). Any `torch.optim.lr_scheduler` class fits the
same slot, stepped once per training step."""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, floor: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then cosine from the optimizer's lr down to `floor` x lr at
    `total_steps` (and flat after it)."""
    total = max(total_steps, 1)

    def lr_scale(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total - warmup_steps, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_scale)
