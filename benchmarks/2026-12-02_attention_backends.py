"""The DiT's self-attention alone, per SDPA backend: forward, and forward + backward (one process, a lead).

At the training shape of 768x512x121 (6144 tokens, 32 heads of 64, bf16, batch 1), which takes ~79 ms
of option B's 176 ms step: SDPA unforced (the default row), cuDNN's kernels, PyTorch's built-in flash
kernels (FlashAttention-2), memory-efficient attention, and FlashAttention-4 or -3 when installed
(activated through torch.nn.attention.activate_flash_attention_impl, which routes SDPA's flash
backend to them, and FA4's own flash_attn.cute entry point), and SageAttention when installed
(sageattention 1.0.6, PyPI's only release: Triton kernels, Q and K in int8 per block; forward only,
so a prediction lever. diffusers' `sage` backend wants sageattention >= 2.1.1, CUDA kernels built from
source: were 1.0.6 faster here, it would need a backend of our own).
Each: median of 20 calls after 5, TFLOP/s (4·N²·d·heads forward, 2.5x that for the backward), and
the output's relative error against the math backend in fp32. Rows to $OUT/attention.json.

    OUT=. python benchmarks/2026-12-02_attention_backends.py
    OUT=/tmp python benchmarks/2026-12-02_attention_backends.py --tiny     # the script's own check, CPU
"""

import argparse
import contextlib
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn import attention
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, cuda: bool, iters: int = 20, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def cute_attention():
    """FlashAttention-4's own entry point on SDPA's (B, H, N, D) tensors: it reads (B, N, H, D), the
    layout diffusers' attention holds q, k, v in before it transposes them for SDPA."""
    from flash_attn.cute import flash_attn_func

    def attend(q, k, v):
        out, _ = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)

    return attend


def sage_attention():
    """SageAttention's entry point on SDPA's (B, H, N, D) layout ("HND"), with its defaults (smooth_k:
    K's mean over tokens taken out before its int8 quantisation)."""
    from sageattention import sageattn

    return lambda q, k, v: sageattn(q, k, v, tensor_layout="HND", is_causal=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a small shape on the CPU (checks the script)")
    parser.add_argument("--tokens", type=int, default=6144)
    args = parser.parse_args()
    cuda = not args.tiny
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    heads, dim, n = 32, 64, (256 if args.tiny else args.tokens)
    g = torch.Generator(device).manual_seed(0)
    q, k, v = (torch.randn(1, heads, n, dim, device=device, dtype=dtype, generator=g) for _ in range(3))
    grad = torch.randn(1, heads, n, dim, device=device, dtype=dtype, generator=g)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    with sdpa_kernel(SDPBackend.MATH):
        exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    flops = 4 * n * n * dim * heads
    backends = [("math", SDPBackend.MATH, None)]
    if cuda:
        backends += [
            ("default (what SDPA picks)", None, None),
            ("cudnn", SDPBackend.CUDNN_ATTENTION, None),
            ("flash (FA2, built in)", SDPBackend.FLASH_ATTENTION, None),
            ("memory-efficient", SDPBackend.EFFICIENT_ATTENTION, None),
            ("FA3", SDPBackend.FLASH_ATTENTION, "FA3"),
            ("FA4", SDPBackend.FLASH_ATTENTION, "FA4"),
            ("FA4, flash_attn.cute called directly", None, "cute"),
            ("SageAttention 1 (int8 Q K, Triton; forward only)", None, "sage"),
        ]
    rows = []
    for name, backend, impl in backends:
        row = {"backend": name, "tokens": n, "heads": heads, "head_dim": dim, "dtype": str(dtype)}
        try:
            attend = F.scaled_dot_product_attention
            if impl in ("cute", "sage"):
                attend = {"cute": cute_attention, "sage": sage_attention}[impl]()  # ImportError: absent
            elif impl:
                if not hasattr(attention, "activate_flash_attention_impl"):
                    raise RuntimeError(f"torch {torch.__version__} cannot route SDPA to {impl}")
                attention.activate_flash_attention_impl(impl)  # ImportError: not installed
            with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():

                def forward(attend=attend):
                    return attend(q, k, v)

                def forward_backward(attend=attend):
                    for t in leaves:
                        t.grad = None  # each call writes its gradients afresh, as a training step does
                    attend(*leaves).backward(grad)

                out = forward()
                row["rel_error"] = ((out.float() - exact).norm() / exact.norm()).item()
                row["forward_ms"] = timed(forward, cuda)
                row["forward_tflops"] = flops / row["forward_ms"] / 1e9
                if impl != "sage":  # no backward kernel
                    row["forward_backward_ms"] = timed(forward_backward, cuda)
                    backward_ms = row["forward_backward_ms"] - row["forward_ms"]
                    row["backward_tflops"] = 2.5 * flops / backward_ms / 1e9
        except Exception as e:  # a backend that is not installed or refuses the shape is a result
            row["error"] = f"{type(e).__name__}: {e}"[:300]
        finally:
            if impl and hasattr(attention, "restore_flash_attention_impl"):
                attention.restore_flash_attention_impl(_raise_warn=False)
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__}
    with open(os.path.join(os.environ.get("OUT", "."), "attention.json"), "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
