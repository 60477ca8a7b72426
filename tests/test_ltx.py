"""LTX-Video loading: published sizes, tiny twins through the real loader, token geometry."""

import pytest
import torch
from omegaconf import OmegaConf

from foresight.models.ltx import LTXVideo, build_twin, grid_positions, latent_grid, pack, rope_coords, unpack
from tests.helpers import stand_in_capture


def test_tiny_twin_keeps_real_compression_and_decoder(tiny_ltx):
    assert tiny_ltx.latent_channels == 128
    assert tiny_ltx.vae.config.timestep_conditioning
    video = torch.rand(2, 3, 17, 64, 96) * 2 - 1
    z = tiny_ltx.encode(video)
    assert z.shape == (2, 128, 3, 2, 3) == (2, 128, *latent_grid(17, 64, 96))
    # causal VAE: latent frame 0 is pixel frame 0 alone (what first-frame conditioning relies on)
    assert torch.allclose(tiny_ltx.encode(video[:, :, :1])[:, :, 0], z[:, :, 0], atol=1e-4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    out = tiny_ltx.decode(z, generator=g())
    assert out.shape == video.shape and out.abs().max() <= 1
    assert torch.equal(out, tiny_ltx.decode(z, generator=g()))  # the decode noise is seeded


def test_twin_reloads_identically_and_is_frozen(tiny_ltx, tiny_cfg):
    again = LTXVideo(tiny_cfg.model.pretrained, twin="tiny")  # directory exists: pure load
    for (n, a), b in zip(
        tiny_ltx.transformer.state_dict().items(), again.transformer.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), n
    assert not any(p.requires_grad for p in again.parameters())
    again.train()
    assert not again.vae.training and not again.transformer.training


def test_per_token_timesteps_reach_the_dit(tiny_ltx):
    g = torch.Generator().manual_seed(0)
    grid = (2, 2, 2)
    x = torch.randn(1, 8, 128, generator=g)
    coords = rope_coords(grid_positions(grid), torch.tensor([24.0]))
    text, mask = tiny_ltx.text_encoder(["a red circle moves right"])
    t = torch.full((1, 8), 0.5)
    base = tiny_ltx.velocity(x, t, coords, text, mask)
    t2 = t.clone()
    t2[0, 0] = 0.0
    moved = tiny_ltx.velocity(x, t2, coords, text, mask)
    assert base.shape == (1, 8, 128)
    assert not torch.allclose(base[0, 0], moved[0, 0])  # the token whose timestep changed


def test_pack_unpack_and_rope_coords():
    z = torch.randn(2, 128, 3, 2, 4)
    assert torch.equal(unpack(pack(z), (3, 2, 4)), z)
    pos = grid_positions((3, 2, 4))
    assert pos.shape == (24, 3) and pos[8].tolist() == [1.0, 0.0, 0.0]  # frame-major like pack
    c = rope_coords(pos, torch.tensor([24.0, 8.0]))  # (B, 3, N)
    assert c.shape == (2, 3, 24)
    # latent frame k starts at pixel frame max(8k-7, 0): 0, 1, 9 -> seconds at each fps
    assert c[0, 0, [0, 8, 16]].tolist() == pytest.approx([0.0, 1 / 24, 9 / 24])
    assert c[1, 0, 16].item() == pytest.approx(9 / 8)
    before = rope_coords(grid_positions((2, 1, 1), frame_offset=-2), torch.tensor([24.0]))
    assert before[0, 0].tolist() == pytest.approx([-16 / 24, -8 / 24])  # option C's frames before the target
    assert c[0, 1].max().item() == 32.0 and c[0, 2].max().item() == 96.0


def test_missing_checkpoint_dir_names_path_and_contents(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        LTXVideo(str(tmp_path / "nope"))
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="transformer/config.json"):
        LTXVideo(str(tmp_path / "half"))


def test_build_twin_is_deterministic(tmp_path, tiny_cfg):
    arch = OmegaConf.to_container(tiny_cfg.model.architecture)
    build_twin(tmp_path / "a", arch)
    build_twin(tmp_path / "b", arch)
    a = (tmp_path / "a" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()


def test_attention_backend_is_chosen_per_model(tiny_cfg):
    """model.attention_backend routes the DiT's attention (same values on CPU's exact math backend),
    leaves diffusers' process-wide default alone, and a wrong name is one line naming the key."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    default = _AttentionBackendRegistry._active_backend
    plain = LTXVideo(tiny_cfg.model.pretrained, twin="tiny")
    math = LTXVideo(tiny_cfg.model.pretrained, twin="tiny", attention_backend="_native_math")
    assert math.transformer.transformer_blocks[0].attn1.processor._attention_backend.value == "_native_math"
    assert _AttentionBackendRegistry._active_backend == default
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 128, generator=g)
    coords = rope_coords(grid_positions((2, 2, 2)), torch.tensor([24.0]))
    text, mask = plain.text_encoder(["a red circle moves right"])
    t = torch.full((1, 8), 0.5)
    assert torch.allclose(
        math.velocity(x, t, coords, text, mask), plain.velocity(x, t, coords, text, mask), atol=1e-5
    )
    with pytest.raises(
        ValueError, match="model.attention_backend='cudnn' is not a diffusers attention backend"
    ):
        LTXVideo(tiny_cfg.model.pretrained, twin="tiny", attention_backend="cudnn")


def test_compile_mode_reaches_the_dit_blocks_and_a_bad_one_fails_in_one_line(tiny_cfg, monkeypatch):
    from hydra.utils import instantiate

    calls = []  # (module class, torch.compile's arguments): recorded, not compiled

    def record(module, **kw):
        calls.append((type(module).__name__, kw))

    monkeypatch.setattr(torch.nn.Module, "compile", record)
    instantiate(tiny_cfg.model, compile=True, compile_mode="reduce-overhead")
    blocks = [kw for name, kw in calls if name == "LTXVideoTransformerBlock"]
    assert len(blocks) == 2 and all(kw == {"dynamic": False, "mode": "reduce-overhead"} for kw in blocks)
    decoder = [kw for name, kw in calls if name == "LTXVideoDecoder3d"]
    assert decoder == [{"dynamic": False, "mode": None}]  # torch's default mode
    with pytest.raises(ValueError, match="model.compile_mode='fast' is not a torch.compile mode; use null"):
        LTXVideo("/does/not/exist", compile_mode="fast")  # before anything loads
    # inductor options on top of the mode's own (torch.compile takes a mode or options, not both)
    calls.clear()
    tuning = {"coordinate_descent_tuning": True}
    instantiate(tiny_cfg.model, compile=True, compile_mode="reduce-overhead", compile_options=tuning)
    blocks = [kw for name, kw in calls if name == "LTXVideoTransformerBlock"]
    graphs_and_tuning = {"triton.cudagraphs": True, "coordinate_descent_tuning": True}
    assert len(blocks) == 2 and all(kw == {"dynamic": False, "options": graphs_and_tuning} for kw in blocks)
    decoder = [kw for name, kw in calls if name == "LTXVideoDecoder3d"]
    assert decoder == [{"dynamic": False, "options": tuning}]
    with pytest.raises(ValueError, match="model.compile_options has 'coordinate_descent', not an option"):
        LTXVideo("/does/not/exist", compile_options={"coordinate_descent": True})


def test_graphed_blocks_hand_on_a_copy_of_their_output_when_no_gradient_is_recorded(monkeypatch):
    """Without autograd, CUDA graph trees reclaim a graphed block's output at the next compiled call,
    which the next block reads: blocks compiled with reduce-overhead return a copy then (with autograd,
    and in other modes, the output itself)."""
    from foresight.models.compiled import compile_blocks

    graph_memory = torch.zeros(3)  # a graph's static output buffer, rewritten by every replay

    def capture(module, **kw):
        def replay(x):
            return graph_memory.copy_(x * 2)

        module._compiled_call_impl = replay  # where nn.Module.compile puts the compiled call

    monkeypatch.setattr(torch.nn.Module, "compile", capture)
    blocks = [torch.nn.Identity(), torch.nn.Identity()]
    compile_blocks(blocks, "reduce-overhead")
    with torch.no_grad():
        first = blocks[0](torch.ones(3))
        second = blocks[1](first)
    assert first.tolist() == [2.0, 2.0, 2.0] and second.tolist() == [4.0, 4.0, 4.0]  # first survived
    assert blocks[0](torch.ones(3)) is graph_memory  # autograd on: the graph's own output
    compile_blocks(blocks, None)
    with torch.no_grad():
        assert blocks[0](torch.ones(3)) is graph_memory  # no CUDA graphs, nothing to copy
    for mode, options in (("max-autotune", None), (None, {"triton.cudagraphs": True})):  # graphed too
        compile_blocks(blocks, mode, options)
        with torch.no_grad():
            assert blocks[0](torch.ones(3)) is not graph_memory


def test_with_cuda_graphs_sampling_replays_one_graph_per_shape_and_training_runs_eager(
    tiny_cfg, tiny_ltx, monkeypatch
):
    """model.cuda_graphs: each DiT forward without gradients is replayed from a graph captured once per
    input shape, with this call's inputs copied in and the output copied out. The capture needs a GPU
    (foresight.bench compares the graphed forward with the eager one there: dit_graphs_error); here a
    stand-in graph replays the eager forward on the captured inputs, so the bookkeeping is checked."""
    from hydra.utils import instantiate

    from foresight.models.graphs import CudaGraphs

    ltx = instantiate(tiny_cfg.model, cuda_graphs=True)
    captured = []
    monkeypatch.setattr(ltx.graphs, "capture", stand_in_capture(ltx.dit, captured))
    monkeypatch.setattr(CudaGraphs, "applies", staticmethod(lambda like: not torch.is_grad_enabled()))
    plain = tiny_ltx
    g = torch.Generator().manual_seed(0)
    coords = rope_coords(grid_positions((2, 2, 2)), torch.tensor([24.0]))
    text = torch.randn(1, 6, ltx.caption_dim, generator=g)
    mask = torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        for t in (0.9, 0.5, 0.1):  # a sampler's steps: one shape, one capture
            x, t_tok = torch.randn(1, 8, 128, generator=g), torch.full((1, 8), t)
            v = ltx.velocity(x, t_tok, coords, text, mask)
            assert torch.equal(v, plain.velocity(x, t_tok, coords, text, mask))  # this call's inputs
        channels_first = x.mT.contiguous().mT  # as the flow loss hands packed latents: the same graph
        assert torch.equal(ltx.velocity(channels_first, t_tok, coords, text, mask), v)
        ltx.velocity(x, t_tok, coords, text[:, :4], mask[:, :4])  # a shorter caption: its own graph
        with torch.autocast("cpu", dtype=torch.bfloat16):  # other autocast settings: their own graph
            ltx.velocity(x, t_tok, coords, text, mask)
    assert len(captured) == 3 and len(ltx.graphs.graphs) == 3
    x.requires_grad_(True)
    ltx.velocity(x, t_tok, coords, text, mask).sum().backward()  # training: eager, a gradient flows
    assert len(captured) == 3 and x.grad.abs().sum() > 0
    ltx.quantize_dit("fp8")  # the captured graphs read the layers now replaced: dropped
    assert not ltx.graphs.graphs
    with pytest.raises(ValueError, match="model.cuda_graphs=true replays the whole DiT forward"):
        LTXVideo("/does/not/exist", cuda_graphs=True, compile_mode="reduce-overhead")  # before loading
    with pytest.raises(ValueError, match="model.cuda_graphs=true replays the whole DiT forward"):
        LTXVideo("/does/not/exist", cuda_graphs=True, compile_options={"triton.cudagraphs": True})


def test_merged_lora_gives_the_wrapped_dits_velocity_and_refuses_fp8_weights(tiny_cfg):
    from hydra.utils import instantiate
    from peft.tuners.tuners_utils import BaseTunerLayer

    from foresight.models.quantize import Fp8Linear

    torch.manual_seed(0)
    ltx = instantiate(tiny_cfg.model)  # its own: merging changes the weights
    ltx.add_lora(rank=4, alpha=8, targets=["to_q", "to_k", "to_v", "to_out.0"])
    for name, p in ltx.transformer.named_parameters():
        if "lora_B" in name:  # a trained LoRA's update, not peft's zero start
            p.data.normal_(0, 0.05)
    grid = (2, 2, 2)
    x = torch.randn(1, 8, 128)
    coords = rope_coords(grid_positions(grid), torch.tensor([24.0]))
    text, mask = ltx.text_encoder(["a red circle moves right"])
    t = torch.full((1, 8), 0.5)
    with torch.no_grad():
        wrapped = ltx.velocity(x, t, coords, text, mask)
        ltx.merge_lora()
        merged = ltx.velocity(x, t, coords, text, mask)
    assert not any(isinstance(m, BaseTunerLayer) for m in ltx.transformer.modules())
    assert not any("lora_" in n for n, _ in ltx.transformer.named_parameters())
    # the tiny twin is fp32: merged and wrapped differ by fp32 rounding only; the update is not lost
    torch.testing.assert_close(merged, wrapped, rtol=1e-4, atol=1e-5)
    fp8 = instantiate(tiny_cfg.model, dit_quantize="fp8")
    fp8.add_lora(rank=4, alpha=8, targets=["to_q"])
    with pytest.raises(ValueError, match="merge_lora=true needs the DiT.s own weights"):
        fp8.merge_lora()
    ltx.quantize_dit("fp8")  # merged first, then fp8: the bare DiT's layers
    assert isinstance(ltx.transformer.transformer_blocks[0].attn1.to_q, Fp8Linear)


def test_the_compiled_dit_serves_eager_and_captured_forwards_with_one_compilation(tiny_cfg):
    """A CUDA graph's capture runs without autocast's cache (graphs.autocast_cache_off), and that setting
    is one of torch.compile's guards: eager forwards in the other setting compiled a second variant of
    each block, tuned apart, whose kernels could round otherwise (graphed and eager velocities 1%
    apart on an H200). Every DiT forward now runs in the capture's setting: no recompilation."""
    from hydra.utils import instantiate

    from foresight.models.graphs import autocast_cache_off

    ltx = instantiate(tiny_cfg.model, compile=True)
    x = torch.randn(1, 8, 128)
    coords = rope_coords(grid_positions((2, 2, 2)), torch.tensor([24.0]))
    text, mask = ltx.text_encoder(["a red circle moves right"])
    t = torch.full((1, 8), 0.5)
    with torch.no_grad():
        eager = ltx.velocity(x, t, coords, text, mask)
    with torch._dynamo.config.patch(error_on_recompile=True):
        # CudaGraphs.capture's state
        with torch.inference_mode(False), torch.no_grad(), autocast_cache_off():
            captured = ltx.velocity(x, t, coords, text, mask)
    assert torch.equal(captured, eager)
