"""PSNR and SSIM against hand-computable cases."""

import math

import torch

from foresight.eval.metrics import psnr, ssim


def test_psnr_of_a_constant_error():
    a = torch.full((1, 2, 8, 8, 3), 100.0)
    assert torch.allclose(psnr(a, a + 10), torch.full((1, 2), 10 * math.log10(255**2 / 100)))
    assert (psnr(a, a) > 90).all()


def test_ssim_identity_and_ordering():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, 3, generator=g) * 255
    assert torch.allclose(ssim(x, x), torch.ones(2, 3), atol=1e-5)
    slight = (x + torch.randn(x.shape, generator=g) * 5).clamp(0, 255)
    heavy = (x + torch.randn(x.shape, generator=g) * 60).clamp(0, 255)
    assert (ssim(x, slight) > ssim(x, heavy)).all()
    assert ssim(x, slight).shape == (2, 3)
    # a pure brightness shift keeps structure: SSIM stays high where PSNR drops
    shifted = x * 0.5 + 60
    assert (ssim(x, shifted) > ssim(x, heavy)).all()
