"""Where a GPU's time goes in a profiled region: busy time and kernel time by kind (torch.profiler).

Used by the profiling scripts in benchmarks/: a profile is a lead (one process), not a figure.
"""

from __future__ import annotations

from collections import defaultdict

from torch.autograd import DeviceType

# the kind of a kernel, by the first pattern its lower-cased name contains (checked in this order)
# (Triton's fused kernels first: their names list the aten ops they fuse, "convolution" or "_scaled_mm")
KINDS = (
    ("fused (triton)", ("triton_",)),
    ("attention", ("sdpa", "flash", "fmha", "attention")),
    ("convolution", ("conv_", "convolution", "implicit_gemm", "fprop", "dgrad", "wgrad", "winograd")),
    ("layout", ("nchwtonhwc", "nhwctonchw")),
    ("matmul", ("nvjet", "gemm", "cutlass", "xmma")),
    ("copy", ("memcpy", "memset", "copy")),
)


def kernels(events) -> list:
    """The GPU kernels and copies of a profile's events (record_function ranges on the GPU left out)."""
    return [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]


def wall_ms(events) -> float:
    """Milliseconds from the first host event of a profile to its last."""
    cpu = [e for e in events if e.device_type == DeviceType.CPU]
    return (max(e.time_range.end for e in cpu) - min(e.time_range.start for e in cpu)) / 1e3


def busy_ms(events) -> float:
    """Milliseconds in which at least one GPU kernel or copy ran (overlaps counted once): the rest of
    the wall time is the GPU waiting for the host."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((e.time_range.start, e.time_range.end) for e in kernels(events)):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total / 1e3


def kind(name: str) -> str:
    low = name.lower()
    return next((k for k, patterns in KINDS if any(p in low for p in patterns)), "other")


def ms_by_kind(events) -> dict[str, float]:
    """Summed kernel milliseconds per kind (attention, convolution, matmul, copy, fused, other)."""
    out: dict[str, float] = defaultdict(float)
    for e in kernels(events):
        out[kind(e.name)] += (e.time_range.end - e.time_range.start) / 1e3
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
