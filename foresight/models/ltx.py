"""LTX-Video's frozen parts (VAE, DiT, T5) behind one small interface, and LTX's token geometry.

Loads a real checkpoint (hub id or local directory laid out as the diffusers releases are:
`vae/`, `transformer/`, `text_encoder/`, `tokenizer/`; a release published only as one file gets
its DiT from `transformer_file`) or builds a tiny random twin of the same classes into such a
directory first and loads it back through the very same code. Twins keep the real semantics:
32x32 spatial and 8x temporal compression, 128 latent channels, a timestep-conditioned
("denoising") decoder, per-token DiT timesteps.

Each release differs in ways that change results, so each model config states them (conf/model/):
its sampling schedule (`foresight.flow.Schedule`), its decoder settings, and whether RoPE time
carries the causal first-frame offset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
from torch import Tensor, nn

from foresight.flow import Schedule
from foresight.models.compiled import (
    check_compile_mode,
    check_compile_options,
    compile_blocks,
    graphs_blocks,
)
from foresight.models.graphs import CudaGraphs, autocast_cache_off
from foresight.models.hub import freeze, own_rng, resolve_pretrained, torch_dtype
from foresight.models.quantize import Fp8Linear, check_dit, lora_targets, quantize_dit
from foresight.models.quantize import check as check_quantize
from foresight.models.text import FrozenTextEncoder, build_tiny_text_encoder

SPATIAL = 32  # pixels per latent row/column
TEMPORAL = 8  # frames per latent frame after the first (causal: latent frame 0 is pixel frame 0 alone)


# --- token geometry: the same in training and sampling (docs/tokens.md) ----------------------------


def pack(latents: Tensor) -> Tensor:
    """(B, C, F, H, W) latents -> (B, F*H*W, C) tokens, frame-major as the DiT expects."""
    return latents.flatten(2).transpose(1, 2)


def unpack(tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """(B, N, C) tokens -> (B, C, F, H, W) latents for grid (F, H, W)."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, *grid)


def latent_grid(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent (F, H, W) of a pixel clip: F = (frames-1)/8 + 1, H = height/32, W = width/32."""
    return (frames - 1) // TEMPORAL + 1, height // SPATIAL, width // SPATIAL


def grid_positions(grid: tuple[int, int, int], frame_offset: float = 0.0, device=None) -> Tensor:
    """Latent-unit (frame, row, col) of every token of `grid`: (N, 3), frame-major like `pack`."""
    f, h, w = (torch.arange(n, device=device, dtype=torch.float32) for n in grid)
    pos = torch.stack(torch.meshgrid(f + frame_offset, h, w, indexing="ij"), dim=-1)  # (F, H, W, 3)
    return pos.reshape(-1, 3)


def rope_coords(positions: Tensor, fps: Tensor, causal: bool = True) -> Tensor:
    """LTX's RoPE coordinates (B, 3, N) from latent-unit positions (N, 3) or (B, N, 3).

    Time is in seconds of the pixel clip. causal (0.9.5+, LTX's `causal_temporal_positioning`,
    diffusers' LTXConditionPipeline): latent frame k > 0 covers pixel frames up to 8k and the
    causal first frame is frame 0 alone, so its coordinate is (8k + 1 - 8) / fps. Not causal
    (0.9.0/0.9.1, diffusers' LTXImageToVideoPipeline): 8k / fps. Frames before the target (k < 0,
    option C's extra conditioning frames) sit at 8k / fps either way. Rows and columns are pixel
    offsets (x32). The DiT divides by its base sizes itself.
    """
    if positions.ndim == 2:
        positions = positions.unsqueeze(0).expand(fps.shape[0], -1, -1)
    f = positions[..., 0]
    frame = torch.where(
        (f > 0) & causal, f * TEMPORAL + 1 - TEMPORAL, f * TEMPORAL
    )  # (B, N) pixel-frame index
    t = frame / fps.to(positions)[:, None]
    return torch.stack([t, positions[..., 1] * SPATIAL, positions[..., 2] * SPATIAL], dim=1)  # (B, 3, N)


# --- the frozen model -----------------------------------------------------------------------------


def dit_block_classes() -> set[type[nn.Module]]:
    """The DiT's transformer block: the unit FSDP shards and checkpoints (conf/trainer/fsdp.yaml)."""
    from diffusers.models.transformers.transformer_ltx import LTXVideoTransformerBlock

    return {LTXVideoTransformerBlock}


class LTXVideo(nn.Module):
    """Frozen LTX-Video: `encode` pixels to normalised latents, `velocity` from the DiT, `decode`.

    Only LoRA weights added with `add_lora` train; everything loaded stays frozen and in eval mode.
    """

    def __init__(
        self,
        pretrained: str,
        dtype: str = "float32",
        twin: str | None = None,
        architecture: dict[str, Any] | None = None,
        text_max_tokens: int = 256,
        gradient_checkpointing: bool = False,
        device: str | None = None,
        compile: bool = False,
        text_encoder: bool = True,
        transformer_file: str | None = None,
        schedule: dict[str, Any] | None = None,
        guidance: float = 1.0,
        decode_timestep: float | None = 0.05,
        decode_noise_scale: float | None = 0.025,
        causal_rope: bool = True,
        attention_backend: str | None = None,
        text_encoder_quantize: str | None = None,
        vae_tiling: int | None = None,
        dit_quantize: str | None = None,
        compile_mode: str | None = None,
        compile_options: Mapping | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        """twin="tiny": build a twin of `architecture` into `pretrained` if absent, then load it.
        twin="random": random weights of `architecture` in memory on `device`, T5 included unless
        text_encoder=False (speed and memory measurements, train.py, preprocess.py and evaluate.py
        included: speed does not depend on weight values, and nothing is downloaded or written).
        transformer_file: the DiT from one original-layout .safetensors (a local path, or
        `org/name/file.safetensors` on the hub) read with diffusers' from_single_file, for releases
        published only that way; the VAE, T5 and the DiT's config still come from `pretrained`.
        compile: torch.compile each DiT block (all blocks share one compiled graph per shape) and
        the VAE decoder; the first call at a new shape pays the compilation.
        text_encoder=False: no T5 (training from the feature cache, which holds the caption states).
        schedule: the release's sampling schedule (foresight.flow.Schedule fields); guidance: its
        published classifier-free guidance scale (1 for guidance-distilled releases).
        decode_timestep / decode_noise_scale: the denoising decoder's t and the noise blended into
        the latents first (LTX's configs: 0.05 / 0.025); null for a VAE without that decoder.
        causal_rope: RoPE time with the causal first-frame offset (see rope_coords).
        attention_backend: a diffusers attention backend for the DiT (e.g. `_native_cudnn`: PyTorch's
        cuDNN attention; null = diffusers' default, PyTorch's SDPA dispatch, which on Hopper already
        picks cuDNN's kernels at the DiT's shapes: BENCHMARKS.md).
        text_encoder_quantize: "int8" stores T5's linear weights as int8 (foresight.models.quantize).
        vae_tiling: the VAE encodes and decodes in overlapping tiles of this side in pixels (diffusers'
        enable_tiling; 512 is its default; overlap 64 px, and 16-frame tiles overlapping by 8), so a
        full clip's activations need not fit at once; seams blend, so latents differ from untiled ones
        (python -m foresight.bench.memory measures by how much). null: the whole clip at once.
        dit_quantize: "fp8" runs the frozen linears of the DiT's blocks as fp8 matmuls, forward and
        LoRA's input gradients (foresight.models.quantize.Fp8Linear; Ada/Hopper GPUs or CPU).
        compile_mode: torch.compile's mode for the DiT blocks (null: its default): "reduce-overhead"
        replays each block's kernels as a CUDA graph, taking the host's launch time out of small
        steps (more memory: static buffers per graph); "max-autotune" also searches matmul kernels.
        compile_options: torch._inductor.config options for the DiT blocks and the decoder, on top of
        the mode's (e.g. {coordinate_descent_tuning: true}: each fused kernel's launch configuration
        chosen by timing, BENCHMARKS.md; the first compile takes longer).
        cuda_graphs: on a GPU, each DiT forward without gradients (sampling, validation) is replayed as
        a CUDA graph per input shape (CudaGraphs: the same values, none of the host's launch time; each
        graph keeps its activations' memory). Training steps run as they are."""
        super().__init__()
        self.compiled = compile
        check_quantize(text_encoder_quantize, "model.text_encoder_quantize")  # before anything loads
        check_dit(dit_quantize)
        check_compile_mode(compile_mode)
        check_compile_options(compile_options)
        if cuda_graphs and graphs_blocks(compile_mode, compile_options):
            raise ValueError(
                "model.cuda_graphs=true replays the whole DiT forward as a CUDA graph, and "
                f"model.compile_mode={compile_mode} (with model.compile_options) each block as its own "
                "(inductor's triton.cudagraphs): choose one (null the other)"
            )
        self.graphs = CudaGraphs(self.dit) if cuda_graphs else None
        if vae_tiling is not None and (
            isinstance(vae_tiling, bool)
            or not isinstance(vae_tiling, int)
            or vae_tiling < 128
            or vae_tiling % 32
        ):
            raise ValueError(
                f"model.vae_tiling={vae_tiling!r}: a tile side in pixels, a multiple of 32 from 128 (512 is "
                f"diffusers' default), or null for no tiling"
            )
        dt = torch_dtype(dtype)
        if twin == "random":
            with torch.device(device or "cpu"):
                vae = AutoencoderKLLTXVideo(**architecture["vae"]).to(dt)
                transformer = LTXVideoTransformer3DModel(**architecture["transformer"]).to(dt)
            self.text_encoder = (
                FrozenTextEncoder(
                    "",
                    twin="random",
                    dtype=dtype,
                    max_tokens=text_max_tokens,
                    quantize=text_encoder_quantize,
                    device=device,
                    width=transformer.config.caption_channels,
                )
                if text_encoder
                else None
            )
        else:
            if twin is not None and not twin_matches(pretrained, architecture or {}):
                build_twin(pretrained, architecture or {})
            expected = ["vae/config.json", "transformer/config.json", "text_encoder/config.json", "tokenizer"]
            source = resolve_pretrained(pretrained, expected)
            vae = AutoencoderKLLTXVideo.from_pretrained(source, subfolder="vae", torch_dtype=dt)
            transformer = (
                load_single_file_dit(transformer_file, source, dt)
                if transformer_file
                else LTXVideoTransformer3DModel.from_pretrained(
                    source, subfolder="transformer", torch_dtype=dt
                )
            )
            self.text_encoder = (
                FrozenTextEncoder(
                    source, dtype=dtype, max_tokens=text_max_tokens, quantize=text_encoder_quantize
                )
                if text_encoder
                else None
            )
        self.vae, self.transformer = freeze(vae), freeze(transformer)
        check_decoder(self.vae, pretrained, decode_timestep, decode_noise_scale)
        self.decode_timestep, self.decode_noise_scale = decode_timestep, decode_noise_scale
        self.schedule = Schedule(**(schedule or {}))
        self.guidance = guidance
        self.causal_rope = causal_rope
        if attention_backend:
            set_attention_backend(self.transformer, attention_backend)
        self.quantize_dit(dit_quantize)
        if gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        if vae_tiling:
            self.vae.enable_tiling(
                tile_sample_min_height=vae_tiling,
                tile_sample_min_width=vae_tiling,
                tile_sample_stride_height=vae_tiling - 64,
                tile_sample_stride_width=vae_tiling - 64,
            )
        self.vae_layout_for_device()
        if compile:
            compile_blocks(self.transformer.transformer_blocks, compile_mode, compile_options)
            # conv3d stacks: fused norms and activations
            compile_blocks([self.vae.decoder], options=compile_options)
        self.latent_channels = self.vae.config.latent_channels
        self.caption_dim = self.transformer.config.caption_channels

    def vae_layout_for_device(self) -> None:
        """On a GPU the compiled VAE decoder's conv weights are channels-last: cuDNN's conv3d kernels
        work in that layout, and in the default one every conv transposes its input and output (the
        compiled decode at 768x512x121: 117 ms against 134, BENCHMARKS.md). Activations follow the
        weights' layout; the values do not change. Eager, the decoder's own permutes and pads would
        copy in that layout (375 ms against 236); on a CPU and for the encoder: not measured."""
        if self.compiled and self.vae.device.type == "cuda":
            self.vae.decoder.to(memory_format=torch.channels_last_3d)

    def _apply(self, fn, recurse=True):
        # nn.Module's walk behind .to() and .cuda(), Lightning's device moves included
        super()._apply(fn, recurse)
        self.vae_layout_for_device()
        return self

    def train(self, mode: bool = True) -> "LTXVideo":
        # Frozen parts never leave eval mode (LoRA has no dropout by default, so nothing differs).
        return super().train(False)

    def quantize_dit(self, how: str | None) -> None:
        """The DiT's block linears as fp8 matmuls (how="fp8"; model.dit_quantize), or left as they are.
        The embeddings and the projections in and out stay in the DiT's dtype: little compute, and
        the layers nearest the latents."""
        quantize_dit(self.transformer.transformer_blocks, how)
        self.forget_graphs()

    def forget_graphs(self) -> None:
        """Drop the DiT's captured CUDA graphs: they read the layers they were captured with."""
        if self.graphs is not None:
            self.graphs.clear()

    def add_lora(self, rank: int, alpha: float, targets: list[str], dropout: float = 0.0) -> None:
        """Inject a trainable LoRA into the DiT through peft (diffusers' PeftAdapterMixin)."""
        from peft import LoraConfig

        cfg = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            target_modules=list(targets),
            lora_dropout=dropout,
            init_lora_weights=True,
        )  # B = 0: the frozen DiT's behaviour is unchanged at step 0
        with lora_targets(self.transformer):  # an fp8 DiT's linears become LoRA's base layers
            self.transformer.add_adapter(cfg)
        for name, p in self.transformer.named_parameters():
            p.requires_grad_("lora_" in name)
            if "lora_" in name:
                p.data = p.data.float()  # LoRA trains in fp32 even when the DiT runs in bf16
        self.forget_graphs()

    def merge_lora(self) -> None:
        """Fold the LoRA into the DiT's weights and drop its wrappers (diffusers' fuse_lora, then
        unload_lora): W <- W + (alpha/r) B A, the update computed in fp32 from the fp32 LoRA weights and
        rounded once to W's dtype. A sampling step then runs the bare DiT's matmuls instead of two more
        small ones and an add per target layer; the velocity moves only by that rounding (BENCHMARKS.md).
        Prediction only: afterwards there is no LoRA to train or save. Before quantize_dit: an fp8
        weight's step (~6% of it) is far larger than a LoRA's update, which would be rounded away."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        wrappers = [m for m in self.transformer.modules() if isinstance(m, BaseTunerLayer)]
        if not wrappers:
            return
        if any(isinstance(w.get_base_layer(), Fp8Linear) for w in wrappers):
            raise ValueError(
                "merge_lora=true needs the DiT's own weights, and this one was built in fp8 "
                "(model.dit_quantize=fp8 in the run's config): use merge_lora=false"
            )
        self.transformer.fuse_lora()
        self.transformer.unload_lora()  # the wrappers go, the fused base weights stay
        self.forget_graphs()

    # latents ------------------------------------------------------------------------------------

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        shape = (1, -1, 1, 1, 1)
        return (self.vae.latents_mean.view(shape).to(like), self.vae.latents_std.view(shape).to(like))

    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """Pixels (B, 3, F, H, W) in [-1, 1] -> normalised latents (B, 128, F', H/32, W/32).

        Uses the posterior mean: the target is then a deterministic function of the clip, so a
        feature cache and live encoding give the same latents.
        """
        z = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode()
        mean, std = self._stats(z)
        return ((z - mean) / std).float()

    def decode(self, latents: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Normalised latents (B, 128, F', h, w) -> pixels (B, 3, F, H, W) in [-1, 1].

        The denoising decoder expects slightly noisy latents: blend decode_noise_scale of noise,
        decode at decode_timestep (as diffusers' LTX pipelines do, from the same generator).
        """
        z = latents.to(self.vae.dtype)
        mean, std = self._stats(z)
        z = z * std + mean
        temb = None
        if self.decode_timestep is not None:
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = (1 - self.decode_noise_scale) * z + self.decode_noise_scale * noise
            temb = torch.full((z.shape[0],), self.decode_timestep, device=z.device, dtype=z.dtype)
        return self.vae.decode(z, temb=temb, return_dict=False)[0].float().clamp(-1, 1)

    def coords(self, positions: Tensor, fps: Tensor) -> Tensor:
        """RoPE coordinates (B, 3, N) of latent-unit positions (N, 3), as this release places them."""
        return rope_coords(positions, fps, causal=self.causal_rope)

    def velocity(self, x: Tensor, t_tok: Tensor, coords: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        """The DiT's velocity (B, N, C) for tokens x (B, N, C) at per-token flow times t_tok (B, N).

        coords: RoPE coordinates (B, 3, N); text: caption states (B, T, D) with mask (B, T).
        """
        dt = self.transformer.dtype
        # contiguous whoever calls: the loss hands channels-first views of packed latents, the sampler
        # contiguous tokens; one layout gives every call the same kernels, and with model.cuda_graphs
        # one graph (and one graph's memory) per shape
        inputs = DiTInputs(
            x=x.to(dt).contiguous(),
            # LTX's timestep is t x 1000 per token, kept in fp32 as diffusers' pipelines pass it:
            # bf16 would snap it to a 4-unit grid near 1000 (993.7 -> 992)
            timestep=(t_tok * 1000).float().contiguous(),
            coords=coords.float().contiguous(),
            text=text.to(dt).contiguous(),
            text_mask=text_mask.to(dt).contiguous(),
        )
        graphed = self.graphs is not None and self.graphs.applies(x)
        return (self.graphs(inputs) if graphed else self.dit(inputs)).float()

    def dit(self, inputs: DiTInputs) -> Tensor:
        """One DiT forward: (B, N, C) in the DiT's dtype.

        Always without autocast's cache of casts, as a CUDA graph's capture must run (graphs.py): that
        setting is one of torch.compile's guards, so eager forwards in another one would compile, and
        tune, a second variant of each block apart from the captured one's, free to pick kernels that
        round otherwise (1% on a random 2B DiT's velocity, BENCHMARKS.md). What the cache would spare:
        re-casting the LoRA's fp32 weights (a few MB) at each forward of one autocast region."""
        with autocast_cache_off():
            return self.transformer(
                hidden_states=inputs.x,
                encoder_hidden_states=inputs.text,
                timestep=inputs.timestep,
                encoder_attention_mask=inputs.text_mask,
                video_coords=inputs.coords,
                return_dict=False,
            )[0]


@dataclass
class DiTInputs:
    """One DiT forward's inputs, in the dtypes the DiT reads (what a CUDA graph of it copies in)."""

    x: Tensor  # (B, N, C) latent tokens
    timestep: Tensor  # (B, N) fp32, flow time x 1000
    coords: Tensor  # (B, 3, N) fp32 RoPE coordinates
    text: Tensor  # (B, T, D) caption states
    text_mask: Tensor  # (B, T)

    def tensors(self) -> dict[str, Tensor]:
        return dict(vars(self))

    def key(self) -> tuple:
        return tuple((name, tuple(t.shape), t.dtype, t.device) for name, t in vars(self).items())


def latent_noise(
    batch: int, channels: int, grid: tuple[int, int, int], generator: torch.Generator | None, device
) -> Tensor:
    """Gaussian noise (B, N, C) for the tokens of `grid`, drawn in the latent layout (B, C, F, H, W)
    and packed, as diffusers' LTX pipelines draw it: the same seed gives the same video."""
    return pack(torch.randn(batch, channels, *grid, generator=generator, device=device))


def check_decoder(
    vae: AutoencoderKLLTXVideo,
    pretrained: str,
    decode_timestep: float | None,
    decode_noise_scale: float | None,
) -> None:
    """One line, before any decode, when the decoder settings do not fit the VAE that was loaded."""
    conditioned = vae.config.timestep_conditioning
    if decode_timestep is not None and not conditioned:
        raise ValueError(
            f"model.decode_timestep={decode_timestep} asks for the denoising decoder, but the VAE of "
            f"{pretrained} has none (0.9.0); set model.decode_timestep=null and "
            f"model.decode_noise_scale=null, or use a 0.9.1+ release"
        )
    if conditioned and (decode_timestep is None or decode_noise_scale is None):
        raise ValueError(
            f"the VAE of {pretrained} has a timestep-conditioned (denoising) decoder: set "
            f"model.decode_timestep and model.decode_noise_scale (LTX's configs: 0.05 and 0.025)"
        )


def set_attention_backend(transformer: LTXVideoTransformer3DModel, name: str) -> None:
    """Route this DiT's attention through diffusers' backend `name`, or one line naming the choices.
    diffusers also makes `name` the process-wide default; that is put back, so that the choice stays
    with this model (another LTXVideo in the process keeps its own)."""
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    names = sorted(b.value for b in AttentionBackendName)
    if name.lower() not in names:
        raise ValueError(
            f"model.attention_backend={name!r} is not a diffusers attention backend; use null (PyTorch "
            f"SDPA) or one of: {', '.join(names)}"
        )
    default = _AttentionBackendRegistry._active_backend
    transformer.set_attention_backend(name)
    _AttentionBackendRegistry.set_active_backend(default)


def load_single_file_dit(
    transformer_file: str, config_source: str, dtype: torch.dtype
) -> LTXVideoTransformer3DModel:
    """A DiT published as one original-layout safetensors file, with its config from `config_source`'s
    transformer/ (the releases that share an architecture share a config)."""
    path = Path(os.path.expanduser(transformer_file))
    on_hub = not transformer_file.startswith(("/", ".", "~")) and transformer_file.count("/") == 2
    if not path.is_file():
        if not on_hub:
            raise FileNotFoundError(
                f"model.transformer_file={transformer_file} not found; give a local "
                f".safetensors file or org/name/file.safetensors on the hub"
            )
        from huggingface_hub import hf_hub_download

        org, name, filename = transformer_file.split("/", 2)
        path = Path(hf_hub_download(f"{org}/{name}", filename))
    return LTXVideoTransformer3DModel.from_single_file(
        str(path), config=config_source, subfolder="transformer", torch_dtype=dtype
    )


# --- tiny twins -------------------------------------------------------------------------------------


@own_rng
def build_twin(directory: str | os.PathLike, architecture: dict[str, Any], seed: int = 0) -> None:
    """Write a random LTX-Video of the given architecture as a `save_pretrained` directory.

    Built in a temporary sibling and renamed into place, so concurrent runs never see half a twin.
    The VAE's latent statistics are measured on smooth random clips, so that normalisation is a
    real operation on the twin just as on the real checkpoint.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        torch.manual_seed(seed)
        vae = AutoencoderKLLTXVideo(**architecture.get("vae", {}))
        mean, std = _latent_stats(vae, seed)
        vae.latents_mean.copy_(mean)
        vae.latents_std.copy_(std)
        vae.save_pretrained(tmp / "vae")
        LTXVideoTransformer3DModel(**architecture.get("transformer", {})).save_pretrained(tmp / "transformer")
        build_tiny_text_encoder(tmp)
        if target.exists() and not twin_matches(target, architecture):
            shutil.rmtree(target, ignore_errors=True)  # a twin of an older architecture: replace it
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: theirs is as good as ours
            if not (target / "transformer").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def twin_matches(directory: str | os.PathLike, architecture: dict[str, Any]) -> bool:
    """Whether `directory` holds a twin built from this architecture (a cached twin of an older
    architecture is rebuilt, never silently loaded)."""
    for part in ("vae", "transformer"):
        config = Path(directory) / part / "config.json"
        if not config.exists():
            return False
        saved = json.loads(config.read_text())
        if any(saved.get(k) != v for k, v in architecture.get(part, {}).items()):
            return False
    return True


@torch.no_grad()
def _latent_stats(vae: AutoencoderKLLTXVideo, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(4, 3, 3, 4, 4, generator=g) * 2 - 1  # (B, 3, F, H, W): low-frequency colour fields
    clips = nn.functional.interpolate(coarse, size=(9, 64, 64), mode="trilinear")
    z = vae.encode(clips).latent_dist.mode()  # (4, 128, 2, 2, 2)
    z = z.transpose(0, 1).flatten(1)  # (128, samples)
    return z.mean(1), z.std(1).clamp_min(1e-3)
