"""The record at the seam: everything the frozen encoders say about a clip.

Options only ever see `Features`. They come live (`encode_batch`: decode video, run the VLM, T5
and VAE encoder in the step) or, later, from a feature cache; the record is the same either way.
At prediction time the future is unknown: `target` is None and only the first latent frame (the
last context frame, which LTX's causal VAE encodes on its own) and the grid size are known.
Fields, shapes and the cache: docs/features.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from foresight.models.ltx import SPATIAL, LTXVideo, grid_positions, latent_grid, pack
from foresight.models.vlm import FrozenVLM


@dataclass
class Features:
    vlm_states: Tensor  # (B, L, D_vlm) hidden states of the chosen VLM layers
    vlm_mask: Tensor  # (B, L) bool, True on real tokens
    text: Tensor  # (B, T, D_text) T5 caption states
    text_mask: Tensor  # (B, T) bool
    first_latent: Tensor  # (B, 128, 1, h, w) normalised latent of the last context frame
    grid: tuple[int, int, int]  # target latent grid (f, h, w)
    fps: Tensor  # (B,) frame rate of the clip, for RoPE time coordinates
    target: Tensor | None = None  # (B, 128, f, h, w) normalised target latents; frame 0 = first_latent
    # (B, 128, C-1, h, w): the context frames before the current one, oldest first, each encoded alone
    # (option prefix); None where not asked for
    context_latents: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.first_latent.shape[0]

    @property
    def num_tokens(self) -> int:
        f, h, w = self.grid
        return f * h * w

    def target_tokens(self) -> Tensor:
        """(B, N, 128) target latents as DiT tokens."""
        if self.target is None:
            raise ValueError("these features carry no target latents (prediction input); nothing to train on")
        return pack(self.target)

    def positions(self) -> Tensor:
        """(N, 3) latent-unit positions of the target tokens."""
        return grid_positions(self.grid, device=self.first_latent.device)

    def first_frame_mask(self) -> Tensor:
        """(B, N) bool, True on the tokens of latent frame 0 (the known current frame)."""
        _, h, w = self.grid
        mask = torch.zeros(
            self.batch_size, self.num_tokens, dtype=torch.bool, device=self.first_latent.device
        )
        mask[:, : h * w] = True
        return mask

    def pin_memory(self) -> "Features":
        """Page-locked copies of the tensors (what DataLoader(pin_memory=True) asks of a batch)."""
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).pin_memory()
                for f in fields(self)
                if isinstance(getattr(self, f.name), Tensor)
            },
        )

    def known_tokens(self) -> Tensor:
        """(B, N, 128): the first latent frame in place, zeros elsewhere (values under first_frame_mask)."""
        b, c, _, h, w = self.first_latent.shape
        known = torch.zeros(b, self.num_tokens, c, device=self.first_latent.device)
        known[:, : h * w] = pack(self.first_latent)
        return known


def frames_to_video(frames: Tensor) -> Tensor:
    """uint8 frames (B, F, H, W, 3) -> float video (B, 3, F, H, W) in [-1, 1], as the VAE expects."""
    return frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1


def video_to_frames(video: Tensor) -> Tensor:
    """float video (B, 3, F, H, W) in [-1, 1] -> uint8 frames (B, F, H, W, 3)."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)


def next_context(context: Tensor, prediction: Tensor) -> Tensor:
    """uint8 context (B, C, H, W, 3) and predicted frames (B, F, H, W, 3) -> the next window's context:
    the last C frames of context + prediction (prediction[:, 0] repeats the current frame, so it is
    left out): what the VLM and the current frame of a rollout's next chunk read."""
    return torch.cat([context, prediction[:, 1:]], 1)[:, -context.shape[1] :]


@torch.no_grad()
def encode_batch(
    batch: dict,
    vlm: FrozenVLM | None,
    ltx: LTXVideo,
    future_frames: int | None = None,
    context_latents: bool = False,
    first_latent: Tensor | None = None,
) -> Features:
    """Live features for a loader batch (see foresight.data.loader for its keys).

    With target frames present they are encoded whole; without (prediction), only the last
    context frame is encoded and `future_frames` sets the grid. context_latents: also encode the
    earlier context frames (option prefix). vlm=None: an option that reads no VLM states (empty).
    first_latent (B, 128, 1, h, w): the current frame's latent given, not encoded (a rollout that
    continues in latent space from its previous chunk's prediction).
    """
    context = batch["context"]  # (B, C, H, W, 3) uint8
    states, mask, text, text_mask = encode_instruction(batch, vlm, ltx)
    fps = batch["fps"].float().to(states.device)
    if batch.get("target") is not None:
        target = ltx.encode(frames_to_video(batch["target"]))  # (B, 128, f, h, w)
        first, grid = target[:, :, :1], tuple(target.shape[2:])
    else:
        target = None
        first = (
            ltx.encode(frames_to_video(context[:, -1:])) if first_latent is None else first_latent
        )  # (B, 128, 1, h, w)
        grid = latent_grid(future_frames, context.shape[2], context.shape[3])
    earlier = encode_frames(ltx, context[:, :-1]) if context_latents else None
    return Features(states, mask, text, text_mask, first, grid, fps, target, earlier)


@torch.no_grad()
def encode_frames(ltx: LTXVideo, frames: Tensor) -> Tensor:
    """uint8 frames (B, K, H, W, 3) -> normalised latents (B, 128, K, h, w), each frame encoded alone as
    a one-frame clip (the causal VAE's first latent frame is its first pixel frame alone)."""
    b, k = frames.shape[:2]
    if k == 0:
        return torch.zeros(
            b,
            ltx.latent_channels,
            0,
            frames.shape[2] // SPATIAL,
            frames.shape[3] // SPATIAL,
            device=frames.device,
        )
    latents = ltx.encode(frames_to_video(frames.flatten(0, 1)[:, None]))  # (B*K, 128, 1, h, w)
    return latents.unflatten(0, (b, k)).squeeze(3).transpose(1, 2)  # (B, 128, K, h, w)


@torch.no_grad()
def encode_instruction(batch: dict, vlm: FrozenVLM, ltx: LTXVideo) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """What the frozen text paths say about a batch's context and instruction: VLM states (B, L, D) and
    mask (B, L), T5 caption states (B, T, D_text) and mask (B, T). Without a VLM (options that read
    none) the states are empty: (B, 0, 1)."""
    text, text_mask = ltx.text_encoder(batch["caption"])
    if vlm is None:
        return (
            text.new_zeros(len(batch["caption"]), 0, 1),
            text_mask.new_zeros(len(batch["caption"]), 0),
            text,
            text_mask,
        )
    states, mask = vlm(batch["context"], batch.get("prompt", batch["caption"]), fps=batch.get("fps"))
    return states, mask.bool(), text, text_mask.bool()


def corrupt_latents(feats: Features, scale: float, generator: torch.Generator | None = None) -> Features:
    """Training against exposure bias: Gaussian noise on the given latents (the current frame's, in
    first_latent and in the target's frame 0, and the prefix's context latents), with a strength
    drawn per clip uniformly in [0, scale] (latents are normalised to unit scale), so the model learns
    to predict from a current frame as imperfect as its own predictions are in a rollout (LTX's
    pipelines likewise noise their conditioning frames, `image_cond_noise_scale`). scale 0: unchanged."""
    if scale == 0.0:
        return feats
    first = feats.first_latent  # (B, 128, 1, h, w)
    strength = (
        torch.rand(first.shape[0], 1, 1, 1, 1, device=first.device, generator=generator) * scale
    )  # (B,1,1,1,1)
    noisy = first + strength * torch.randn(first.shape, device=first.device, generator=generator)
    context = feats.context_latents
    if context is not None:
        context = context + strength * torch.randn(context.shape, device=context.device, generator=generator)
    target = None if feats.target is None else torch.cat([noisy, feats.target[:, :, 1:]], 2)
    return replace(feats, first_latent=noisy, target=target, context_latents=context)


def corrupt_frames(frames: Tensor, scale: float, generator: torch.Generator | None = None) -> Tensor:
    """uint8 frames (B, C, H, W, 3) with Gaussian noise of a per-clip strength uniform in [0, scale]
    (pixel units, 0-255), rounded and clipped back to uint8: the VLM's context frames as imperfect as
    decoded predictions. scale 0: unchanged."""
    if scale == 0.0:
        return frames
    strength = torch.rand(frames.shape[0], 1, 1, 1, 1, device=frames.device, generator=generator) * scale
    noise = torch.randn(frames.shape, device=frames.device, generator=generator) * strength
    return (frames.float() + noise).round().clamp(0, 255).to(torch.uint8)
