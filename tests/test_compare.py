"""`foresight compare`: real CSVLogger and wandb offline run directories in, numbers and files out."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from foresight.eval.compare import compare

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {
    "optionA": "foresight.options.clean_latents.CleanLatents",
    "optionB": "foresight.options.partial_diffusion.PartialDiffusion",
}
# (group, seed) -> final val/psnr, val/latent_mse; every run's copy-last baseline is psnr 15, latent_mse 0.01
FINAL = {
    ("optionA", 0): (20.0, 0.5),
    ("optionA", 1): (22.0, 0.3),
    ("optionB", 0): (24.0, 0.2),
    ("optionB", 1): (28.0, 0.1),
}


def make_run(run_dir: Path, group: str, seed: int) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    config = {"run_group": group, "seed": seed, "option": {"_target_": OPTIONS[group], "t_star": 0.5}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return run_dir


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep: 2 groups x 2 seeds logged by CSVLogger, an optionB run in wandb only, one without metrics."""
    import wandb
    from lightning.pytorch.loggers import CSVLogger

    root = tmp_path_factory.mktemp("multiruns") / "2026-11-24_00-00-00"
    for job, ((group, seed), (psnr, mse)) in enumerate(FINAL.items()):
        logger = CSVLogger(save_dir=make_run(root / str(job), group, seed), name="csv")
        for step in (1, 2, 3):
            logger.log_metrics({"train/loss": 1.0 / step + seed, "train/lr": 1e-3}, step=step)
        for step, (p, m) in ((2, (psnr - 5, 1.0)), (4, (psnr, mse))):
            logger.log_metrics(
                {
                    "val/psnr": p,
                    "val/psnr_copy_last": 15.0,
                    "val/latent_mse": m,
                    "val/latent_mse_copy_last": 0.01,
                },
                step=step,
            )
        logger.save()
    run = wandb.init(mode="offline", dir=make_run(root / "4", "optionB", 2), project="t")
    for step, row in (
        (1, {"train/loss": 0.9}),
        (2, {"val/psnr": 10.0, "val/psnr_copy_last": 15.0}),
        (4, {"val/psnr": 30.0, "val/psnr_copy_last": 15.0, "val/latent_mse": 0.3}),
    ):
        wandb.log(row, step=step)
    run.finish()
    make_run(root / "5", "optionA", 9)  # crashed before logging anything
    (make_run(root / "6", "optionB", 7) / "failed.json").write_text(
        json.dumps(  # a trial train.py recorded as failed
            {
                "error": "OutOfMemoryError",
                "message": "CUDA out of memory. Tried to allocate 2.00 GiB",
                "traceback": "",
            }
        )
    )
    return root


def test_summary_numbers_baseline_and_files(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    summary = compare([str(sweep)], out)
    assert "warning: skipping" in capsys.readouterr().err and summary["skipped"] == [str(sweep / "5")]
    assert summary["failed"] == {
        str(sweep / "6"): "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    }
    assert f"Failed: {sweep / '6'} (OutOfMemoryError" in (out / "report.md").read_text()
    a, b = summary["groups"]["optionA"], summary["groups"]["optionB"]
    assert (a["n"], a["seeds"], b["n"], b["seeds"]) == (2, [0, 1], 3, [0, 1, 2])
    assert a["metrics"]["val/psnr"] == pytest.approx({"mean": 21.0, "std": math.sqrt(2), "n": 2})
    assert a["metrics"]["val/latent_mse"] == pytest.approx({"mean": 0.4, "std": math.sqrt(0.02), "n": 2})
    # the wandb-only run counts: psnr 24, 28, 30
    assert b["metrics"]["val/psnr"] == pytest.approx({"mean": 82 / 3, "std": math.sqrt(28 / 3), "n": 3})
    assert b["metrics"]["val/psnr_copy_last"]["mean"] == pytest.approx(15.0)

    md = (out / "report.md").read_text()
    table = {
        cells[0]: cells
        for cells in (
            [c.strip() for c in line.strip("|").split("|")]
            for line in md.splitlines()
            if line.startswith("|")
        )
    }
    header, row = table["group"], dict(zip(table["group"], table["optionA"], strict=True))
    assert header[3:] == ["latent_mse", "latent_mse (copy last)", "psnr", "psnr (copy last)"]
    cells = [row[k] for k in ("psnr", "psnr (copy last)", "latent_mse (copy last)")]
    assert cells == ["21 ± 1.4 (n=2)", "15", "0.01"]
    assert "psnr higher" in md and "latent_mse lower" in md and "nan" not in md.lower()
    for png in ("train_loss.png", "val_psnr.png", "val_latent_mse.png"):
        assert (out / png).stat().st_size > 1000 and f"({png})" in md
    assert not (out / "val_psnr_copy_last.png").exists() and (out / "summary.json").exists()
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "21 ± 1.4 (n=2)" in page


def test_single_run_shows_zero_std_and_by_option_groups_by_class(sweep, tmp_path):
    summary = compare([str(sweep / "4")], tmp_path / "one")
    assert summary["groups"]["optionB"]["metrics"]["val/psnr"] == {"mean": 30.0, "std": 0.0, "n": 1}
    md = (tmp_path / "one" / "report.md").read_text()
    assert "| optionB | 1 | 2 | 0.3 ± 0 (n=1) | 30 ± 0 (n=1) | 15 |" in md
    groups = compare([str(sweep)], tmp_path / "by", by="option")["groups"]
    assert {k: g["n"] for k, g in groups.items()} == {"CleanLatents": 2, "PartialDiffusion": 3}


def test_wandb_source_without_key_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError) as e:
        compare(["wandb:x/y"], tmp_path / "out")
    assert str(e.value).startswith("cannot read wandb:x/y") and "wandb login" in str(e.value)
    assert "\n" not in str(e.value) and e.value.__cause__ is None


def test_cli_prints_written_files(sweep, tmp_path):
    def cli(source):
        command = [sys.executable, "-m", "foresight.cli", "compare", str(source), "--out", str(tmp_path)]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)

    done = cli(sweep)
    assert done.returncode == 0, done.stderr
    printed = [Path(p) for p in done.stdout.split()]
    assert {"report.md", "report.html", "summary.json", "val_psnr.png"} <= {p.name for p in printed}
    assert all(p.exists() and p.parent == tmp_path for p in printed)
    bad = cli(tmp_path / "none")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_ranking_uses_sampled_scores_only_with_baselines_gap_and_horizons(tmp_path):
    """Flow losses mean different things per option: they are shown apart and never rank. Baselines
    rank among the groups; the instruction gap is a column; evaluations give per-frame curves."""
    from lightning.pytorch.loggers import CSVLogger

    finals = {"optionA": (0.5, 5.0, 0.01), "optionB": (0.2, 0.1, 0.3)}  # latent_mse, diag/flow_t0.5, gap
    for group, (mse, flow, gap) in finals.items():
        logger = CSVLogger(save_dir=make_run(tmp_path / "runs" / group, group, 0), name="csv")
        logger.log_metrics(
            {
                "val/latent_mse": mse,
                "val/latent_mse_copy_last": 0.4,
                "val/latent_mse_instruction_gap": gap,
                "val/psnr": 20.0,
                "val/psnr_copy_last_vae": 18.0,
                "val/psnr_vae_recon": 30.0,
                "val/diag/flow_t0.5": flow,
                "val/diag/loss": flow,
            },
            step=4,
        )
        logger.save()
        evaluation = {
            "checkpoint": group,
            "option": group[-1],
            "step": 4,
            "config": {"run_group": group, "seed": 0},
            "metrics": {"psnr": 20.0},
            "per_frame": {"psnr": [25.0, 20.0, 15.0], "psnr_copy_last": [20.0, 15.0, 10.0]},
        }
        (tmp_path / "evals" / group).mkdir(parents=True)
        (tmp_path / "evals" / group / "evaluation.json").write_text(json.dumps(evaluation))
    out = tmp_path / "report"
    summary = compare([str(tmp_path / "runs"), str(tmp_path / "evals")], out)
    assert list(summary["ranking"]) == ["eval/psnr", "val/latent_mse", "val/psnr"]  # no diag/ key ranks
    assert [row[0] for row in summary["ranking"]["val/latent_mse"]] == [
        "optionB",
        "copy last (raw)",
        "optionA",
    ]
    assert [row[0] for row in summary["ranking"]["val/psnr"]][0] == "VAE reconstruction (ceiling)"
    md = (out / "report.md").read_text()
    assert (
        "latent_mse (instruction gap)" in md
        and "## Sampler budget and diagnostics (not ranked)" in md
        and "diag/flow_t0.5" in md
    )
    assert "Ranked on scores of sampled futures only" in md
    assert (out / "horizon_eval_psnr.png").stat().st_size > 1000 and (out / "val_diag_flow_t0.5.png").exists()
    assert summary["groups"]["optionA"]["per_frame"]["eval/psnr"] == [25.0, 20.0, 15.0]
