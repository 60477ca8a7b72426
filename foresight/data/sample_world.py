"""The bundled sample world: deterministic clips of coloured shapes whose captions say what moves where.

Small enough to commit and to train on a CPU, real enough to exercise the whole path: clips are
h264 mp4 in webdataset shards (`__key__`, `mp4`, `txt`, `json`), at a size that is not the
training bucket (so resizing and cropping run), with a held-out split rendered from other seeds.

    python -m foresight.data.sample_world --out data/sample --train 64 --val 16 --seed 0
    python -m foresight.data.sample_world --out /tmp/hd --train 8 --val 16 --width 768 --height 512 \
        --frames 129      # clips at the real scale's size, for end-to-end throughput on a GPU

The shards are reproducible: the same x264 build writes the same bytes on any machine (see
foresight.data.video.encode_mp4), so regenerating data/sample leaves the tracked files unchanged.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foresight.data.video import encode_mp4

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "white": (240, 240, 240),
    "purple": (150, 60, 200),
}
SHAPES = ("circle", "square", "triangle")
# direction name -> unit step (dx, dy) in image coordinates (y grows downwards)
DIRECTIONS = {
    "right": (1, 0),
    "left": (-1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up and to the right": (0.71, -0.71),
    "up and to the left": (-0.71, -0.71),
    "down and to the right": (0.71, 0.71),
    "down and to the left": (-0.71, 0.71),
}
FPS = 24
PER_SHARD = 16


@dataclass
class Clip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    caption: str
    fps: float
    seed: int


def _shape_mask(kind: str, cx: float, cy: float, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if kind == "square":
        return (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    # upright triangle: inside the box, below the two slanted edges
    return (yy <= cy + r) & (yy >= cy - r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2)


def render_clip(seed: int, num_frames: int = 40, width: int = 96, height: int = 72, fps: float = FPS) -> Clip:
    """One clip: 1-2 shapes moving in straight lines over a gently shaded background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(10, 60, size=3)
    tilt = rng.uniform(-20, 20, size=3)
    background = base + tilt * (xx / width)[..., None]  # (H, W, 3)
    objects, phrases = [], []
    # one or two colours, each with one of two drawn shapes (the second shape unused with one colour)
    for colour, kind in zip(
        rng.choice(list(COLOURS), size=rng.integers(1, 3), replace=False),
        rng.choice(SHAPES, size=2),
        strict=False,
    ):
        direction = list(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
        dx, dy = DIRECTIONS[direction]
        speed = rng.uniform(0.8, 1.6) * min(width, height) / num_frames  # crosses ~half the frame
        r = rng.uniform(0.08, 0.14) * min(width, height)
        # start so that the path is centred in the frame, with some jitter
        cx0 = width / 2 - dx * speed * num_frames / 2 + rng.uniform(-0.1, 0.1) * width
        cy0 = height / 2 - dy * speed * num_frames / 2 + rng.uniform(-0.1, 0.1) * height
        objects.append((COLOURS[colour], kind, cx0, cy0, dx * speed, dy * speed, r))
        phrases.append(f"a {colour} {kind} moves {direction}")
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        img = background.copy()
        for rgb, kind, cx0, cy0, vx, vy, r in objects:
            img[_shape_mask(kind, cx0 + vx * t, cy0 + vy * t, r, yy, xx)] = rgb
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return Clip(frames, " and ".join(phrases), float(fps), seed)


def clip_batch(seeds: tuple[int, ...] = (3, 4), context: int = 4, frames: int = 20, size: int = 64) -> dict:
    """A batch of rendered clips windowed as the loader cuts them (target[0] = context[-1]): context
    (B, C, H, W, 3) and target (B, F, H, W, 3) uint8, captions, fps, keys. Tests and the host-read
    bench run on it."""
    import torch

    clips = [render_clip(seed=s, num_frames=frames, width=size, height=size) for s in seeds]
    video = torch.stack([torch.from_numpy(c.frames) for c in clips])  # (B, frames, size, size, 3)
    return {
        "context": video[:, :context],
        "target": video[:, context - 1 :],
        "caption": [c.caption for c in clips],
        "fps": torch.tensor([c.fps for c in clips]),
        "key": [chr(ord("a") + i) for i in range(len(clips))],
    }


def write_split(out: Path, split: str, seeds: list[int], **shape: int) -> list[Path]:
    """Write clips for `seeds` as `<split>-000000.tar`, ... with PER_SHARD clips each; shape: render_clip's
    num_frames, width and height (its defaults: the bundled sample)."""
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, first in enumerate(range(0, len(seeds), PER_SHARD)):
        path = out / f"{split}-{shard:06d}.tar"
        with wds.TarWriter(str(path), mtime=0) as sink:  # no wall-clock time in the headers
            for seed in seeds[first : first + PER_SHARD]:
                clip = render_clip(seed, **shape)
                sink.write(
                    {
                        "__key__": f"{split}_{seed:06d}",
                        "mp4": encode_mp4(clip.frames, clip.fps, reproducible=True),
                        "txt": clip.caption,
                        "json": json.dumps(
                            {"fps": clip.fps, "source": "sample_world", "split": split, "seed": seed}
                        ),
                    }
                )
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"))
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--val", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=40, help="frames a clip (the sample's 40)")
    parser.add_argument("--width", type=int, default=96, help="clip width (the sample's 96)")
    parser.add_argument("--height", type=int, default=72, help="clip height (the sample's 72)")
    args = parser.parse_args(argv)
    shape = {"num_frames": args.frames, "width": args.width, "height": args.height}
    # held-out clips come from a disjoint seed range
    train = write_split(args.out, "train", [args.seed + i for i in range(args.train)], **shape)
    val = write_split(args.out, "val", [args.seed + 1_000_000 + i for i in range(args.val)], **shape)
    size = sum(p.stat().st_size for p in train + val)
    print(
        f"wrote {args.train} train + {args.val} val clips in {len(train) + len(val)} shards "
        f"({size / 1e6:.1f} MB) to {args.out}"
    )


if __name__ == "__main__":
    main()
