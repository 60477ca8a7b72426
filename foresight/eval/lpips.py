"""LPIPS (Zhang et al. 2018, v0.1, VGG variant) from local weights: no download, no torchvision.

Two files, both read without unpickling code (`torch.load(weights_only=True)` or safetensors):
    vgg   torchvision's VGG16 weights (vgg16-397923af.pth: `features.<i>.weight/bias`)
    lin   LPIPS v0.1's linear heads for VGG (lpips/weights/v0.1/vgg.pth: `lin<k>.model.1.weight`)
Distance per frame: VGG16 features at relu1_2 ... relu5_3, each unit-normalised over channels,
squared difference, weighted per channel by the heads, averaged over space, summed over layers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foresight.models.hub import load_state

# VGG16's conv layers by torchvision index; LPIPS taps the ReLU after the last conv of each block
VGG_BLOCKS = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
VGG_WIDTHS = [64, 128, 256, 512, 512]
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)  # LPIPS' input scaling layer
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


class LPIPS(nn.Module):
    def __init__(self, vgg: str | Path, lin: str | Path) -> None:
        super().__init__()
        vgg_state, lin_state = load_state(vgg), load_state(lin)
        channels, self.convs = 3, nn.ModuleList()
        for block in VGG_BLOCKS:
            for index in block:
                conv = nn.Conv2d(channels, vgg_state[f"features.{index}.weight"].shape[0], 3, padding=1)
                conv.weight.data.copy_(vgg_state[f"features.{index}.weight"])
                conv.bias.data.copy_(vgg_state[f"features.{index}.bias"])
                self.convs.append(conv)
                channels = conv.out_channels
        self.heads = nn.ParameterList(
            [
                nn.Parameter(lin_state[f"lin{k}.model.1.weight"].view(1, -1, 1, 1))
                for k in range(len(VGG_BLOCKS))
            ]
        )
        if [h.shape[1] for h in self.heads] != VGG_WIDTHS:
            raise ValueError(
                f"{lin}: LPIPS heads of widths {[h.shape[1] for h in self.heads]}, expected "
                f"{VGG_WIDTHS} (the v0.1 VGG heads, lpips/weights/v0.1/vgg.pth)"
            )
        self.requires_grad_(False).eval()

    def features(self, x: Tensor) -> list[Tensor]:
        """x (N, 3, H, W) in [-1, 1] -> the five tapped activations."""
        x = (x - SHIFT.to(x)) / SCALE.to(x)
        taps, conv = [], iter(self.convs)
        for b, block in enumerate(VGG_BLOCKS):
            if b:
                x = F.max_pool2d(x, 2)
            for _ in block:
                x = F.relu(next(conv)(x))
            taps.append(x)
        return taps

    @torch.no_grad()
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Videos (B, F, H, W, 3) in [0, 255] -> per-frame distance (B, F); 0 for identical frames."""
        b, f = pred.shape[:2]
        device = self.heads[0].device

        def prep(v: Tensor) -> Tensor:
            return v.reshape(b * f, *v.shape[2:]).permute(0, 3, 1, 2).to(device).float() / 127.5 - 1

        dist = torch.zeros(b * f, device=device)
        for head, x, y in zip(
            self.heads, self.features(prep(pred)), self.features(prep(target)), strict=True
        ):
            x = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit norm over channels
            y = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            dist += ((x - y).pow(2) * head).sum(1).mean(dim=(1, 2))
        return dist.view(b, f)
