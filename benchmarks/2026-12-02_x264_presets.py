"""What x264's preset costs and gives when predict.py writes its videos (issue 16, item 4).

predict.py is bound by writing (BENCHMARKS.md, 2026-12-02): each prediction is encoded as h264 at crf 20.
For each preset, one 768x512x121 video is encoded `--repeats` times (the median time is reported, with
the range), on two kinds of content: noise (what a random model predicts, x264's worst case) and a
real clip (../shared/data/real, decoded to the same size). Size is the mp4's bytes; quality is the PSNR
of the decoded video against the frames encoded (crf holds it roughly constant across presets).

    OUT=. python benchmarks/2026-12-02_x264_presets.py --repeats 3
    OUT=/tmp python benchmarks/2026-12-02_x264_presets.py --repeats 1 --presets medium ultrafast --frames 9

Writes $OUT/x264_presets.json.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from foresight.data.video import X264_PRESETS, decode_window, encode_mp4
from foresight.eval.metrics import psnr

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "flipping_a_pancake.mkv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets", nargs="+", default=["medium", "fast", "veryfast", "superfast", "ultrafast"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=121)
    args = parser.parse_args()
    unknown = set(args.presets) - set(X264_PRESETS)
    if unknown:
        raise SystemExit(f"--presets: {sorted(unknown)} are not x264 presets ({', '.join(X264_PRESETS)})")
    height, width = 512, 768
    contents = {"noise": np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), np.uint8)}
    if REAL.exists():
        contents["real"] = decode_window(str(REAL), 0, args.frames, height, width)
    rows = []
    for content, frames in contents.items():
        for preset in args.presets:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                video = encode_mp4(frames, 24.0, preset=preset)
                times.append(time.perf_counter() - start)
            back = decode_window(video, 0, len(frames), height, width)
            row = {
                "content": content,
                "preset": preset,
                "seconds": statistics.median(times),
                "seconds_range": [min(times), max(times)],
                "megabytes": len(video) / 1e6,
                "psnr_db": psnr(torch.from_numpy(back), torch.from_numpy(frames)).mean().item(),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "size": f"{width}x{height}x{args.frames}",
        "repeats": args.repeats,
        "rows": rows,
    }
    out = Path(os.environ.get("OUT", ".")) / "x264_presets.json"
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
