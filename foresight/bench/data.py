"""Data-path throughput: decoding training windows from video, and loading cached features.

    python -m foresight.bench.data --out bench_data.json            # the full measurement
    python -m foresight.bench.data --quick --out bench_data.json    # small sizes (CI)

Decode: synthetic h264 sources at 480p and 1080p (24 fps), windows of 121 frames resized and
cropped to 768x512 with the `area` and `fast_bilinear` filters, reported per CPU-second of the
decoding process (windows per second per core).
Cache: feature shards of 2B-sized samples (6144x128 target latents, 300x3584 VLM states, 256x4096
T5 states, float32) read through FeatureDataModule's training loader, in samples per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from foresight.data.feature_cache import FEATURE_FORMAT, FeatureDataModule, _npy
from foresight.data.sample_world import render_clip
from foresight.data.video import decode_window, encode_mp4, probe


def decode_rate(src: bytes, window: int, height: int, width: int, windows: int, resize_filter: str) -> dict:
    info = probe(src)
    last = info.frames_at(None) - window
    starts = np.linspace(0, last, windows).astype(int)
    wall, cpu = time.perf_counter(), time.process_time()
    for s in starts:
        decode_window(src, int(s), window, height, width, info=info, resize_filter=resize_filter)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "windows": windows,
        "wall_s": wall,
        "cpu_s": cpu,
        "windows_per_s": windows / wall,
        "windows_per_core_s": windows / cpu,
    }


def write_feature_shard(
    path: Path, samples: int, vlm: tuple[int, int], text: tuple[int, int], grid: tuple[int, int, int]
) -> None:
    import webdataset as wds

    rng = np.random.default_rng(0)
    with wds.TarWriter(str(path)) as sink:
        for i in range(samples):
            sink.write(
                {
                    "__key__": f"s{i:06d}",
                    "vlm.npy": _npy(rng.standard_normal(vlm, dtype=np.float32)),
                    "vlm_mask.npy": _npy(np.ones(vlm[0], dtype=bool)),
                    "text.npy": _npy(rng.standard_normal(text, dtype=np.float32)),
                    "text_mask.npy": _npy(np.ones(text[0], dtype=bool)),
                    "latents.npy": _npy(rng.standard_normal((128, *grid), dtype=np.float32)),
                    "meta.json": json.dumps({"fps": 24.0, "caption": "x", "format": FEATURE_FORMAT}),
                }
            )


def cache_rate(directory: Path, batches: int, batch_size: int, workers: int) -> dict:
    dm = FeatureDataModule(
        str(directory / "f-{000000..000001}.tar"),
        str(directory / "f-000000.tar"),
        batch_size=batch_size,
        num_workers=workers,
        open_shards=4,
    )
    it = iter(dm.train_dataloader())
    next(it)  # workers started, buffers warm
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    wall = time.perf_counter() - start
    return {
        "batches": batches,
        "batch_size": batch_size,
        "workers": workers,
        "wall_s": wall,
        "samples_per_s": batches * batch_size / wall,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sources and features (CI)")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_data.json"))
    args = parser.parse_args(argv)
    if args.quick:
        sources, window, bucket = {"120p": (160, 120)}, 17, (64, 64)
        feat = dict(samples=8, vlm=(30, 64), text=(32, 64), grid=(3, 2, 2))
    else:
        sources, window, bucket = {"480p": (854, 480), "1080p": (1920, 1080)}, 121, (512, 768)
        feat = dict(samples=24, vlm=(300, 3584), text=(256, 4096), grid=(16, 16, 24))  # 6144 target tokens
    report = {
        "meta": {
            "date": time.strftime("%Y-%m-%d"),
            "machine": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "window": window,
            "bucket": list(bucket),
        },
        "decode": {},
        "cache": {},
    }
    for name, (w, h) in sources.items():
        clip = render_clip(seed=0, num_frames=window + 24, width=w, height=h)
        src = encode_mp4(clip.frames, clip.fps)
        for resize_filter in ("area", "fast_bilinear"):
            row = decode_rate(src, window, bucket[0], bucket[1], args.windows, resize_filter)
            report["decode"][f"{name}_{resize_filter}"] = row
            print(name, resize_filter, json.dumps(row), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            write_feature_shard(
                Path(tmp) / f"f-{i:06d}.tar", feat["samples"], feat["vlm"], feat["text"], feat["grid"]
            )
        for batch_size in (1, 4):
            report["cache"][f"batch{batch_size}"] = cache_rate(
                Path(tmp), 4 if args.quick else 40, batch_size, args.workers
            )
            print(f"cache batch {batch_size}", json.dumps(report["cache"][f"batch{batch_size}"]), flush=True)
    args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
