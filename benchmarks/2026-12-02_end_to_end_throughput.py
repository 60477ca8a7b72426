"""Clips a second of the real entry points at real scale, on random frozen models (issue 16, item 4).

Renders clips at the size with sample_world, trains option B for a few steps through train.py (live:
the VLM and T5 encode every clip; it writes the checkpoint the rest read), then runs evaluate.py (each
`--compile` setting), predict.py (each combination of `--writers`, `--side-by-side` and `--vlm-graphs`) and
preprocess.py on the held-out clips, each a fresh process as a user runs it, `--repeats` times. Each
reports clips a second over its whole run and after its first batch (foresight.throughput); they are
collected into $OUT/end_to_end.json, rewritten after each run; what they read and write stays under
$WORK (default $OUT), so later stages can run in later calls.
Models: `model.twin=random`, `vlm.twin=random` (full-size 2B DiT + T5-XXL, Qwen2.5-VL-7B; nothing is
downloaded or written), tensor preprocessing for the VLM; B trains as its experiment does (LoRA r=16).

    WORK=/tmp/e2e OUT=. python benchmarks/2026-12-02_end_to_end_throughput.py --stages render train
    WORK=/tmp/e2e OUT=. python benchmarks/2026-12-02_end_to_end_throughput.py --stages evaluate
    WORK=/tmp/e2e OUT=. python benchmarks/2026-12-02_end_to_end_throughput.py --stages predict preprocess
    OUT=/tmp/e2e python benchmarks/2026-12-02_end_to_end_throughput.py --tiny     # the script's check, CPU
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(os.environ.get("OUT", "."))  # the report
WORK = Path(
    os.environ.get("WORK", OUT)
)  # clips, the run, predictions, features (hundreds of MB at full size)
CLIPS = WORK / "clips"
RUN = WORK / "run"
REPORT = OUT / "end_to_end.json"


def models(tiny: bool) -> list[str]:
    """The overrides that put random frozen models (and the clips' window) under every entry point."""
    shards = [f"data.train_shards={CLIPS}/train-000000.tar", f"data.val_shards={CLIPS}/val-000000.tar"]
    if tiny:
        return ["model.twin=random", "vlm.twin=random", "+vlm.size=tiny", *shards]
    return [
        "model=ltx_2b",
        "vlm=qwen2_5_vl_7b",
        "model.twin=random",
        "+model.device=cuda",
        "vlm.twin=random",
        "+vlm.size=7b",
        "+vlm.device=cuda",
        "vlm.preprocess=tensor",
        "data.height=512",
        "data.width=768",
        "data.future_frames=121",
        *shards,
    ]


def run(script: str, *overrides: str) -> str:
    """python <script> overrides...; its stdout (the run fails loudly, with its last lines)."""
    out = subprocess.run([sys.executable, script, *overrides], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{script} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return out.stdout


def printed_rates(text: str) -> dict[str, float | None]:
    """The clips a second an entry point printed (foresight.throughput.rate_text's form)."""
    rate = re.search(r"([\d.]+) clips/s(?:, ([\d.]+) after the first batch)?", text)
    return {
        "clips_per_second": float(rate[1]),
        "steady_clips_per_second": float(rate[2]) if rate[2] else None,
        "printed": text.strip().splitlines()[-1][:500],  # what else it said (seconds of predicting)
    }


def record(rows: list[dict], row: dict) -> None:
    rows.append(row)
    print(json.dumps(row), flush=True)
    REPORT.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stages = ["render", "train", "evaluate", "predict", "preprocess"]
    parser.add_argument("--stages", nargs="+", default=stages, choices=stages)
    parser.add_argument(
        "--tiny", action="store_true", help="tiny random models on the CPU (checks the script)"
    )
    parser.add_argument("--clips", type=int, default=32, help="held-out clips (train: 8)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--compile", nargs="+", default=["false", "true"], help="evaluate.py's compile settings"
    )
    parser.add_argument("--writers", nargs="+", default=["2"], help="predict.py's writers settings")
    parser.add_argument(
        "--side-by-side", nargs="+", default=["true"], help="predict.py's side_by_side settings"
    )
    parser.add_argument("--vlm-graphs", nargs="+", default=["false"], help="predict.py's vlm_graphs settings")
    parser.add_argument("--repeats", type=int, default=1, help="processes per timed setting")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    rows = json.loads(REPORT.read_text())["rows"] if REPORT.exists() else []
    common = models(args.tiny)
    if "render" in args.stages:  # C + F frames at the window's size, so nothing is resized up or skipped
        size = "--width 64 --height 64 --frames 30" if args.tiny else "--width 768 --height 512 --frames 129"
        run(
            "-m",
            "foresight.data.sample_world",
            "--out",
            str(CLIPS),
            "--train",
            "8",
            "--val",
            str(args.clips),
            *size.split(),
        )
    if "train" in args.stages:
        gpu = [] if args.tiny else ["trainer=gpu"]
        run(
            "train.py",
            "+experiment=optionB",
            *common,
            *gpu,
            "logger=none",
            f"paths.output_dir={RUN}",
            "trainer.max_steps=3",
            "trainer.limit_val_batches=0",
            f"data.batch_size={2 if args.tiny else 1}",
        )
    for _ in range(args.repeats):
        if "evaluate" in args.stages:
            for compile in args.compile:
                out = WORK / f"evaluate_compile_{compile}"
                run(
                    "evaluate.py",
                    f"ckpt={RUN}",
                    f"shards={CLIPS}/val-000000.tar",
                    f"batch_size={args.batch}",
                    f"compile={compile}",
                    f"out_dir={out}",
                )
                result = json.loads((out / "evaluation.json").read_text())
                keys = ("clips", "seconds", "clips_per_second", "steady_clips_per_second")
                record(
                    rows,
                    {
                        "stage": "evaluate.py",
                        "compile": compile,
                        "batch": args.batch,
                        **{k: result[k] for k in keys},
                    },
                )
        settings = [(w, b, g) for w in args.writers for b in args.side_by_side for g in args.vlm_graphs]
        for writers, beside, graphs in settings if "predict" in args.stages else []:
            text = run(
                "predict.py",
                f"ckpt={RUN}",
                f"input={CLIPS}/val-000000.tar",
                f"batch_size={args.batch}",
                f"writers={writers}",
                f"side_by_side={beside}",
                f"vlm_graphs={graphs}",
                f"out_dir={WORK / 'predictions'}",
                "overwrite=true",
            )
            row = {
                "stage": "predict.py",
                "batch": args.batch,
                "writers": int(writers),
                "side_by_side": beside,
                "vlm_graphs": graphs,
            }
            record(rows, {**row, **printed_rates(text)})
        if "preprocess" in args.stages:
            features = WORK / "features"
            for old in features.glob("*.tar"):
                old.unlink()  # finished shards are skipped: time the writing afresh
            text = run(
                "preprocess.py",
                *common,
                f"preprocess.out_dir={features}",
                f"preprocess.batch_size={args.batch}",
            )
            record(rows, {"stage": "preprocess.py", "batch": args.batch, **printed_rates(text)})


if __name__ == "__main__":
    main()
