"""bf16 matmul against fp8 `_scaled_mm` (row-wise and tensor-wise scales) at the DiT's shapes, and
what casting the activations to fp8 costs by itself (compiled). One process; output in
benchmarks/2026-12-02_h200_fp8_matmul_probe.txt.

    python benchmarks/2026-12-02_fp8_matmul_probe.py
"""

import time

import torch

from foresight.models.quantize import FP8, FP8_MAX, fp8_rows


def ms_per_call(fn, n: int = 50) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1e3


def fp8_tensor(x):
    """One scale for the whole tensor (the other common recipe)."""
    scale = x.abs().amax().float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def probe(m: int, k: int, n: int) -> dict:
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)  # activations
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)  # weight (out, in)
    (xq, xs), (wq, ws) = fp8_rows(x), fp8_rows(w)
    (xt, xts), (wt, wts) = fp8_tensor(x), fp8_tensor(w)
    rows, tensor = torch.compile(fp8_rows), torch.compile(fp8_tensor)
    mm = torch._scaled_mm
    out = {
        "bf16": ms_per_call(lambda: x @ w.t()),
        "fp8_rowwise_mm": ms_per_call(
            lambda: mm(xq, wq.t(), scale_a=xs, scale_b=ws.t().contiguous(), out_dtype=torch.bfloat16)
        ),
        "fp8_tensorwise_mm": ms_per_call(
            lambda: mm(xt, wt.t(), scale_a=xts, scale_b=wts, out_dtype=torch.bfloat16)
        ),
        "quant_rows_compiled": ms_per_call(lambda: rows(x)),
        "quant_tensor_compiled": ms_per_call(lambda: tensor(x)),
    }
    out["tflops_bf16"] = 2 * m * k * n / out["bf16"] / 1e9
    return out


for shape in [(6144, 2048, 2048), (6144, 2048, 8192), (6144, 8192, 2048), (24576, 2048, 2048)]:
    result = probe(*shape)
    print("x".join(map(str, shape)), {key: round(value, 4) for key, value in result.items()}, flush=True)
