"""The frozen Qwen2.5-VL reader: context frames + instruction -> hidden states the adapter reads.

The context frames go in as a video, Qwen2.5-VL's native path: frames are paired into 2-frame
temporal patches (a clip of C frames costs C/2 x the tokens of one image, with temporal rotary
positions). Transformers' video processor needs torchvision, which Foresight does without, so
the video patches are assembled from the image processor's PIL path: each frame is resized and
normalised as an image (the image path tiles it twice in time), then consecutive frames fill the
two temporal slots. A 2-frame clip of one repeated frame therefore equals the image path exactly.

`preprocess="tensor"` does the same resize (bicubic, antialiased, back to 8 bits), rescale, normalise
and patch layout as tensor ops on the frames' device, for the whole batch at once: no host round
trip, no per-frame PIL call (74 of the 7B VLM's 167 ms per prediction on an H200 were the PIL path).
Its resize is torch's, not Pillow's: pixels agree to within one 8-bit level but for rare edge pixels
(tests/test_encoders.py measures it), as transformers' own torchvision processor differs from PIL.

The language model reads the video tokens at Qwen2.5-VL's M-RoPE positions (temporal, height, width
ids; the temporal ones in absolute time from the clip's fps), from transformers' own get_rope_index.
A forward is two halves: `inputs` works out on the host everything the GPU half needs (positions,
the vision tower's window layout, the video tokens' slots, the mask), and `states` runs the tower
and the language model without one host read, so on a GPU it can be replayed as a CUDA graph
(`cuda_graphs`, foresight.models.graphs). tests/test_encoders.py holds both to transformers' own forward.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids, get_vision_window_index

from foresight.models.graphs import CudaGraphs
from foresight.models.hub import freeze, own_rng, resolve_pretrained, torch_dtype
from foresight.models.quantize import check as check_quantize
from foresight.models.quantize import quantize as quantize_linears
from foresight.models.tokenizers import word_tokenizer

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
SYSTEM = "You are a helpful assistant."
VIDEO = 2  # mm_token_type_ids of a video placeholder token (text 0, image 1), as Qwen's processor marks them
# with cuda_graphs, token sequences are padded to a multiple of this: prompts of other lengths share a graph
GRAPH_TOKENS = 64
DEFAULT_FPS = 24.0  # the frame rate transformers assumes for a video given without metadata
PREPROCESS = ("pil", "tensor")  # where the frames are resized and patched: the host's PIL, or tensor ops

_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2,  # the published configs' (transformers' class default is 4)
)
_TEXT_7B = dict(
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    max_position_embeddings=128000,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
)
SIZES = {
    "7b": dict(text=_TEXT_7B, vision=dict(_VISION, out_hidden_size=3584), tie=False),
    "3b": dict(
        text=dict(
            _TEXT_7B,
            vocab_size=151936,
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
        ),
        vision=dict(_VISION, out_hidden_size=2048),
        tie=True,
    ),
    # head_dim 16: mrope sections (t, h, w) must sum to head_dim / 2
    "tiny": dict(
        text=dict(
            _TEXT_7B,
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]},
        ),
        vision=dict(
            _VISION,
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            fullatt_block_indexes=[1],
        ),
        tie=False,
    ),
}


def qwen2_5_vl_config(
    size: str, vision_ids: dict[str, int] | None = None, text_ids: dict[str, int] | None = None
) -> Qwen2_5_VLConfig:
    """Published sizes, set explicitly: the default Qwen2_5_VLConfig() is 72B-sized.

    vision_ids: image/video/vision_start/vision_end token ids; text_ids: bos/eos ids (twins only:
    real checkpoints carry their own).
    """
    spec = SIZES[size]
    return Qwen2_5_VLConfig(
        text_config=dict(spec["text"], tie_word_embeddings=spec["tie"], **(text_ids or {})),
        vision_config=spec["vision"],
        tie_word_embeddings=spec["tie"],
        **(vision_ids or {}),
    )


class FrozenVLM(nn.Module):
    """(B, C, H, W, 3) uint8 context + instructions -> (B, L, hidden x len(layers)), mask (B, L).

    Sequences are right-padded; `mask` is True on real tokens (vision and text alike).
    """

    def __init__(
        self,
        pretrained: str,
        dtype: str = "float32",
        layers: list[int] = (-1,),
        max_pixels: int | None = None,
        max_text_tokens: int = 128,
        twin: str | None = None,
        size: str | None = None,
        device: str | None = None,
        preprocess: str = "pil",
        quantize: str | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        """twin="tiny": build a tiny twin into `pretrained` if absent, then load it. twin="random":
        random weights of the published `size` ("7b", "3b") in memory on `device`, with the offline
        tokenizer (speed benchmarks: only token counts matter, not ids). preprocess: "pil" (the image
        processor itself, on the host) or "tensor" (the same steps as tensor ops on the model's device).
        quantize: "int8" stores the linear weights as int8 (foresight.models.quantize), null keeps dtype.
        cuda_graphs: on a GPU, replay the forward as a CUDA graph per input shape (CudaGraphs); the
        token sequences are then right-padded to a multiple of GRAPH_TOKENS, so that prompts of other
        lengths share a graph (the padding follows every real token: their states are unchanged)."""
        super().__init__()
        check_quantize(quantize, "vlm.quantize")
        if preprocess not in PREPROCESS:
            raise ValueError(f"vlm.preprocess={preprocess!r}: use one of {', '.join(PREPROCESS)}")
        self.preprocess = preprocess
        if twin == "random":
            self.tokenizer = word_tokenizer(SPECIAL, pad="<|endoftext|>", eos="<|im_end|>", unk="<unk>")
            self.image_processor = Qwen2VLImageProcessorPil()
            eos = self.tokenizer.eos_token_id
            with torch.device(device or "cpu"):
                model = Qwen2_5_VLForConditionalGeneration(
                    qwen2_5_vl_config(
                        size, _vision_ids(self.tokenizer), {"bos_token_id": eos, "eos_token_id": eos}
                    )
                )
            model = model.to(torch_dtype(dtype))
        else:
            if twin is not None and not Path(pretrained).exists():
                build_tiny_vlm(pretrained)
            source = resolve_pretrained(pretrained, ["config.json", "preprocessor_config.json"])
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.image_processor = Qwen2VLImageProcessorPil.from_pretrained(source)
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(source, dtype=torch_dtype(dtype))
        if max_pixels is not None:  # the processor's pixel budget per frame (longest_edge counts pixels)
            self.image_processor.size.longest_edge = max_pixels
        self.model = freeze(
            quantize_linears(model.model, quantize, "vlm.quantize")
        )  # the LM head: never used
        self.window_hook = None
        self.batch_windows(True)
        self.layers = list(layers)
        self.max_text_tokens = max_text_tokens
        self.out_dim = model.config.text_config.hidden_size * len(self.layers)
        self.graphs = CudaGraphs(self.states) if cuda_graphs else None

    def batch_windows(self, enabled: bool) -> None:
        """The vision tower's windowed attention as one call per block (see batch_window_attention), or
        transformers' own path (a call per window); flash-attn's varlen kernel is left alone."""
        visual = self.model.visual
        for block in visual.blocks:
            vars(block.attn).pop("forward", None)
        if self.window_hook is not None:
            self.window_hook.remove()
            self.window_hook = None
        if enabled and "flash" not in str(visual.config._attn_implementation):
            self.window_hook = batch_window_attention(visual)

    def train(self, mode: bool = True) -> "FrozenVLM":
        return super().train(False)

    def video_patches(self, frames: np.ndarray) -> tuple[Tensor, Tensor]:
        """(C, H, W, 3) uint8 -> pixel_values_videos (T*h*w, 3*2*14*14), video_grid_thw (1, 3)."""
        if len(frames) % 2:  # temporal patches hold 2 frames: repeat the last (the most recent) one
            frames = np.concatenate([frames, frames[-1:]])
        out = self.image_processor(images=list(frames), return_tensors="pt")
        grid = out["image_grid_thw"][0]  # (1, h, w) per frame
        tp = self.image_processor.temporal_patch_size
        patches = out["pixel_values"].view(len(frames), -1, 3, tp, self.image_processor.patch_size**2)
        # take one temporal slot per frame, then pair consecutive frames into the two slots
        pairs = patches[:, :, :, 0].reshape(
            len(frames) // tp, tp, *patches.shape[1:3], -1
        )  # (T, 2, hw, 3, p*p)
        video = pairs.permute(0, 2, 3, 1, 4).reshape(-1, 3 * tp * patches.shape[-1])  # (T*hw, 3*2*p*p)
        return video, torch.tensor([[len(frames) // tp, int(grid[1]), int(grid[2])]])

    def video_patches_tensor(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W, 3) uint8 -> pixel_values_videos (B*T*h*w, 3*2*14*14), video_grid_thw (B, 3): what
        video_patches gives each clip, concatenated, computed where `context` lives."""
        proc = self.image_processor
        if context.shape[1] % 2:  # as video_patches: the last frame repeated to fill a temporal patch
            context = torch.cat([context, context[:, -1:]], 1)
        b, c, h, w, _ = context.shape
        p, m, tp = proc.patch_size, proc.merge_size, proc.temporal_patch_size
        rh, rw = smart_resize(
            h, w, factor=p * m, min_pixels=proc.size.shortest_edge, max_pixels=proc.size.longest_edge
        )
        x = context.flatten(0, 1).permute(0, 3, 1, 2).float()  # (B*C, 3, H, W), 0..255
        x = F.interpolate(x, size=(rh, rw), mode="bicubic", antialias=True)  # Pillow's kernel (a = -0.5)
        x = x.round().clamp(0, 255)  # the processor resizes 8-bit images: back to 8 bits
        mean = torch.tensor(proc.image_mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(proc.image_std, device=x.device).view(1, 3, 1, 1)
        x = (x * proc.rescale_factor - mean) / std  # (B*C, 3, rh, rw)
        gh, gw = rh // p, rw // p
        x = x.reshape(b, c // tp, tp, 3, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)  # (B, T, gh/m, gw/m, m, m, 3, tp, p, p): Qwen's order
        grid = torch.tensor([[c // tp, gh, gw]]).expand(b, 3)  # on the host: token counts are read there
        return x.reshape(-1, 3 * tp * p * p), grid

    def prompt(self, num_video_tokens: int, instruction: str) -> str:
        # Qwen2.5-VL's chat format, the video placeholder expanded to one token per merged patch
        return (
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n<|vision_start|>"
            f"{'<|video_pad|>' * num_video_tokens}<|vision_end|>{instruction}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )

    @torch.no_grad()
    def forward(
        self, context: Tensor, prompts: list[str], fps: Tensor | list[float] | float | None = None
    ) -> tuple[Tensor, Tensor]:
        """fps: the context's frame rate (one, or one per clip; None: transformers' 24). Qwen2.5-VL places
        a video's temporal patches in absolute time (`tokens_per_second` position steps a second)."""
        inputs = self.inputs(context, prompts, fps)
        graphed = self.graphs is not None and self.graphs.applies(inputs.pixels)
        return (self.graphs(inputs) if graphed else self.states(inputs)), inputs.attention_mask

    def inputs(
        self, context: Tensor, prompts: list[str], fps: Tensor | list[float] | float | None
    ) -> VLMInputs:
        """Everything a forward reads, worked out on the host and sent to the model's device: the frames'
        patches, the chat tokens, their M-RoPE positions and the vision tower's window layout, so that
        `states` never waits for the GPU (and can be replayed as a CUDA graph)."""
        merge, device = self.image_processor.merge_size**2, self.model.device
        if self.preprocess == "tensor":
            pixels, grids = self.video_patches_tensor(context.to(device))
        else:
            videos = [self.video_patches(frames) for frames in context.cpu().numpy()]
            pixels, grids = torch.cat([v for v, _ in videos]), torch.cat([g for _, g in videos])
        tokens = (grids.prod(-1) // merge).tolist()  # video tokens per clip
        texts = []
        for count, instruction in zip(tokens, prompts, strict=True):
            words = self.tokenizer(instruction, add_special_tokens=False).input_ids[: self.max_text_tokens]
            texts.append(self.prompt(count, self.tokenizer.decode(words)))
        tok = self.tokenizer(
            texts,
            padding=True,
            pad_to_multiple_of=GRAPH_TOKENS if self.graphs is not None else None,
            return_tensors="pt",
            padding_side="right",
        )
        ids, mask = tok.input_ids, tok.attention_mask.bool()  # (B, L) on the host
        visual = self.model.visual
        m = visual.spatial_merge_size
        window_index, cu_windows = get_vision_window_index(grids, m, visual.window_size, visual.patch_size)
        longest, longest_window = longest_sequences(visual, grids)
        return VLMInputs(
            pixels=pixels.to(device, self.model.dtype),
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            positions=self.positions(ids, mask, grids, fps).to(device),
            slots=(ids == self.model.config.video_token_id).flatten().nonzero()[:, 0].to(device),
            vision_positions=get_vision_position_ids(grids, m).to(device),
            cu_seqlens=get_vision_cu_seqlens(grids).to(device),
            window_index=window_index.to(device),
            cu_window_seqlens=cu_windows.to(device),
            grids=grids,
            max_seqlen=longest,
            max_window_seqlen=longest_window,
        )

    def positions(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        grids: Tensor,
        fps: Tensor | list[float] | float | None,
    ) -> Tensor:
        """(B, L) host tokens and mask, (B, 3) host grids -> (3, B, L) M-RoPE position ids (temporal,
        height, width), by transformers' own get_rope_index, on the host. Transformers (5.23+) computes
        them only when given the processor's `mm_token_type_ids`; without them every token, video
        patches included, gets plain 1D positions, which is not how Qwen2.5-VL reads video."""
        kinds = (input_ids == self.model.config.video_token_id).int() * VIDEO  # (B, L)
        rates = torch.as_tensor(DEFAULT_FPS if fps is None else fps, dtype=torch.float64).cpu()
        seconds = self.image_processor.temporal_patch_size / rates.reshape(-1).expand(len(grids))  # (B,)
        positions, _ = self.model.get_rope_index(
            input_ids,
            mm_token_type_ids=kinds,
            video_grid_thw=grids,
            second_per_grid_ts=seconds,
            attention_mask=attention_mask,
        )
        return positions

    def states(self, inputs: VLMInputs) -> Tensor:
        """Prepared inputs -> (B, L, hidden x len(layers)): the vision tower, its tokens put in the video
        placeholders' slots, the language model. What transformers' Qwen2_5_VLModel.forward does, with
        every host-side value precomputed (tests/test_encoders.py compares the two): no host reads."""
        model = self.model
        video = model.visual(
            inputs.pixels,
            grid_thw=inputs.grids,
            position_ids=inputs.vision_positions,
            cu_seqlens=inputs.cu_seqlens,
            max_seqlen=inputs.max_seqlen,
            window_index=inputs.window_index,
            cu_window_seqlens=inputs.cu_window_seqlens,
            max_window_seqlen=inputs.max_window_seqlen,
        ).pooler_output  # (V, D): the video tokens of every clip, in order
        embeds = model.get_input_embeddings()(inputs.input_ids)  # (B, L, D)
        embeds = embeds.flatten(0, 1).index_copy(0, inputs.slots, video.to(embeds.dtype)).view_as(embeds)
        out = model.language_model(
            inputs_embeds=embeds,
            position_ids=inputs.positions,
            # the causal kernel, no mask: the padding is on the right, after every real token, so
            # causality alone keeps real tokens from it (what the pads themselves read is masked out)
            attention_mask={"full_attention": None},
            output_hidden_states=True,
            use_cache=False,  # one forward, no generation: no KV cache to build layer by layer
        )
        return torch.cat([out.hidden_states[i] for i in self.layers], dim=-1)  # (B, L, out_dim)


@dataclass
class VLMInputs:
    """One forward's inputs, prepared on the host (FrozenVLM.inputs); tensors on the model's device but
    `grids`. B clips, L tokens (right-padded), N patches, V video tokens."""

    pixels: Tensor  # (N, 3*2*14*14) normalised patches, the model's dtype
    input_ids: Tensor  # (B, L)
    attention_mask: Tensor  # (B, L) bool, True on real tokens
    positions: Tensor  # (3, B, L) M-RoPE ids
    slots: Tensor  # (V,) each video token's index in the flattened (B*L) sequence
    vision_positions: Tensor  # (N, 2) the patches' (row, column)
    cu_seqlens: Tensor  # (B*T + 1,) int32 temporal-patch boundaries (full-attention blocks)
    window_index: Tensor  # (N/4,) merged patches in window order
    cu_window_seqlens: Tensor  # (W + 1,) int32 window boundaries
    grids: Tensor  # (B, 3) on the host: (t, h, w) patches per clip
    max_seqlen: int
    max_window_seqlen: int

    def tensors(self) -> dict[str, Tensor]:
        """The device tensors (all but the host's grids): what a CUDA graph reads."""
        return {k: v for k, v in vars(self).items() if isinstance(v, Tensor) and k != "grids"}

    def key(self) -> tuple:
        """What a CUDA graph of `states` is specific to: every shape and the grids."""
        shapes = tuple(tuple(t.shape) for t in self.tensors().values())
        return shapes, tuple(map(tuple, self.grids.tolist()))


def longest_sequences(visual: nn.Module, grids: Tensor) -> tuple[int, int]:
    """(B, 3) host grids -> the longest full-attention sequence (a temporal patch's patches) and the
    longest window, in patches: the padded lengths of batch_window_attention."""
    merge = visual.spatial_merge_size
    side = visual.window_size // merge // visual.patch_size  # a window's side, in merged patches
    grid = grids.tolist()
    longest = max(h * w for _, h, w in grid)
    return longest, max(min(side, h // merge) * min(side, w // merge) * merge**2 for _, h, w in grid)


def batch_window_attention(visual: nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Qwen2.5-VL's vision attention, within windows, as one batched SDPA call per block, with no host
    read inside the blocks. Returns the handle of the hook it adds (remove it to undo, with the
    blocks' `forward` attributes).

    Without flash-attn, transformers (5.23) splits the patches by window on the host
    (`lengths.tolist()`, a device sync) and calls SDPA once per window, in each of the 32 vision
    blocks: dozens of small launches and a sync per block for a few GFLOP. Here the windows are
    gathered into a padded batch (W, H, L, d) with a key mask, so each block is one call; the layout
    (which patch sits in which slot) is worked out once per forward for each of the two layouts the
    blocks use (windows, and whole temporal patches in the full-attention blocks), and read back by a
    gather, not a boolean mask (whose size the host would have to wait for). The padded length L, the
    longest window, comes from the grid, which the tower reads on the host anyway: a hook hands it
    to transformers as `max_seqlen` / `max_window_seqlen`, which it passes to every block. So while
    the tower runs, the host never waits for the GPU, and queues the next blocks' kernels while the
    GPU runs the last ones. Same function: tests/test_encoders.py compares it with transformers' own
    path.
    """
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    def with_longest(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        grid = kwargs["grid_thw"] if "grid_thw" in kwargs else args[1]  # (N, 3): t, h, w
        longest, longest_window = longest_sequences(visual, grid)
        kwargs.setdefault("max_seqlen", longest)
        kwargs.setdefault("max_window_seqlen", longest_window)
        return args, kwargs

    layouts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # (cu_seqlens, index, valid, gather)

    def windows(cu: Tensor, length: int, longest: int | None) -> tuple[Tensor, Tensor, Tensor]:
        for seen, index, valid, gather in layouts:
            if seen is cu:  # held here, so its id cannot be reused by a later tensor
                return index, valid, gather
        if longest is None:  # called without the hook's lengths (a caller of the blocks themselves)
            longest = int((cu[1:] - cu[:-1]).max())
        index = cu[:-1, None] + torch.arange(longest, device=cu.device)  # (W, L) patch of each slot
        valid = index < cu[1:, None]  # (W, L): slots past a window's end are padding
        bounds = cu.long()  # transformers' int32 boundaries, in the dtype of the patch numbers
        patch = torch.arange(length, device=cu.device)
        window = torch.searchsorted(bounds[1:], patch, right=True)  # (S,) the window of each patch
        gather = window * longest + patch - bounds[window]  # (S,) its slot in the flattened (W*L) batch
        layouts[:] = [*layouts[-1:], (cu, index.clamp(max=length - 1), valid, gather)]
        return layouts[-1][1:]

    def attention(
        attn: nn.Module,
        hidden_states: Tensor,
        cu_seqlens: Tensor,
        position_embeddings: tuple[Tensor, Tensor],
        max_seqlen: int | None = None,
        **kwargs,
    ) -> Tensor:
        s = hidden_states.shape[0]  # patches, window-major (the tower permutes them so)
        q, k, v = (
            attn.qkv(hidden_states).reshape(s, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        )  # (S, H, d)
        q, k = apply_rotary_pos_emb_vision(q, k, *position_embeddings)
        index, valid, gather = windows(cu_seqlens, s, max_seqlen)  # (W, L), (W, L), (S,)
        q, k, v = (x[index].transpose(1, 2) for x in (q, k, v))  # (W, H, L, d)
        out = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=valid[:, None, None, :], scale=attn.scaling
        )  # (W, H, L, d)
        out = out.transpose(1, 2).flatten(0, 1)[gather]  # (S, H, d): each patch from its slot
        return attn.proj(out.reshape(s, -1))

    for block in visual.blocks:
        block.attn.forward = partial(attention, block.attn)
    return visual.register_forward_pre_hook(with_longest, with_kwargs=True)


def _vision_ids(tokenizer) -> dict[str, int]:
    """The config's vision token ids, as this tokenizer numbers them."""
    return {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }


@own_rng
def build_tiny_vlm(directory: str | Path, seed: int = 0) -> None:
    """Save a tiny random Qwen2.5-VL with an offline tokenizer and image processor (atomically)."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = word_tokenizer(SPECIAL, pad="<|endoftext|>", eos="<|im_end|>", unk="<unk>")
        eos = tokenizer.eos_token_id
        config = qwen2_5_vl_config("tiny", _vision_ids(tokenizer), {"bos_token_id": eos, "eos_token_id": eos})
        if len(tokenizer) > config.text_config.vocab_size:
            raise AssertionError("tiny tokenizer outgrew the tiny vocabulary")
        torch.manual_seed(seed)
        Qwen2_5_VLForConditionalGeneration(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # 56x56 px per frame: 4x4 patches of 14, merged 2x2 -> 4 tokens per 2-frame temporal patch
        Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56).save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process built it first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
