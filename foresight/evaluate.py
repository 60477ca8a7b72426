"""Scores of a checkpoint on held-out shards, each beside the copy-last-frame baseline.

    result = evaluate("logs/train/runs/<run>", shards="data/sample/val-000000.tar", limit=64)

The same seeded metrics as validation during training (ForesightModule.evaluate_batch): latent
MSE, PSNR and SSIM of the decoded future frames (the known current frame excluded), averaged over
clips and per future frame. Clips are read with the checkpoint's own window (context frames,
future frames, buckets, fps, prompt template); unusable clips are skipped and counted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from foresight.predict import Predictor

# FVD needs an I3D network that no machine of this project can download; this version carries no
# implementation of it: say so rather than report nothing.
FVD_MISSING = "not implemented in this version (needs I3D weights)"
SCALARS = ("latent_mse", "psnr", "ssim", "lpips")


def lpips_metric(vgg: str | None, lin: str | None, device) -> tuple[dict, dict]:
    """({"lpips": scorer}, {}) when both weight files exist, else ({}, {"lpips": why it was skipped})."""
    from foresight.eval.lpips import LPIPS

    missing = [f"lpips.{name}={path}" for name, path in (("vgg", vgg), ("lin", lin)) if not path or not Path(path).is_file()]
    if missing:
        return {}, {"lpips": f"skipped: no weights at {', '.join(missing)} (set lpips.vgg to torchvision's "
                             f"vgg16-397923af.pth and lpips.lin to LPIPS v0.1's vgg.pth)"}
    return {"lpips": LPIPS(vgg, lin).to(device)}, {}


def evaluate(ckpt: str | Path, shards: str | None = None, limit: int | None = None, batch_size: int = 4,
             seed: int = 0, device: str | None = None, lpips_vgg: str | None = None,
             lpips_lin: str | None = None) -> dict:
    """Mean metrics over the clips (each batch weighted by its size) and per-frame curves."""
    predictor = Predictor(ckpt, device=device)
    module = predictor.module
    extra, not_computed = lpips_metric(lpips_vgg, lpips_lin, module.device)
    windows = predictor.held_out(shards, limit, batch_size)
    sums: dict[str, torch.Tensor] = {}
    clips, started = 0, time.perf_counter()
    for index, batch in enumerate(torch.utils.data.DataLoader(windows, batch_size=None)):
        batch = {k: v.to(module.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        size = len(batch["caption"])
        scores = module.evaluate_batch(batch, seed=seed + index, per_frame=True, frame_metrics=extra)
        for key, value in scores.items():
            sums[key] = sums.get(key, 0) + value.double().cpu() * size
        clips += size
    if clips == 0:
        raise ValueError(f"no usable clip in {shards or predictor.cfg.data.val_shards} "
                         f"(skipped: {dict(windows.skips) or 'none'}); check the shards and the window")
    means = {k: v / clips for k, v in sums.items()}
    meta = predictor.meta
    trained = meta.get("config", {})
    return {
        "checkpoint": str(predictor.path), "option": meta.get("option"), "step": meta.get("step"),
        # what `foresight compare` groups by, as for the training runs
        "config": {k: trained.get(k) for k in ("run_group", "seed", "option")},
        "shards": shards or predictor.cfg.data.val_shards, "clips": clips, "skipped": dict(windows.skips),
        "seed": seed, "seconds": round(time.perf_counter() - started, 2),
        "metrics": {k: float(v) for k, v in means.items() if v.ndim == 0},
        "per_frame": {k.removesuffix("_frames"): v.tolist() for k, v in means.items() if v.ndim == 1},
        "not_computed": {**not_computed, "fvd": FVD_MISSING},
    }


def markdown(result: dict) -> str:
    """The result as a short report: each metric beside its baseline, then the per-frame curves."""
    m = result["metrics"]
    lines = [f"# Evaluation of option {result['option']} at step {result['step']}", "",
             f"`{result['checkpoint']}` on {result['clips']} clips of `{result['shards']}` "
             f"(seed {result['seed']}; skipped: {result['skipped'] or 'none'}).", "",
             "| metric | model | copy last frame | better |", "|---|---|---|---|"]
    for key in (k for k in SCALARS if k in m):
        better = "higher" if key in ("psnr", "ssim") else "lower"
        lines.append(f"| {key} | {m[key]:.4g} | {m[key + '_copy_last']:.4g} | {better} |")
    other = [k for k in m if k not in SCALARS and not k.endswith("_copy_last")]
    pf = result["per_frame"]
    columns = [c for k in pf if not k.endswith("_copy_last") for c in (k, f"{k} copy last")]
    lines += ["", "Losses: " + ", ".join(f"{k} {m[k]:.4g}" for k in other) + ".", "",
              "Per future frame (frame 1 is the first predicted frame):", "",
              "| frame | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for i in range(len(pf["psnr"])):
        lines.append(f"| {i + 1} | " + " | ".join(f"{pf[c.replace(' copy last', '_copy_last')][i]:.3g}"
                                                 for c in columns) + " |")
    lines += ["", *(f"{k.upper()}: {v}." for k, v in result["not_computed"].items())]
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "evaluation.json", out / "evaluation.md"]
    paths[0].write_text(json.dumps(result, indent=1) + "\n")
    paths[1].write_text(markdown(result))
    return paths
