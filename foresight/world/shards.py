"""The world's clips as webdataset shards the loader reads (`data=world`).

    foresight world render --out data/world --train 256 --val 32 --heldout 32

Each clip is a lossless RGB h264 mp4 (decodes to exactly the rendered frames, so the shards and the
clips pretraining renders on demand are the same data), its caption (`.txt`) and its metadata
(`.json`: fps, split, seed, the instructed colour, shape and action, number of shapes). Clips are
exactly the loader's window (4 context + 17 future frames, 64x64), so no resizing or cropping runs.
Seeds 0..N-1 of each split's own random stream; `heldout` holds only held-out compositions.
"""

from __future__ import annotations

import json
from pathlib import Path

import webdataset as wds

from foresight.data.video import encode_mp4
from foresight.world.render import render_batch
from foresight.world.scene import FPS

PER_SHARD = 32


def write_split(out: Path, split: str, count: int, per_shard: int = PER_SHARD) -> list[Path]:
    """`<split>-000000.tar`, ... holding seeds 0..count-1 of the split, per_shard clips each."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, first in enumerate(range(0, count, per_shard)):
        seeds = list(range(first, min(first + per_shard, count)))
        frames, captions, metas = render_batch(seeds, split)
        path = out / f"{split}-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for clip, text, meta in zip(frames.numpy(), captions, metas, strict=True):
                sink.write(
                    {
                        "__key__": f"{split}_{meta['seed']:06d}",
                        "mp4": encode_mp4(clip, FPS, lossless=True),
                        "txt": text,
                        "json": json.dumps(meta),
                    }
                )
        paths.append(path)
    return paths


def write_world(out: Path, counts: dict[str, int]) -> list[Path]:
    return [p for split, n in counts.items() if n > 0 for p in write_split(out, split, n)]
