"""Weight-only int8 for the frozen encoders (VLM, T5): half a bf16 model's weight memory.

Each `nn.Linear` weight becomes int8 with one scale per output channel (its absolute maximum / 127)
and is dequantised to the activation's dtype inside the matmul, so activations and the arithmetic
stay bf16. Only frozen models are quantised: nothing trains through these weights. The cost in
quality is measured, not assumed: `python -m foresight.bench.memory` reports each encoder's output
error against bf16 on the same inputs, and tests/test_quantize.py bounds it on the twins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QUANTIZE = (None, "int8")


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


def check(how: str | None, key: str) -> None:
    """A one-line error naming the config key, before any weights load."""
    if how not in QUANTIZE:
        raise ValueError(f"{key}={how!r}: use null (the checkpoint's dtype) or int8 (weight-only)")


def quantize(model: nn.Module, how: str | None, key: str) -> nn.Module:
    """Every nn.Linear of a frozen `model` replaced in place (how="int8"), or the model as it is (None).
    key: the config key, for the error."""
    check(how, key)
    if how is None:
        return model
    for child in list(model.modules()):
        for attr, sub in list(child.named_children()):
            if type(sub) is nn.Linear:
                setattr(child, attr, Int8Linear(sub))
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
