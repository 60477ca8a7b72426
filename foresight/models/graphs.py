"""A frozen forward replayed as CUDA graphs, one per input shape: the VLM's (`vlm.cuda_graphs`) and the
DiT's (`model.cuda_graphs`).

A forward whose host cannot queue kernels as fast as the GPU runs them (the 7B VLM: ~70 ms of host time
for ~36 ms of kernels on an H200) is captured once per input shape and then replayed: one launch
queues every kernel. The same kernels run on the same inputs, so the values are the same. What is
captured must not read a value back to the host (such a read cannot be captured) and must not depend
on host state that changes between calls (the weights are read where they lie, so weights updated in
place are seen; weights moved elsewhere, as FSDP's gathered ones are, are not).

Inputs are a dataclass with `tensors()` (what the graph reads: copied into the graph's own inputs
before each replay) and `key()` (everything a graph is specific to: the shapes, and whatever else
the forward branches on; the inputs' strides and the autocast settings are added here). The output
is copied out: the next replay overwrites the graph's own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol

import torch
from torch import Tensor


class GraphInputs(Protocol):
    def tensors(self) -> dict[str, Tensor]: ...

    def key(self) -> Hashable: ...


class CudaGraphs:
    """forward(inputs) replayed as CUDA graphs, one per inputs.key(); the `limit` last used are kept
    (dropping one frees its memory pool). Call where `applies`."""

    def __init__(self, forward: Callable[[GraphInputs], Tensor], limit: int = 4) -> None:
        self.forward, self.limit = forward, limit
        self.graphs: OrderedDict[Hashable, tuple[torch.cuda.CUDAGraph, GraphInputs, Tensor]] = OrderedDict()

    @staticmethod
    def applies(like: Tensor) -> bool:
        """Whether a forward on `like`'s device, in the current grad mode, is replayed: on a GPU, where
        no gradient is recorded (a captured forward keeps no graph for a backward)."""
        return like.is_cuda and not torch.is_grad_enabled()

    def __call__(self, inputs: GraphInputs) -> Tensor:
        # a capture records the kernels chosen for its inputs' layout and the autocast casts of its
        # moment: an input of the same shape laid out otherwise (a channels-first view, say) would be
        # copied into the captured layout and run on kernels that round otherwise than the eager
        # forward's, and a call under other autocast settings (training's mixed precision, then a
        # sample video without it) needs its own graph too
        tensors = inputs.tensors().values()
        kind = next(iter(tensors)).device.type
        layout = tuple(t.stride() for t in tensors)
        key = (inputs.key(), layout, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
        if key not in self.graphs:
            self.graphs[key] = self.capture(inputs)
            while len(self.graphs) > self.limit:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        graph, static, out = self.graphs[key]
        for name, value in inputs.tensors().items():
            getattr(static, name).copy_(value)
        graph.replay()
        return out.clone()

    def clear(self) -> None:
        """Drop every graph (they read the layers they were captured with: call when those change)."""
        self.graphs.clear()

    def capture(self, inputs: GraphInputs) -> tuple[torch.cuda.CUDAGraph, GraphInputs, Tensor]:
        device = next(iter(inputs.tensors().values())).device
        # outside inference mode: the graph's inputs must take in-place copies whichever mode a later
        # call runs in (Lightning validates under inference mode, our own loops under no_grad)
        with torch.inference_mode(False), torch.no_grad(), torch.cuda.device(device), autocast_cache_off():
            static = replace(inputs, **{k: v.clone() for k, v in inputs.tensors().items()})
            # a warm-up outside the capture, where cuBLAS, cuDNN and torch.compile set themselves up;
            # on `inputs`, not `static`: a forward may cache layouts by input tensor (the VLM's
            # batched windows), and those the graph reads must be made inside the capture
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.forward(inputs)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a reader thread decoding the next batch may touch CUDA meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = self.forward(static)
        return graph, static, out


@contextmanager
def autocast_cache_off() -> Iterator[None]:
    """Autocast without its cache of casts, in whatever autocast region this runs in.

    Autocast keeps the bf16 copy of each trainable fp32 leaf (LoRA's weights) for the length of its
    region. A capture that finds such a copy records no cast, only reads of the copy's memory; the
    region's end frees that memory, and every later replay reads whatever lies there then (a stale
    or foreign tensor, not the weights). Without the cache the capture records the casts, reading the
    weights where they lie, so a replay sees the optimizer's updates. (torch's make_graphed_callables
    refuses a cached autocast for the same reason.) A torch.compile'd forward must run so outside the
    capture too (LTXVideo.dit does): the setting is one of its guards, and a second compilation, tuned
    apart, may round otherwise."""
    before = torch.is_autocast_cache_enabled()
    torch.set_autocast_cache_enabled(False)
    try:
        yield
    finally:
        torch.set_autocast_cache_enabled(before)
