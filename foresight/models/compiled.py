"""torch.compile for a stack of repeated blocks (the DiT's, the VLM's), CUDA graphs included.

Each block is compiled on its own: identical blocks share one compiled graph per input shape, so
compilation costs one block, not the stack. With mode="reduce-overhead" each block's kernels are
replayed as a CUDA graph (torch's CUDA graph trees). Outside autograd those trees begin a new
generation at every compiled call and reclaim the previous generation's outputs, and the next block
reads exactly such an output: without a copy, a stack of graphed blocks fails in inference ("accessing
tensor output of CUDAGraphs that has been overwritten by a subsequent run"). So without gradients a
block's output is copied out of the graph's memory (one hidden state: 6144 x 2048 bf16 is 25 MB, a
few microseconds). With gradients (training) a pending backward keeps the generation open: no copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.utils._pytree import tree_map_only


def check_compile_mode(mode: str | None, key: str = "model.compile_mode") -> None:
    """One line naming torch.compile's modes, before anything loads (torch checks only at first call)."""
    from torch._inductor import list_mode_options

    if mode is not None and mode not in list_mode_options():
        raise ValueError(
            f"{key}={mode!r} is not a torch.compile mode; use null or one of: "
            f"{', '.join(list_mode_options())}"
        )


def check_compile_options(options: Mapping | None, key: str = "model.compile_options") -> None:
    """One line naming the unknown inductor options, before anything loads (torch checks at first call)."""
    from torch._inductor import list_options

    unknown = sorted(set(options or {}) - set(list_options()))
    if unknown:
        raise ValueError(
            f"{key} has {', '.join(map(repr, unknown))}, not an option of torch._inductor.config; "
            f"e.g. {key}={{coordinate_descent_tuning: true}} (python -c 'import torch._inductor as i; "
            f"print(i.list_options())' lists them)"
        )


def inductor_options(mode: str | None, options: Mapping | None) -> dict:
    """What torch.compile runs with: the mode's own inductor options, then `options` over them."""
    from torch._inductor import list_mode_options

    return {**list_mode_options(mode or "default"), **(options or {})}


def graphs_blocks(mode: str | None, options: Mapping | None = None) -> bool:
    """Whether blocks compiled so replay their kernels as CUDA graphs (reduce-overhead, max-autotune,
    or triton.cudagraphs set in the options)."""
    return bool(inductor_options(mode, options).get("triton.cudagraphs"))


def compile_blocks(
    blocks: Iterable[nn.Module], mode: str | None = None, options: Mapping | None = None
) -> None:
    """torch.compile each block in `mode` (null: torch's default), static shapes, with inductor
    `options` on top of the mode's own (e.g. coordinate_descent_tuning)."""
    # one graph per (shape, grad mode, autocast, checkpointing): training with validation, or a
    # benchmark over sizes, needs more than dynamo's default 8 variants
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    # torch.compile takes a mode or options, not both: a mode is its options
    how = {"options": inductor_options(mode, options)} if options else {"mode": mode}
    for block in blocks:
        block.compile(dynamic=False, **how)
        if graphs_blocks(mode, options):
            block._compiled_call_impl = outputs_kept(block._compiled_call_impl)  # nn.Module.compile's slot


def outputs_kept(compiled):
    """compiled, whose outputs are copied out of the CUDA graph's memory when no gradient is recorded."""

    def call(*args, **kwargs):
        out = compiled(*args, **kwargs)
        return out if torch.is_grad_enabled() else tree_map_only(torch.Tensor, torch.Tensor.clone, out)

    return call
