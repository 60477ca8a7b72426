"""Qwen2.5-VL and T5 readers: twins through the real loaders, masks, layers, published sizes."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration, T5Config, T5EncoderModel

from foresight.bench.host_reads import HostReads
from foresight.models.graphs import CudaGraphs
from foresight.models.text import T5_XXL
from foresight.models.vlm import FrozenVLM, qwen2_5_vl_config
from tests.helpers import stand_in_capture


@pytest.mark.parametrize(
    "size,params,vocab", [("7b", 8_292_166_656, 152_064), ("3b", 3_754_622_976, 151_936)]
)
def test_published_qwen_sizes_on_meta(size, params, vocab):
    # 7B: 7.07B language model + 0.68B vision tower + 0.54B untied LM head = 8.29B, as published.
    # The vocabularies differ (config.json of Qwen/Qwen2.5-VL-7B-Instruct and -3B-Instruct); 3B ties
    # its LM head to the embedding.
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(qwen2_5_vl_config(size))
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.config.text_config.vocab_size == vocab


def test_t5_xxl_encoder_size_on_meta():
    with torch.device("meta"):
        model = T5EncoderModel(T5Config(**T5_XXL))
    assert sum(p.numel() for p in model.parameters()) == 4_762_310_656


def test_t5_tokenizer_folder_of_only_spiece_model_loads(tmp_path, tiny_ltx, tiny_cfg):
    """LTX's releases ship T5's tokenizer as a sentencepiece model (`spiece.model`); one is trained
    here offline and read through the same loader, with and without a tokenizer_config.json."""
    import io
    import shutil

    import sentencepiece as spm

    from foresight.models.text import FrozenTextEncoder

    corpus = ["a red circle moves left", "the blue square slides right", "a green ball bounces up"] * 40
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=48,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    directory = tmp_path / "release"
    shutil.copytree(
        Path(tiny_cfg.model.pretrained) / "text_encoder", directory / "text_encoder"
    )  # built by tiny_ltx
    (directory / "tokenizer").mkdir()
    (directory / "tokenizer" / "spiece.model").write_bytes(model.getvalue())
    enc = FrozenTextEncoder(str(directory), max_tokens=16)
    states, mask = enc(["a red circle moves left", "blue"])
    assert type(enc.tokenizer).__name__ == "T5Tokenizer"
    assert states.shape == (2, 16, enc.out_dim) and mask[0].sum() > mask[1].sum() > 1  # pieces + </s>
    assert enc.tokenizer("a red circle").input_ids[-1] == 1  # T5 appends </s>
    enc = tiny_ltx.text_encoder
    states, mask = enc(["a red circle moves right", "blue"])
    assert states.shape == (2, enc.max_tokens, enc.out_dim) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [6, 2]  # words + </s>
    alone, _ = enc(["blue"])
    assert torch.allclose(alone[0, :2], states[1, :2], atol=1e-5)  # padding does not leak in
    assert not any(p.requires_grad for p in enc.parameters())


def test_vlm_twin_shapes_masks_and_padding(tiny_vlm):
    g = torch.Generator().manual_seed(0)
    context = torch.randint(0, 256, (2, 4, 64, 64, 3), generator=g, dtype=torch.uint8)
    outputs = []
    hook = tiny_vlm.model.language_model.register_forward_hook(lambda module, args, out: outputs.append(out))
    states, mask = tiny_vlm(context, ["a red circle moves right and a blue square moves up", "a ball"])
    hook.remove()
    assert outputs[0].cache is None  # a single forward builds no KV cache (host time on every layer)
    assert states.shape[:2] == mask.shape and states.shape[2] == tiny_vlm.out_dim == 64
    assert mask[0].sum() > mask[1].sum() and mask[0].all()  # right padding on the shorter prompt
    alone, alone_mask = tiny_vlm(context[1:], ["a ball"])
    n = int(alone_mask.sum())
    assert torch.allclose(alone[0, :n], states[1, :n], atol=1e-4)
    again, _ = tiny_vlm(context, ["a red circle moves right and a blue square moves up", "a ball"])
    assert torch.equal(again, states)


def test_vlm_layers_concatenate(tiny_cfg, tiny_vlm):
    two = FrozenVLM(tiny_cfg.vlm.pretrained, layers=[-1, -2])
    assert two.out_dim == 2 * tiny_vlm.out_dim
    context = torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8)
    states, _ = two(context, ["what happens next"])
    last, _ = tiny_vlm(context, ["what happens next"])
    assert torch.allclose(states[..., :64], last, atol=1e-5)


def test_video_patches_match_the_image_path(tiny_vlm):
    """A 2-frame clip of one frame is exactly what the image processor makes of that frame."""
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    video, grid = tiny_vlm.video_patches(np.stack([frame, frame]))
    image = tiny_vlm.image_processor(images=[frame], return_tensors="pt")
    assert torch.equal(grid, image["image_grid_thw"])
    assert torch.allclose(video, image["pixel_values"])
    odd, odd_grid = tiny_vlm.video_patches(np.stack([frame] * 3))  # odd counts repeat the last frame
    assert odd_grid[0, 0].item() == 2


def test_batched_window_attention_equals_transformers_per_window_path(tiny_cfg):
    # 196x252 px frames: 14x18 patches, so the 8x8-patch windows are ragged at the edges (padding is
    # exercised); the tiny tower has a windowed block and a full-attention block
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", max_pixels=196 * 252)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 4, 196, 252, 3), dtype=np.uint8))
    prompts = ["the ball rolls left", "a hand opens the door"]
    assert all("forward" in vars(block.attn) for block in vlm.model.visual.blocks)  # ours is in place
    seen = []
    original = vlm.model.visual.blocks[0].attn.forward
    vlm.model.visual.blocks[0].attn.forward = lambda *a, **k: (
        seen.append(k["cu_seqlens"]) or original(*a, **k)
    )
    ours, mask = vlm(frames, prompts)
    assert len(seen[0]) - 1 == 2 * 2 * 6  # 2 clips x 2 temporal patches x 6 windows of 7x9 merged patches
    vlm.batch_windows(False)  # back to transformers' own attention
    assert not any("forward" in vars(block.attn) for block in vlm.model.visual.blocks)
    theirs, their_mask = vlm(frames, prompts)
    assert torch.equal(mask, their_mask)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_the_language_model_reads_video_tokens_at_qwen_m_rope_positions(tiny_cfg):
    # Qwen2.5-VL's M-RoPE: text tokens step all three position ids together; a video's merged patches
    # share the text position where the video starts, plus their row (height id), column (width id)
    # and time (temporal id: a temporal patch of 2 frames lasts 2/fps s, tokens_per_second=2 ids a
    # second, floored); the text after it resumes at the start + the grid's longer side
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", max_pixels=196 * 252)  # 7x9 merged patches
    assert vlm.model.config.vision_config.tokens_per_second == 2  # the published configs' value
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 4, 196, 252, 3), dtype=np.uint8))
    seen = []
    vlm.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["position_ids"]), with_kwargs=True
    )
    _, mask = vlm(frames, ["the ball rolls left and then stops", "a hand"], fps=torch.tensor([2.0, 24.0]))
    positions = seen[0]  # (3, B, L)
    assert positions is not None and positions.shape == (3, *mask.shape)
    video = vlm.model.config.video_token_id
    for clip, per_temporal_patch in [(0, 2), (1, 0)]:  # 2 frames at 2 fps: 1 s; at 24 fps: 1/12 s
        ids = vlm.tokenizer(vlm.prompt(126, "x"))  # only to find where the video starts
        start = ids.input_ids.index(video)
        pos = positions[:, clip, : int(mask[clip].sum())]  # (3, real tokens)
        assert torch.equal(pos[:, :start], torch.arange(start).expand(3, -1))
        t, h, w = torch.meshgrid(torch.arange(2), torch.arange(7), torch.arange(9), indexing="ij")
        expected = torch.stack([t * per_temporal_patch, h, w]).reshape(3, -1) + start  # (3, 126)
        assert torch.equal(pos[:, start : start + 126], expected)
        after = pos[:, start + 126 :]
        assert torch.equal(after, torch.arange(after.shape[1]).expand(3, -1) + start + 9)
    states, _ = vlm(frames[:1], ["the ball rolls left and then stops"], fps=2.0)
    assert not torch.allclose(states, vlm(frames[:1], ["the ball rolls left and then stops"], fps=24.0)[0])


def test_the_prepared_forward_equals_transformers_own(tiny_cfg):
    # FrozenVLM prepares positions, window layout and mask on the host and runs the tower and the
    # language model itself; transformers' Qwen2_5_VLModel.forward, given what Qwen's processor
    # gives it (mm_token_type_ids, second_per_grid_ts), must read the same clips the same way
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", max_pixels=196 * 252)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 4, 196, 252, 3), dtype=np.uint8))
    prompts, fps = ["the ball rolls left and then stops", "a hand"], torch.tensor([2.0, 30.0])
    ours, mask = vlm(frames, prompts, fps=fps)
    inputs = vlm.inputs(frames, prompts, fps)
    vlm.batch_windows(False)  # transformers' own vision attention too
    ids = inputs.input_ids
    out = vlm.model(
        input_ids=ids,
        attention_mask=inputs.attention_mask.long(),
        pixel_values_videos=inputs.pixels,
        video_grid_thw=inputs.grids,
        mm_token_type_ids=(ids == vlm.model.config.video_token_id).int() * 2,  # the processor's marks
        second_per_grid_ts=2 / fps,  # the processor's: temporal_patch_size / fps
        output_hidden_states=True,
        use_cache=False,
    )
    theirs = out.hidden_states[-1]
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-5), (ours[mask] - theirs[mask]).abs().max()


def test_the_vlm_forward_never_makes_the_host_wait_for_the_gpu(tiny_cfg):
    # a host read stalls the host until the GPU has run everything queued (the VLM stage is host-bound
    # on a GPU) and cannot be captured in a CUDA graph (vlm.cuda_graphs): every value the host needs is
    # worked out before the forward (FrozenVLM.inputs), none inside it
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", max_pixels=196 * 252)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 4, 196, 252, 3), dtype=np.uint8))
    inputs = vlm.inputs(frames, ["the ball rolls left", "a hand opens the door"], fps=24.0)
    with HostReads() as mode:
        vlm.states(inputs)
    assert not mode.reads, mode.reads
    with HostReads() as mode:  # what the vision blocks did before: a window length read, a boolean mask
        x = torch.arange(4.0)
        int(x.max()), x[x > 0]
    assert sorted(op for op, _ in mode.reads) == ["aten._local_scalar_dense.default", "aten.index.Tensor"]


def test_graphed_vlm_states_capture_once_per_shape_and_copy_in_and_out(tiny_cfg, monkeypatch):
    # the capture itself needs a GPU (the prediction bench compares its states with the eager
    # forward's: vlm_graphs_error); here a stand-in graph replays the eager forward on the captured
    # inputs, so the bookkeeping around it is checked: one capture per input shape, new inputs copied
    # into the captured ones, the output copied out, the least recently used graph dropped
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny")
    captured = []
    graphs = CudaGraphs(vlm.states, limit=2)
    monkeypatch.setattr(graphs, "capture", stand_in_capture(vlm.states, captured))
    g = torch.Generator().manual_seed(0)
    clips = [torch.randint(0, 256, (n, 4, 64, 64, 3), generator=g, dtype=torch.uint8) for n in (1, 1, 2)]
    for clip, prompt in [
        (clips[0], "a ball"),
        (clips[1], "a cube"),
        (clips[2], "a ball"),
        (clips[0], "a ball"),
    ]:
        inputs = vlm.inputs(clip, [prompt] * len(clip), None)
        out = graphs(inputs)
        assert torch.equal(out, vlm.states(inputs))  # this call's inputs, not the captured ones
        assert all(out.data_ptr() != graph[2].data_ptr() for graph in graphs.graphs.values())
    assert len(captured) == 2 and len(graphs.graphs) == 2  # "a cube" has the tokens of "a ball"
    inputs = vlm.inputs(clips[0], ["the ball rolls left"], None)  # a third shape: the oldest goes
    graphs(inputs)
    assert len(captured) == 3 and [k for k, *_ in graphs.graphs] == [captured[0], captured[2]]  # 2 clips


def test_with_cuda_graphs_prompts_of_other_lengths_share_a_graph_and_read_the_same(tiny_cfg, tiny_vlm):
    graphed = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", cuda_graphs=True)  # on the CPU: eager
    context = torch.randint(
        0, 256, (2, 4, 64, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    keys = set()
    for prompts in (["a ball", "the ball rolls left"], ["a red circle moves right", "a cube"]):
        keys.add(graphed.inputs(context, prompts, None).key())
        states, mask = graphed(context, prompts)
        plain, plain_mask = tiny_vlm(context, prompts)
        assert states.shape[1] % 64 == 0 and states.shape[1] > plain.shape[1]  # padded to the bucket
        assert torch.equal(mask[:, : plain.shape[1]], plain_mask) and not mask[:, plain.shape[1] :].any()
        assert torch.allclose(states[:, : plain.shape[1]][plain_mask], plain[plain_mask], atol=1e-5)
    assert len(keys) == 1  # one graph for both batches


def test_frozen_parts_stay_in_eval(tiny_vlm):
    tiny_vlm.train()
    assert not tiny_vlm.model.training
    assert not any(p.requires_grad for p in tiny_vlm.parameters())


def test_max_pixels_bounds_the_frame_tokens(tiny_cfg):
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, max_pixels=112 * 112)
    video, grid = vlm.video_patches(np.zeros((2, 256, 256, 3), dtype=np.uint8))
    assert grid.tolist() == [[1, 8, 8]]  # 112 px / 14 px patches


@pytest.mark.parametrize("source", ["world", "real"])
def test_tensor_preprocessing_matches_the_image_processor(tiny_cfg, source):
    """vlm.preprocess=tensor (resize, rescale, normalise, patch layout as tensor ops) gives the image
    processor's patches: the same grid and token count, pixels within one 8-bit level (torch's
    antialiased bicubic is Pillow's kernel; values round apart, rarely by more than a level), and states
    nearer the processor's than a one-level jitter of the frames puts them."""
    from tests.conftest import REAL

    if source == "world":
        from foresight.world.render import render_batch

        frames, _, _ = render_batch([0, 1], "train")  # (2, 20, 64, 64, 3): hard edges, flat colour
        frames, max_pixels = frames[:, :3], 56 * 56  # an odd count: the last frame repeated
    else:
        if not REAL.exists():
            pytest.skip(f"real sample clips not found at {REAL}")
        from foresight.data.video import decode_window

        clip = decode_window(REAL / "flipping_a_pancake.mkv", 0, 4, height=512, width=768)
        frames, max_pixels = torch.from_numpy(np.stack([clip, clip[::-1].copy()])), 448 * 448
    vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", max_pixels=max_pixels)
    pil = [vlm.video_patches(clip) for clip in frames.numpy()]
    pixels, grid = vlm.video_patches_tensor(frames)
    assert torch.equal(grid, torch.cat([g for _, g in pil]))
    expected = torch.cat([p for p, _ in pil])
    assert pixels.shape == expected.shape
    std = torch.tensor(vlm.image_processor.image_std).repeat_interleave(2 * 14 * 14)  # per patch column
    levels = ((pixels - expected) * std * 255).abs()  # the difference in 8-bit levels
    assert (levels < 1.01).float().mean() > 0.999 and levels.mean() < 0.2, (levels.max(), levels.mean())
    prompts = ["the red circle moves left", "a hand flips the pancake"]
    theirs, their_mask = vlm(frames, prompts)
    # the yardstick: how far the states move when every pixel moves by one level at random
    step = torch.randint(-1, 2, frames.shape, generator=torch.Generator().manual_seed(0))
    jittered, _ = vlm((frames.int() + step).clamp(0, 255).to(torch.uint8), prompts)
    vlm.preprocess = "tensor"
    ours, mask = vlm(frames, prompts)
    assert torch.equal(mask, their_mask)
    moved, jitter = (ours - theirs).abs().mean(), (jittered - theirs).abs().mean()
    assert moved < jitter, (moved, jitter)
    with pytest.raises(ValueError, match="vlm.preprocess='gpu': use one of pil, tensor"):
        FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", preprocess="gpu")
