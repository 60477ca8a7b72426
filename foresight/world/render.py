"""Pixels of the world: a batch of clips rasterised at once, anti-aliased, on any torch device.

Scenes and instructions come from `scene.py` (numpy, per seed, cheap); rasterisation is the costly
part and runs batched in torch, so pretraining renders its clips on the GPU it trains on. Edges are
anti-aliased by pixel coverage from a signed distance (clamp(0.5 - d, 0, 1)), so a shape moving by
a fraction of a pixel changes the frame, as in a real camera.

    clip = render_clip(seed=7, split="val")                     # frames (20, 64, 64, 3) uint8, caption
    same_context = render_clip(seed=7, split="val", action="left")   # another instruction, same frames 0..3
    longer = render_clip(seed=7, split="val", frames=52)        # the same clip, continued: frames 0..19 equal
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from foresight.data.sample_world import COLOURS, SHAPES
from foresight.world.scene import (
    ACTIONS,
    FPS,
    FRAMES,
    SIZE,
    Instruction,
    Scene,
    caption,
    draw_order,
    sample_instruction,
    sample_scene,
    trajectories,
)

MAX_SHAPES = 3


@dataclass
class Clip:
    frames: np.ndarray  # (frames, SIZE, SIZE, 3) uint8, FRAMES unless asked otherwise
    caption: str
    meta: dict  # seed, split, fps, the instructed shape and action, number of shapes


def layout(seed: int, split: str, action: str | None = None) -> tuple[Scene, Instruction]:
    """The seed's scene and instruction; `action` replaces the instructed action (same scene, same shape)."""
    scene = sample_scene(seed, split)
    instruction = sample_instruction(scene, seed, split)
    if action is not None:
        if action not in ACTIONS:
            raise ValueError(f"action={action!r}: use one of {', '.join(ACTIONS)}")
        instruction = Instruction(instruction.target, action)
    return scene, instruction


def describe(seed: int, split: str, scene: Scene, instruction: Instruction) -> dict:
    target = scene.shapes[instruction.target]
    return {
        "seed": seed,
        "split": split,
        "fps": FPS,
        "source": "foresight.world",
        "shapes": len(scene.shapes),
        "colour": target.colour,
        "shape": target.kind,
        "action": instruction.action,
    }


def _sdf(kind: Tensor, dx: Tensor, dy: Tensor, r: Tensor) -> Tensor:
    """Signed distance (pixels, negative inside) of circles, squares and upright triangles, by kind id."""
    circle = torch.sqrt(dx * dx + dy * dy) - r
    square = torch.maximum(dx.abs(), dy.abs()) - r
    # apex (0, -r), base corners (+-r, r): the base line and the two slanted edges (slope 2)
    triangle = torch.maximum(dy - r, (2 * dx.abs() - dy - r) / math.sqrt(5))
    return torch.where(kind == 0, circle, torch.where(kind == 1, square, triangle))


def rasterize(
    background: Tensor, centres: Tensor, radius: Tensor, kind: Tensor, colour: Tensor, present: Tensor
) -> Tensor:
    """Clips as uint8 (B, F, SIZE, SIZE, 3); shapes are painted in order k = 0..K-1.

    background (B, 3) and colour (B, K, 3) in 0..255; centres (B, K, F, 2) pixels; radius (B, K);
    kind (B, K) index into SHAPES; present (B, K) bool (absent slots paint nothing).
    """
    device = centres.device
    px = torch.arange(SIZE, device=device, dtype=torch.float32) + 0.5  # pixel centres
    img = background[:, None, None, None, :].float().expand(-1, centres.shape[2], SIZE, SIZE, -1).clone()
    for k in range(centres.shape[1]):
        cx = centres[:, k, :, 0, None, None]  # (B, F, 1, 1)
        cy = centres[:, k, :, 1, None, None]
        dx, dy = px[None, None, None, :] - cx, px[None, None, :, None] - cy  # (B, F, 1, W), (B, F, H, 1)
        dx, dy = torch.broadcast_tensors(dx, dy)  # (B, F, H, W)
        d = _sdf(kind[:, k, None, None, None], dx, dy, radius[:, k, None, None, None])
        cover = (0.5 - d).clamp(0, 1) * present[:, k, None, None, None]  # (B, F, H, W)
        img += cover[..., None] * (colour[:, k, None, None, None, :] - img)
    return img.round().clamp(0, 255).to(torch.uint8)


def layout_arrays(
    seeds: list[int], split: str, actions: list[str | None] | None = None, frames: int = FRAMES
) -> tuple[dict[str, np.ndarray], list[str], list[dict]]:
    """What `rasterize` needs for these seeds, as numpy arrays (cheap, CPU: data-loader workers run
    it while the GPU rasterises), with the captions and per-clip metadata. frames: the clip's length,
    at least FRAMES; a longer clip continues the same motion (see scene.py)."""
    if frames < FRAMES:
        raise ValueError(
            f"frames={frames}: a world clip holds at least {FRAMES} frames (4 context + 17 "
            f"future); longer clips continue the motion"
        )
    b = len(seeds)
    arrays = {
        "background": np.zeros((b, 3), np.float32),
        "centres": np.zeros((b, MAX_SHAPES, frames, 2), np.float32),
        "radius": np.zeros((b, MAX_SHAPES), np.float32),
        "kind": np.zeros((b, MAX_SHAPES), np.int64),
        "colour": np.zeros((b, MAX_SHAPES, 3), np.float32),
        "present": np.zeros((b, MAX_SHAPES), np.float32),
    }
    captions, metas = [], []
    for i, seed in enumerate(seeds):
        scene, instruction = layout(seed, split, actions[i] if actions else None)
        paths = trajectories(scene, instruction, frames)  # (K, F, 2)
        for slot, k in enumerate(draw_order(scene, instruction)):
            s = scene.shapes[k]
            arrays["centres"][i, slot], arrays["radius"][i, slot] = paths[k], s.radius
            arrays["kind"][i, slot], arrays["colour"][i, slot] = SHAPES.index(s.kind), COLOURS[s.colour]
            arrays["present"][i, slot] = 1.0
        arrays["background"][i] = scene.background
        captions.append(caption(scene, instruction))
        metas.append(describe(seed, split, scene, instruction))
    return arrays, captions, metas


def render_batch(
    seeds: list[int],
    split: str,
    device: torch.device | str = "cpu",
    actions: list[str | None] | None = None,
    frames: int = FRAMES,
) -> tuple[Tensor, list[str], list[dict]]:
    """Clips of these seeds: frames uint8 (B, frames, SIZE, SIZE, 3) on `device`, captions, metadata.
    actions: per seed, an action replacing the sampled one (None keeps it)."""
    arrays, captions, metas = layout_arrays(seeds, split, actions, frames)
    frames = rasterize(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()})
    return frames, captions, metas


def render_clip(seed: int, split: str, action: str | None = None, frames: int = FRAMES) -> Clip:
    """One clip on the CPU (deterministic per seed and split)."""
    pixels, captions, metas = render_batch([seed], split, actions=[action], frames=frames)
    return Clip(pixels[0].numpy(), captions[0], metas[0])
