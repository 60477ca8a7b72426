"""Quantised frozen linears: int8 weights for the encoders (memory), fp8 matmuls for the DiT (speed).

Int8 (VLM, T5; `vlm.quantize`, `model.text_encoder_quantize`): each `nn.Linear` weight becomes int8
with one scale per output channel (its absolute maximum / 127) and is dequantised to the
activation's dtype inside the matmul, so activations and the arithmetic stay bf16: half a bf16
model's weight memory, nothing faster.

Fp8 (the DiT's blocks; `model.dit_quantize`): the weight is stored in float8 e4m3 with a scale per
output channel, each activation row is cast to e4m3 with its own scale on the fly, and the product
runs on the fp8 tensor cores (`torch._scaled_mm`, row-wise scales, Hopper/Ada or CPU; 1.6x bf16's
matmul at 6144x2048x8192 on an H200, BENCHMARKS.md). LoRA trains through these layers: the input
gradient is an fp8 matmul too, against a second copy of the weight scaled per input channel, so
both copies together weigh what the bf16 weight did. Only frozen weights are quantised. The cost in
quality is measured, not assumed: `python -m foresight.bench.memory` (encoders) and `python -m
foresight.bench --dit-quantize fp8` (the DiT's velocity) report the error against bf16 on the same
inputs; tests/test_quantize.py bounds it on the twins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QUANTIZE = (None, "int8")  # the encoders'
DIT_QUANTIZE = (None, "fp8")
FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448


class Int8Linear(nn.Module):
    """A frozen nn.Linear with an int8 weight (out, in) and a per-output-channel scale (out,)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        scale = w.float().abs().amax(1).clamp(min=1e-12) / 127  # (out,)
        # `weight` keeps the name (and int8 dtype) models look for: T5 skips its cast to the weight's
        # dtype for int8 weights
        self.register_buffer("weight", (w.float() / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(w.dtype))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.scale.to(x.dtype)[:, None]  # (out, in)
        return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight"


def replace_children(model: nn.Module, replacement: Callable[[nn.Module], nn.Module | None]) -> None:
    """Every submodule of `model` for which replacement(submodule) gives a module swapped for it in
    its parent, in place (None: left as it is)."""
    for parent in list(model.modules()):
        for attr, sub in list(parent.named_children()):
            new = replacement(sub)
            if new is not None:
                setattr(parent, attr, new)


def fp8_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """(M, K) -> e4m3 (M, K) and fp32 scales (M, 1): each row scaled so that its absolute maximum
    lands on e4m3's largest value (448): one outlier row does not cost the others their precision."""
    scale = x.detach().abs().amax(-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


class Fp8Matmul(torch.autograd.Function):
    """y = x W^T on the fp8 units, and dL/dx = dL/dy W (frozen W: no weight gradient).

    `_scaled_mm` wants its first operand row-major and its second column-major, scaled per row of the
    first and per column of the second: forward pairs x's rows with W's rows (output channels),
    backward the gradient's rows with W^T's rows (input channels), hence the two weight copies."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, w_scale: Tensor, w_t: Tensor, w_t_scale: Tensor) -> Tensor:
        xq, xs = fp8_rows(x)  # (M, in), (M, 1)
        ctx.save_for_backward(w_t, w_t_scale)
        # w: (out, in) row-major, so w.t() is the column-major (in, out) operand
        return torch._scaled_mm(xq, w.t(), scale_a=xs, scale_b=w_scale, out_dtype=torch.bfloat16)

    @staticmethod
    def backward(ctx, grad: Tensor):
        w_t, w_t_scale = ctx.saved_tensors
        gq, gs = fp8_rows(grad.contiguous())  # (M, out), (M, 1)
        grad_x = torch._scaled_mm(gq, w_t.t(), scale_a=gs, scale_b=w_t_scale, out_dtype=torch.bfloat16)
        return grad_x, None, None, None, None  # (M, in)


class Fp8Linear(nn.Module):
    """A frozen nn.Linear run as an fp8 matmul: weight (out, in) e4m3 with scales (1, out), its
    transpose (in, out) e4m3 with scales (1, in) for the input gradient, bias kept in its dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        wq, ws = fp8_rows(w)  # (out, in), (out, 1)
        wtq, wts = fp8_rows(w.t().contiguous())  # (in, out) row-major, (in, 1)
        self.register_buffer("weight", wq)
        self.register_buffer("weight_scale", ws.t().contiguous())
        self.register_buffer("weight_t", wtq)
        self.register_buffer("weight_t_scale", wts.t().contiguous())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        # the dtype the bf16 layer would have returned (autocast's, or the input's)
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        rows = x.reshape(-1, self.in_features)  # (M, in)
        y = Fp8Matmul.apply(rows, self.weight, self.weight_scale, self.weight_t, self.weight_t_scale)
        y = y.to(dtype) if self.bias is None else y.to(dtype) + self.bias.to(dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def stand_in(self) -> nn.Linear:
        """A bf16 nn.Linear standing in for this layer while peft injects LoRA (`lora_targets`):
        right shape, device and dtype, and no memory (its weight is one zero broadcast)."""
        shell = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        zero = torch.zeros((), dtype=torch.bfloat16, device=self.weight.device)
        shell.weight = nn.Parameter(zero.expand(self.out_features, self.in_features), requires_grad=False)
        if self.bias is not None:
            shell.bias = nn.Parameter(self.bias, requires_grad=False)
        return shell

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8 matmul"


def check(how: str | None, key: str) -> None:
    """A one-line error naming the config key, before any weights load."""
    if how not in QUANTIZE:
        raise ValueError(f"{key}={how!r}: use null (the checkpoint's dtype) or int8 (weight-only)")


def check_dit(how: str | None, key: str = "model.dit_quantize") -> None:
    """A one-line error naming the key, before any weights load; fp8 matmuls need Ada/Hopper on CUDA."""
    if how not in DIT_QUANTIZE:
        raise ValueError(f"{key}={how!r}: use null (the checkpoint's dtype) or fp8 (fp8 matmuls)")
    if how == "fp8" and torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 9):
        name = torch.cuda.get_device_name()
        raise ValueError(f"{key}=fp8 needs fp8 tensor cores (Ada or Hopper); {name} has none: use null")


def quantize_dit(blocks: nn.Module, how: str | None, key: str = "model.dit_quantize") -> nn.Module:
    """The frozen nn.Linear layers of the DiT's `blocks` run as fp8 matmuls (how="fp8"), or as they are.
    LoRA layers (trainable) stay; so do layers whose sides are not multiples of 16 (the fp8 kernels')."""
    check_dit(how, key)
    if how is None:
        return blocks

    def fp8(sub: nn.Module) -> nn.Module | None:
        frozen = type(sub) is nn.Linear and not sub.weight.requires_grad
        return Fp8Linear(sub) if frozen and sub.in_features % 16 == sub.out_features % 16 == 0 else None

    replace_children(blocks, fp8)
    return blocks


@contextmanager
def lora_targets(model: nn.Module) -> Iterator[None]:
    """peft wraps only nn.Linear: inside this block each Fp8Linear of `model` is a weightless nn.Linear
    of its shape; afterwards each goes back, now as the base layer of the LoRA wrapper peft put there."""
    originals: dict[nn.Module, Fp8Linear] = {}  # stand-in -> the fp8 layer it stands in for

    def stand_in(sub: nn.Module) -> nn.Module | None:
        if not isinstance(sub, Fp8Linear):
            return None
        shell = sub.stand_in()
        originals[shell] = sub
        return shell

    replace_children(model, stand_in)
    try:
        yield
    finally:
        replace_children(model, originals.get)


def quantize(model: nn.Module, how: str | None, key: str) -> nn.Module:
    """Every nn.Linear of a frozen `model` replaced in place (how="int8"), or the model as it is (None).
    key: the config key, for the error."""
    check(how, key)
    if how is None:
        return model
    replace_children(model, lambda sub: Int8Linear(sub) if type(sub) is nn.Linear else None)
    return model


def quantize_encoders(
    vlm: nn.Module | None, text_encoder: nn.Module | None, how: str | None, key: str
) -> None:
    """The frozen VLM's and T5's linear weights quantised in place (those present): what a checkpoint
    trained against full-precision encoders is then evaluated or run with (`quantize=int8` in
    evaluate.py and predict.py measures the cost on the same clips)."""
    check(how, key)
    for encoder in (vlm, text_encoder):
        if encoder is not None:
            quantize(encoder.model, how, key)
