"""Scores of K-chunk rollouts on long held-out clips: per horizon, beside copy-last, and the drift.

    result = evaluate_rollout(Predictor("logs/train/runs/<run>"), chunks=3,
                              shards="data/world/heldout_long-000000.tar")

    python -m foresight.eval.rollout logs/<study>/eval    # arms (sub-folders of evaluation.json) compared

A rollout predicts F future frames, then predicts again from the last C frames of context and
predictions, K times (Predictor.rollout): from chunk 2 on the model conditions on its own output.
Each clip is cut with C context frames and K·(F−1)+1 future frames (clips too short for that are
skipped and counted as `too_short`); chunk k's F−1 new frames are scored against the true frames at
the same times, and so is copy-last from the original context (the current frame held over the
whole horizon). Latent MSE compares chunk k's sampled latents with the true frames of its window
encoded as one clip (latent frame 0, the frame the chunk started from, excluded). Drift is the
least-squares slope of a metric's per-chunk means over the chunk index (per chunk; for PSNR, dB
lost per chunk is a negative slope).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

from foresight.background import read_ahead
from foresight.eval.metrics import psnr, ssim
from foresight.eval.scoring import better
from foresight.features import frames_to_video
from foresight.predict import Predictor, mean_chunk_timings
from foresight.throughput import Throughput

FRAME_METRICS = {"psnr": psnr, "ssim": ssim}
METRICS = ("latent_mse", *FRAME_METRICS)


def slope(values: list[float]) -> float:
    """Least-squares slope of values over their index (0, 1, ...)."""
    n = len(values)
    mean_k, mean_v = (n - 1) / 2, sum(values) / n
    return sum((k - mean_k) * (v - mean_v) for k, v in enumerate(values)) / sum(
        (k - mean_k) ** 2 for k in range(n)
    )


@torch.no_grad()
def score_batch(
    predictor: Predictor, batch: dict, chunks: int, seed: int, latent_continuation: bool
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """Per-clip scores of one batch: `{metric}` and `{metric}_copy_last`, each (B, K, F-1) for frame
    metrics and (B, K) for latent MSE; and the rollout's per-chunk timings."""
    ltx, f = predictor.module.ltx, predictor.future_frames
    context, truth = batch["context"], batch["target"]  # (B, C, H, W, 3), (B, K(F-1)+1, H, W, 3) uint8
    run = predictor.rollout(
        context.numpy(),
        [list(batch["caption"])] * chunks,
        fps=batch["fps"].tolist(),
        seed=seed,
        latent_continuation=latent_continuation,
    )
    pred = torch.from_numpy(run.frames)  # (B, K, F, H, W, 3)
    still = context[:, -1:].expand(-1, f, -1, -1, -1)  # (B, F, H, W, 3): the current frame held
    still_latents = ltx.encode(frames_to_video(still.to(predictor.device))).float().cpu()  # (B, 128, f, h, w)
    out: dict[str, list[torch.Tensor]] = {}
    for k in range(chunks):
        window = truth[:, k * (f - 1) : k * (f - 1) + f]  # (B, F, H, W, 3): the true frames of chunk k
        true_latents = ltx.encode(frames_to_video(window.to(predictor.device))).float().cpu()
        for suffix, latents, frames in (
            ("", run.latents[:, k], pred[:, k]),
            ("_copy_last", still_latents, still),
        ):
            mse = (latents[:, :, 1:] - true_latents[:, :, 1:]).pow(2).mean(dim=(1, 2, 3, 4))  # (B,)
            out.setdefault(f"latent_mse{suffix}", []).append(mse)
            for name, metric in FRAME_METRICS.items():
                out.setdefault(f"{name}{suffix}", []).append(metric(frames[:, 1:], window[:, 1:]))  # (B, F-1)
    return {key: torch.stack(values, 1) for key, values in out.items()}, run.timings


def evaluate_rollout(
    predictor: Predictor,
    chunks: int,
    shards: str | None = None,
    limit: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    latent_continuation: bool = False,
) -> dict:
    """Means over clips per chunk and per horizon frame, the drift, and the seconds per chunk."""
    f = predictor.future_frames
    windows = predictor.held_out(shards, limit, batch_size, future_frames=chunks * (f - 1) + 1)
    sums: dict[str, torch.Tensor] = {}
    timings: list[list[dict[str, float]]] = []
    throughput = Throughput()  # counts the clips
    for index, batch in enumerate(read_ahead(torch.utils.data.DataLoader(windows, batch_size=None))):
        scores, chunk_times = score_batch(predictor, batch, chunks, seed + index, latent_continuation)
        for key, value in scores.items():
            sums[key] = sums.get(key, 0) + value.double().sum(0)
        timings.append(chunk_times)
        throughput.add(len(batch["caption"]))
    clips = throughput.clips
    spec = shards or predictor.cfg.data.val_shards
    if clips == 0:
        raise ValueError(
            f"no clip in {spec} is long enough for rollout={chunks} (skipped: "
            f"{dict(windows.skips) or 'none'}); {windows.needs()}"
        )
    means = {key: value / clips for key, value in sums.items()}  # (K,) or (K, F-1)
    metrics: dict[str, float] = {}
    for key, value in means.items():
        name, suffix = (
            (key.removesuffix("_copy_last"), "_copy_last") if key.endswith("_copy_last") else (key, "")
        )
        per_chunk = (value if value.ndim == 1 else value.mean(1)).tolist()
        for k, v in enumerate(per_chunk):
            metrics[f"{name}_chunk{k + 1}{suffix}"] = v
        metrics[f"{name}_rollout{suffix}"] = sum(per_chunk) / chunks
        if chunks > 1:
            metrics[f"{name}_drift{suffix}"] = slope(per_chunk)
    return {
        **predictor.identity(),
        "rollout": chunks,
        "latent_continuation": latent_continuation,
        "shards": spec,
        "clips": clips,
        "skipped": dict(windows.skips),
        "seed": seed,
        **throughput.report(),  # clips a second at this batch_size, scoring included
        "metrics": metrics,
        # per horizon frame 1..K(F-1): chunk k's new frames at k(F-1)+1 .. (k+1)(F-1)
        "per_frame": {key: value.flatten().tolist() for key, value in means.items() if value.ndim == 2},
        "seconds_per_chunk": mean_chunk_timings(timings),
        "not_computed": {},
    }


def markdown(result: dict) -> str:
    """The rollout result as a short report: a row per chunk, each metric beside copy-last, the drift."""
    m, k = result["metrics"], result["rollout"]
    mode = "latent continuation" if result["latent_continuation"] else "decoded frames re-encoded"
    lines = [
        f"# Rollout of option {result['option']} at step {result['step']}: {k} chunks ({mode})",
        "",
        f"`{result['checkpoint']}` on {result['clips']} clips of `{result['shards']}` "
        f"(seed {result['seed']}; skipped: {result['skipped'] or 'none'}). Copy last: the original current "
        f"frame held over the whole horizon.",
        "",
        "| chunk | " + " | ".join(f"{n} | {n} (copy last)" for n in METRICS) + " | seconds |",
        "|---" * (2 * len(METRICS) + 2) + "|",
    ]
    for i, seconds in enumerate(result["seconds_per_chunk"], 1):
        cells = " | ".join(f"{m[f'{n}_chunk{i}']:.4g} | {m[f'{n}_chunk{i}_copy_last']:.4g}" for n in METRICS)
        lines.append(f"| {i} | {cells} | {seconds['total_s']:.3f} |")
    if k > 1:
        lines += [
            "",
            "Drift (slope per chunk; "
            + ", ".join(f"{n}: {better(n)} is better" for n in METRICS)
            + "): "
            + ", ".join(
                f"{n} {m[f'{n}_drift']:+.4g} (copy last {m[f'{n}_drift_copy_last']:+.4g})" for n in METRICS
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def mean_spread(values: list[float]) -> str:
    """'mean ± sample std' over runs (the value alone for one run)."""
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def arms_table(root: Path, metrics: tuple[str, ...] = ("psnr", "latent_mse")) -> str:
    """A markdown table comparing study arms: each sub-folder of `root` is an arm, its runs' rollout
    evaluations (`<run>/evaluation.json`, the same chunks each) averaged per chunk with their spread
    over runs (seeds), the drift and seconds per chunk; copy-last from the first arm's first run."""
    arms = {
        arm.name: [json.loads(f.read_text()) for f in sorted(arm.glob("*/evaluation.json"))]
        for arm in sorted(p for p in Path(root).iterdir() if p.is_dir())
    }
    arms = {name: runs for name, runs in arms.items() if runs}
    if not arms:
        raise ValueError(f"{root} holds no <arm>/<run>/evaluation.json; run evaluate.py ... rollout=K first")
    chunks = next(iter(arms.values()))[0]["rollout"]
    columns = [f"{m}_chunk{k}" for m in metrics for k in range(1, chunks + 1)] + [
        f"{m}_drift" for m in metrics
    ]
    header = [f"{m} chunk {k}" for m in metrics for k in range(1, chunks + 1)] + [
        f"{m} drift" for m in metrics
    ]
    lines = [
        "| arm | runs | " + " | ".join(header) + " | s/chunk |",
        "|---" * (len(header) + 3) + "|",
    ]
    for name, runs in arms.items():
        if any(r["rollout"] != chunks for r in runs):
            raise ValueError(
                f"{root / name}: its evaluations are not all rollout={chunks}; compare like with like"
            )
        seconds = statistics.mean(c["total_s"] for r in runs for c in r["seconds_per_chunk"])
        cells = [mean_spread([r["metrics"][key] for r in runs]) for key in columns]
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {seconds:.3f} |")
    copy = next(iter(arms.values()))[0]["metrics"]
    cells = [f"{copy[f'{key}_copy_last']:.4g}" for key in columns]
    lines.append("| copy last (original current frame) | - | " + " | ".join(cells) + " | - |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(
            "usage: python -m foresight.eval.rollout EVAL_DIR  (its sub-folders: arms of rollout evaluations)"
        )
    try:
        print(arms_table(Path(sys.argv[1])), end="")
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"foresight.eval.rollout: {e}")
