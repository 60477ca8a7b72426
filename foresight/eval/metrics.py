"""Frame metrics: PSNR and SSIM on uint8-range videos, per frame, so baselines compare like for like."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame PSNR in dB of videos (B, F, H, W, 3) in [0, 255]: (B, F)."""
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def _gaussian(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-frame SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5) averaged over RGB: (B, F).

    Videos (B, F, H, W, 3) in [0, 255]; windows use valid positions only (no padding bias).
    """
    b, f, h, w, c = pred.shape
    x = pred.float().permute(0, 1, 4, 2, 3).reshape(b * f * c, 1, h, w)  # (BFC, 1, H, W)
    y = target.float().permute(0, 1, 4, 2, 3).reshape(b * f * c, 1, h, w)
    size = min(11, h, w)
    g = _gaussian(size).to(x.device)
    win = (g[:, None] * g[None, :])[None, None]  # (1, 1, k, k)

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, win)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(-2, -1)).reshape(b, f, c).mean(-1)
