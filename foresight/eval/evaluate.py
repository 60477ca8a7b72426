"""Scores of a checkpoint on held-out shards, each beside the copy-last-frame baseline.

    result = evaluate("logs/train/runs/<run>", shards="data/sample/val-000000.tar", limit=64)

The same seeded metrics as validation during training (foresight.eval.scoring.Scorer): latent
MSE, PSNR and SSIM of the decoded future frames (the known current frame excluded), averaged over
clips and per future frame. Clips are read with the checkpoint's own window (context frames,
future frames, buckets, fps, prompt template); unusable clips are skipped and counted. LPIPS and FVD
need network weights from local files; without them each is skipped with one line saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from omegaconf import OmegaConf

from foresight import checks
from foresight.background import read_ahead
from foresight.eval.scoring import DIAGNOSTIC, RANKING, SAMPLER, Scorer, better
from foresight.predict import Predictor, run_settings
from foresight.throughput import Throughput


def lpips_metric(vgg: str | None, lin: str | None, device) -> tuple[dict, dict]:
    """({"lpips": scorer}, {}) when both weight files exist, else ({}, {"lpips": why it was skipped})."""
    from foresight.eval.lpips import LPIPS

    missing = [
        f"lpips.{name}={path}"
        for name, path in (("vgg", vgg), ("lin", lin))
        if not path or not Path(path).is_file()
    ]
    if missing:
        return {}, {
            "lpips": f"skipped: no weights at {', '.join(missing)} (set lpips.vgg to torchvision's "
            f"vgg16-397923af.pth and lpips.lin to LPIPS v0.1's vgg.pth)"
        }
    return {"lpips": LPIPS(vgg, lin).to(device)}, {}


def fvd_network(i3d: str | None, device) -> tuple[torch.nn.Module | None, dict]:
    """(I3D, {}) when its weight file exists, else (None, {"fvd": why it was skipped})."""
    from foresight.eval.fvd import load_i3d

    if not i3d or not Path(i3d).is_file():
        return None, {
            "fvd": f"skipped: no weights at fvd.i3d={i3d} (set fvd.i3d to pytorch-i3d's rgb_imagenet.pt)"
        }
    return load_i3d(i3d).to(device), {}


def fvd_scores(features: dict[str, list[torch.Tensor]]) -> tuple[dict, dict]:
    """FVD of the predicted and of the copy-last futures against the true ones, from their I3D features."""
    from foresight.eval.fvd import frechet_distance

    real = torch.cat(features["truth"])  # (clips, 400)
    if len(real) < 2:
        return {}, {"fvd": f"skipped: FVD needs at least 2 clips, got {len(real)}"}
    return {
        "fvd": frechet_distance(torch.cat(features["pred"]), real),
        "fvd_copy_last": frechet_distance(torch.cat(features["copy_last"]), real),
    }, {}


def evaluate(
    ckpt: str | Path | None,
    shards: str | None = None,
    limit: int | None = None,
    batch_size: int = 4,
    seed: int = 0,
    device: str | None = None,
    lpips_vgg: str | None = None,
    lpips_lin: str | None = None,
    fvd_i3d: str | None = None,
    config=None,
    **settings,
) -> dict:
    """Mean metrics over the clips (each batch weighted by its size), per-frame curves, and FVD over all
    clips.
    ckpt=None with `config`: a baseline with nothing to train (option=i2v), built from the composed config.
    settings: Predictor's run settings over the checkpoint's config (quantize="int8", dit_quantize="fp8",
    compile; `run_settings`): what running this checkpoint that way costs."""
    predictor = Predictor(ckpt, device=device, config=config, **settings)
    module = predictor.module
    extra, not_computed = lpips_metric(lpips_vgg, lpips_lin, module.device)
    i3d, skipped = fvd_network(fvd_i3d, module.device)
    not_computed |= skipped
    features: dict[str, list[torch.Tensor]] = {"pred": [], "copy_last": [], "truth": []}

    def collect(pred: torch.Tensor, still: torch.Tensor, truth: torch.Tensor) -> None:
        for key, videos in (("pred", pred), ("copy_last", still), ("truth", truth)):
            features[key].append(i3d(videos).double().cpu())  # (B, 400)

    scorer = Scorer(frame_metrics=extra)
    windows = predictor.held_out(shards, limit, batch_size)
    sums: dict[str, torch.Tensor] = {}
    throughput = Throughput()  # counts the clips
    for index, batch in enumerate(read_ahead(torch.utils.data.DataLoader(windows, batch_size=None))):
        batch = move_data_to_device(batch, module.device)
        size = len(batch["caption"])
        with predictor.precision():  # as the run's validation scored
            scores = scorer(
                module,
                batch,
                seed=seed + index,
                per_frame=True,
                on_futures=collect if i3d is not None else None,
            )
        for key, value in scores.items():
            sums[key] = sums.get(key, 0) + value.double().cpu() * size
        throughput.add(size)
    clips = throughput.clips
    if clips == 0:
        raise ValueError(
            f"no usable clip in {shards or predictor.cfg.data.val_shards} "
            f"(skipped: {dict(windows.skips) or 'none'}); check the shards and the window"
        )
    means = {k: v / clips for k, v in sums.items()}
    fvd, skipped = fvd_scores(features) if i3d is not None else ({}, {})
    not_computed |= skipped
    return {
        **predictor.identity(),
        "shards": shards or predictor.cfg.data.val_shards,
        "clips": clips,
        "skipped": dict(windows.skips),
        "seed": seed,
        **throughput.report(),  # clips a second at this batch_size, scoring included
        "metrics": {**{k: float(v) for k, v in means.items() if v.ndim == 0}, **fvd},
        "per_frame": {k.removesuffix("_frames"): v.tolist() for k, v in means.items() if v.ndim == 1},
        "not_computed": not_computed,
    }


BESIDE = (
    ("_copy_last", "copy last (raw)"),
    ("_copy_last_vae", "copy last (VAE)"),
    ("_vae_recon", "VAE reconstruction (ceiling)"),
    ("_instruction_gap", "instruction gap"),
)


def markdown(result: dict) -> str:
    """The result as a short report: each ranking metric beside its baselines and instruction gap,
    the diagnostics, then the per-frame curves."""
    m = result["metrics"]
    lines = [
        f"# Evaluation of option {result['option']} at step {result['step']}",
        "",
        f"`{result['checkpoint']}` on {result['clips']} clips of `{result['shards']}` "
        f"(seed {result['seed']}; skipped: {result['skipped'] or 'none'}).",
        "",
        "| metric | model | " + " | ".join(title for _, title in BESIDE) + " | better |",
        "|---" * (len(BESIDE) + 3) + "|",
    ]
    for key in (k for k in RANKING if k in m):
        cells = [f"{m[key + suffix]:.4g}" if key + suffix in m else "—" for suffix, _ in BESIDE]
        lines.append(f"| {key} | {m[key]:.4g} | " + " | ".join(cells) + f" | {better(key)} |")
    diagnostics = [k for k in m if k.startswith(DIAGNOSTIC)]
    pf = result["per_frame"]
    columns = [k for k in pf if not k.endswith("_mismatched")]
    lines += [
        "",
        "Instruction gap: the score with the true instruction minus the score with another clip's "
        "(same noise), signed so that positive means the instruction helps.",
        "",
        "Sampler: "
        + ", ".join(
            f"{k.removeprefix(SAMPLER).replace('_', ' ')} {m[k]:g}" for k in m if k.startswith(SAMPLER)
        )
        + " (per sample).",
        "",
        "Diagnostics (the option's own losses; not comparable across options): "
        + ", ".join(f"{k.removeprefix(DIAGNOSTIC)} {m[k]:.4g}" for k in diagnostics)
        + ".",
        "",
        "Per future frame (frame 1 is the first predicted frame):",
        "",
        "| frame | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for i in range(len(pf["psnr"])):
        lines.append(f"| {i + 1} | " + " | ".join(f"{pf[c][i]:.3g}" for c in columns) + " |")
    if "fvd" in m:
        lines += [
            "",
            f"FVD: Fréchet distance of I3D (Kinetics-400) logits over the {result['clips']} predicted, "
            f"copy-last and true futures (the given frame excluded). With fewer than a few hundred "
            f"clips FVD is strongly biased upward: compare values only at the same clip count.",
        ]
    if result["not_computed"]:
        lines += ["", *(f"{k.upper()}: {v}." for k, v in result["not_computed"].items())]
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: str | Path, report: str | None = None) -> list[Path]:
    """evaluation.json (the result) and evaluation.md (`report`, or the result's markdown)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "evaluation.json", out / "evaluation.md"]
    paths[0].write_text(json.dumps(result, indent=1) + "\n")
    paths[1].write_text(report or markdown(result))
    return paths


def main(cfg) -> dict:
    """evaluate.py: score, write evaluation.json and evaluation.md, print the report."""
    checks.check(cfg, checks.EVALUATE)
    baseline = None
    if cfg.ckpt is None:  # a baseline: the composed training groups, without Hydra's own node
        baseline = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    if cfg.get("rollout") is not None:
        from foresight.eval import rollout

        result = rollout.evaluate_rollout(
            Predictor(cfg.ckpt, config=baseline, **run_settings(cfg)),
            cfg.rollout,
            shards=cfg.shards,
            limit=cfg.limit,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            latent_continuation=cfg.latent_continuation,
        )
        report = rollout.markdown(result)
    else:
        result = evaluate(
            cfg.ckpt,
            shards=cfg.shards,
            limit=cfg.limit,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            lpips_vgg=cfg.lpips.vgg,
            lpips_lin=cfg.lpips.lin,
            fvd_i3d=cfg.fvd.i3d,
            config=baseline,
            **run_settings(cfg),
        )
        report = markdown(result)
    paths = write(result, cfg.out_dir, report)
    print(report)
    print("wrote " + " and ".join(map(str, paths)))
    return result
