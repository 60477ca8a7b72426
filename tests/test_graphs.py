"""CudaGraphs' own capture code, with CPU stand-ins for CUDA's streams and graphs (the capture itself
needs a GPU: foresight.bench's dit_graphs_error and vlm_graphs_error compare graphed forwards with
eager ones there)."""

import contextlib

import pytest
import torch

from foresight.models import graphs as graphs_module
from foresight.models.graphs import CudaGraphs
from foresight.models.ltx import DiTInputs


class Capture:
    """What the stand-in captures saw (the autocast cache's setting at each), and what a replay does."""

    def __init__(self):
        self.seen: list[dict] = []
        self.replay = lambda: None


@pytest.fixture
def cpu_capture(monkeypatch) -> Capture:
    """CUDA's streams and graphs replaced by CPU stand-ins for CudaGraphs' capture code."""
    stand_in = Capture()

    class Graph:
        def replay(self):
            stand_in.replay()

    @contextlib.contextmanager
    def capture(graph, **kw):
        stand_in.seen.append({"autocast_cache": torch.is_autocast_cache_enabled()})
        yield

    class Stream:
        def wait_stream(self, other):
            pass

    cuda = graphs_module.torch.cuda
    monkeypatch.setattr(cuda, "Stream", Stream)
    monkeypatch.setattr(cuda, "current_stream", lambda: Stream())
    monkeypatch.setattr(cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(cuda, "graph", capture)
    return stand_in


def dit_inputs(seed: int) -> DiTInputs:
    g = torch.Generator().manual_seed(seed)
    return DiTInputs(
        *(torch.randn(s, generator=g) for s in [(1, 3, 4), (1, 3), (1, 3, 3), (1, 2, 5), (1, 2)])
    )


def test_a_graph_captured_in_inference_mode_takes_inputs_in_either_mode(cpu_capture):
    """Lightning validates under inference mode, our sampling loops run under no_grad: a graph
    captured in one must take the next call's inputs in the other (in-place copies into inference
    tensors outside inference mode are an error), and replay what it captured on them."""
    recorded = []

    weight = torch.randn(4, 4)

    def forward(inputs: DiTInputs) -> torch.Tensor:
        out = inputs.x @ weight + inputs.timestep[..., None]
        if not recorded or recorded[-1][0] is not inputs:
            recorded.append((inputs, out))
        return out

    def replay():  # the forward it captured, on the captured inputs (what a CUDA graph does)
        static, out = recorded[-1]
        out.copy_(forward(static))

    cpu_capture.replay = replay
    graphs = CudaGraphs(forward)
    with torch.inference_mode():
        first = dit_inputs(0)
        out = graphs(first)  # captured here
    static = graphs.graphs[next(iter(graphs.graphs))][1]
    assert not static.x.is_inference()
    assert torch.allclose(out, first.x @ weight + first.timestep[..., None])
    with torch.no_grad():
        second = dit_inputs(1)
        out = graphs(second)  # replayed on this call's inputs, outside inference mode
    assert torch.allclose(out, second.x @ weight + second.timestep[..., None]) and len(graphs.graphs) == 1
    with torch.inference_mode():
        assert torch.allclose(graphs(first), first.x @ weight + first.timestep[..., None])


def test_a_capture_under_autocast_records_the_casts_instead_of_reading_autocasts_cached_copies(cpu_capture):
    """Under bf16-mixed training autocast keeps a bf16 copy of each trainable fp32 weight (LoRA's)
    until its region ends; a capture that used those copies would replay reads of freed memory in
    the next validation, not the updated weights. The capture runs with the cache off, and the
    caller's autocast (its cache included) is as it was afterwards."""
    weight = torch.randn(4, 4, requires_grad=True)  # a trainable fp32 leaf: what autocast caches

    def forward(inputs: DiTInputs) -> torch.Tensor:
        return torch.nn.functional.linear(inputs.x, weight)

    graphs = CudaGraphs(forward)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_cache_enabled()
        graphs(dit_inputs(0))
        assert cpu_capture.seen == [{"autocast_cache": False}]
        assert torch.is_autocast_cache_enabled() and torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_inputs_of_one_shape_laid_out_otherwise_get_their_own_graph_in_their_own_layout(cpu_capture):
    """Validation's flow loss handed the DiT channels-first latent tokens and its sampler contiguous
    ones, of one shape: replayed on a graph captured for the other layout, the kernels chosen for
    that layout rounded otherwise than the eager forward (bf16 outputs 3 ulps apart, sampled latent
    MSE 0.3% off). Whatever a caller hands in, each layout is captured on its own, its graph's
    inputs laid out as the call's."""
    graphs = CudaGraphs(lambda inputs: inputs.x * 2)
    contiguous = dit_inputs(0)
    channels_first = DiTInputs(**{**contiguous.tensors(), "x": contiguous.x.mT.contiguous().mT})
    assert channels_first.x.shape == contiguous.x.shape and channels_first.x.stride() != contiguous.x.stride()
    with torch.no_grad():
        graphs(contiguous)
        graphs(channels_first)
        graphs(contiguous)
    statics = [static.x for _, static, _ in graphs.graphs.values()]
    assert [x.stride() for x in statics] == [channels_first.x.stride(), contiguous.x.stride()]
    assert len(cpu_capture.seen) == 2
