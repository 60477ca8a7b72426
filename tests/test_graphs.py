"""CudaGraphs' own capture code, with CPU stand-ins for CUDA's streams and graphs (the capture itself
needs a GPU: foresight.bench's dit_graphs_error and vlm_graphs_error compare graphed forwards with
eager ones there)."""

import contextlib

import torch

from foresight.models import graphs as graphs_module
from foresight.models.graphs import CudaGraphs
from foresight.models.ltx import DiTInputs


def test_a_graph_captured_in_inference_mode_takes_inputs_in_either_mode(monkeypatch):
    """Lightning validates under inference mode, our sampling loops run under no_grad: a graph
    captured in one must take the next call's inputs in the other (in-place copies into inference
    tensors outside inference mode are an error), and replay what it captured on them."""
    recorded = []

    class Graph:  # replays the forward it captured on the captured inputs (what a CUDA graph does)
        def replay(self):
            static, out = recorded[-1]
            out.copy_(forward(static))

    @contextlib.contextmanager
    def capture(graph, **kw):
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

    weight = torch.randn(4, 4)

    def forward(inputs: DiTInputs) -> torch.Tensor:
        out = inputs.x @ weight + inputs.timestep[..., None]
        if not recorded or recorded[-1][0] is not inputs:
            recorded.append((inputs, out))
        return out

    def inputs(seed: int) -> DiTInputs:
        g = torch.Generator().manual_seed(seed)
        return DiTInputs(
            *(torch.randn(s, generator=g) for s in [(1, 3, 4), (1, 3), (1, 3, 3), (1, 2, 5), (1, 2)])
        )

    graphs = CudaGraphs(forward)
    with torch.inference_mode():
        first = inputs(0)
        out = graphs(first)  # captured here
    static = graphs.graphs[next(iter(graphs.graphs))][1]
    assert not static.x.is_inference()
    assert torch.allclose(out, first.x @ weight + first.timestep[..., None])
    with torch.no_grad():
        second = inputs(1)
        out = graphs(second)  # replayed on this call's inputs, outside inference mode
    assert torch.allclose(out, second.x @ weight + second.timestep[..., None]) and len(graphs.graphs) == 1
    with torch.inference_mode():
        assert torch.allclose(graphs(first), first.x @ weight + first.timestep[..., None])
