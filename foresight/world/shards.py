"""The world's clips as webdataset shards the loader reads (`data=world`, `world_long`, `world_rollout`).

    foresight world render --out data/world --train 256 --val 32 --heldout 32 --heldout-long 32

Each clip is a lossless RGB h264 mp4 (decodes to exactly the rendered frames, so the shards and the
clips pretraining renders on demand are the same data), its caption (`.txt`) and its metadata
(`.json`: fps, split, seed, the instructed colour, shape and action, number of shapes). Clips of
`train`, `val` and `heldout` are exactly the loader's window (4 context + 17 future frames, 64x64),
so no resizing or cropping runs. `heldout_long` holds the same held-out clips (the `heldout` stream,
the same seeds, so its first 20 frames are `heldout`'s) continued to 4 + 16 K frames, K =
ROLLOUT_CHUNKS = 3 windows in turn by default: what a rollout is scored on (`evaluate.py ...
rollout=3`); `train_long` does the same for the train split (what `data=world_rollout` trains on
the model's own previous chunk from; rendered on request, not shipped). Seeds 0..N-1 of each split's
own random stream; held-out shards hold only held-out compositions.
"""

from __future__ import annotations

import json
from pathlib import Path

import webdataset as wds

from foresight.data.video import encode_mp4
from foresight.world.render import render_batch
from foresight.world.scene import FPS, FRAMES, ROLLOUT_CHUNKS, rollout_frames

PER_SHARD = 32
LONG = "_long"  # a shard set of the same split's clips, `rollout_frames(chunks)` long


def write_split(
    out: Path,
    split: str,
    count: int,
    per_shard: int = PER_SHARD,
    frames: int = FRAMES,
    name: str | None = None,
) -> list[Path]:
    """`<name>-000000.tar`, ... (name: the split's by default) holding seeds 0..count-1 of the split,
    `frames` frames each, per_shard clips a shard. Keys are `<name>_<seed>`."""
    name = name or split
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, first in enumerate(range(0, count, per_shard)):
        seeds = list(range(first, min(first + per_shard, count)))
        clips, captions, metas = render_batch(seeds, split, frames=frames)
        path = out / f"{name}-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for clip, text, meta in zip(clips.numpy(), captions, metas, strict=True):
                sink.write(
                    {
                        "__key__": f"{name}_{meta['seed']:06d}",
                        "mp4": encode_mp4(clip, FPS, lossless=True),
                        "txt": text,
                        "json": json.dumps(meta),
                    }
                )
        paths.append(path)
    return paths


def write_world(out: Path, counts: dict[str, int], chunks: int = ROLLOUT_CHUNKS) -> list[Path]:
    """counts: clips per shard set, a split (`heldout`) or a long one (`heldout_long`: `chunks` windows)."""
    paths = []
    for name, n in counts.items():
        split = name.removesuffix(LONG)
        frames = rollout_frames(chunks) if name.endswith(LONG) else FRAMES
        paths += write_split(out, split, n, frames=frames, name=name) if n > 0 else []
    return paths
