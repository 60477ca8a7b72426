"""Faults a run survives: whatever fails after the last step, a corrupt or half-written state under
the logs, two runs started in the same second, a resume with nothing left to train. (SIGKILL during
a checkpoint write: tests/test_resume.py.)"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from foresight.config import ROOT, compose
from foresight.console import one_line_errors, quiet
from foresight.training.files import remove_dead_temporaries
from foresight.training.resume import SafetensorsIO, find_resumable, read_state
from tests.helpers import run_script

SAMPLE_VAL = ROOT / "data" / "sample" / "val-000000.tar"
SHORT = [
    "+experiment=optionA",
    "trainer.max_steps=3",
    "trainer.val_check_interval=100",
    "trainer.log_every_n_steps=1",
    "callbacks.training_state.every_n_steps=100",
    "callbacks.sample_videos.every_n_steps=0",
]


def train_in_process(tmp_path, twin_dir, *overrides) -> int:
    from foresight.training.train import train_or_record_failure

    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"paths.output_dir={tmp_path / 'run'}",
            "logger=csv",
            *SHORT,
            *overrides,
        ]
    )
    quiet()  # as train.py does
    try:
        with one_line_errors("train.py"):
            train_or_record_failure(cfg)
    except SystemExit as e:
        return e.code
    return 0


@pytest.mark.slow
def test_a_validation_shard_broken_mid_run_costs_neither_final_state_nor_metrics(
    tmp_path, twin_dir, capsys, caplog, monkeypatch
):
    from foresight import trusted

    allowed = trusted.allowed_targets() | {"tests.helpers.BreakFileAtStep"}  # as a conf/ file naming it would
    monkeypatch.setattr(trusted, "allowed_targets", lambda: allowed)
    val = tmp_path / "val-000000.tar"
    shutil.copy(SAMPLE_VAL, val)  # readable at the start (the check before training passes), broken at step 2
    with caplog.at_level(logging.INFO, logger="foresight"):
        code = train_in_process(
            tmp_path,
            twin_dir,
            f"data.val_shards={val}",
            "+callbacks.break_val._target_=tests.helpers.BreakFileAtStep",
            f"+callbacks.break_val.path={val}",
            "+callbacks.break_val.step=2",
        )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and line.startswith(
        "train.py: error: training reached step 3 and wrote its final state and "
        f"weights, but then failed: the final validation on data.val_shards='{val}'"
    )
    run = tmp_path / "run"
    assert read_state(run / "checkpoints" / "state" / "step000003.safetensors")["global_step"] == 3
    assert (
        SafetensorsIO().load_checkpoint(run / "checkpoints" / "state" / "step000003.safetensors")[
            "global_step"
        ]
        == 3
    )
    from foresight.training.weights import read_meta

    assert read_meta(run / "checkpoints" / "last.safetensors")["step"] == 3
    (metrics,) = run.rglob("metrics.csv")
    with open(metrics) as f:
        steps = {int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")}
    assert steps == {0, 1, 2}  # every training step's loss was written
    assert "FAILED after the last step" in caplog.text and "resume state" in caplog.text


@pytest.mark.slow
def test_failing_sample_videos_are_one_warning_and_the_run_validates_at_its_end(tmp_path, twin_dir, caplog):
    blocked = tmp_path / "a_file"
    blocked.write_text("sample videos cannot go under a file")
    with caplog.at_level(logging.INFO, logger="foresight"):
        code = train_in_process(tmp_path, twin_dir, f"callbacks.sample_videos.dirpath={blocked}/samples")
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("sample videos failed at step 3: ") and "\n" not in w for w in warnings)
    summary = next(r.getMessage() for r in caplog.records if "steps in" in r.getMessage())
    # 3 steps with validation every 100: validated anyway, at the end, on the configured 8 clips
    assert "validation at step 3 on 8 clips" in summary and "val/latent_mse" in summary
    assert "verdict" in summary and "sample videos FAILED at step 3" in summary
    assert (tmp_path / "run" / "checkpoints" / "state" / "step000003.safetensors").exists()


def test_summary_says_when_a_run_does_not_beat_copy_last_and_when_validation_is_short():
    from foresight.training.train import validation_summary

    cfg = compose(["logger=none"])
    worse = {
        "val/latent_mse": 0.5,
        "val/latent_mse_copy_last": 0.1,
        "val/psnr": 20.0,
        "val/psnr_copy_last": 25.0,
    }
    lines = validation_summary(cfg, worse | {"data/val_skipped_too_short": 5}, {"step": 120, "clips": 3}, 120)
    assert lines[0] == (
        "  validation at step 120 on 3 clips, skipped too_short 5 -- FEWER than the 8 configured: "
        "its scores are noisy"
    )
    assert "does NOT beat the copy-last-frame baseline on any of latent_mse, psnr" in lines[-1]
    mixed = worse | {"val/psnr": 30.0}
    assert (
        lines_end(cfg, mixed) == "does NOT beat the copy-last-frame baseline on latent_mse (beats it on psnr)"
    )
    better = mixed | {"val/latent_mse": 0.05}
    assert lines_end(cfg, better) == "beats the copy-last-frame baseline on every metric (latent_mse, psnr)"


def lines_end(cfg, metrics) -> str:
    from foresight.training.train import validation_summary

    return validation_summary(cfg, metrics, {"step": 1, "clips": 8}, 1)[-1].split("verdict", 1)[1].strip()


# resume=auto over a log directory with broken files ---------------------------------------------

EXPERIMENT = {"run_group": "optionA", "overrides": ["+experiment=optionA"]}


def state_file(path: Path, step: int, experiment=EXPERIMENT, shaping=None) -> Path:
    SafetensorsIO().save_checkpoint(
        {
            "global_step": step,
            "foresight": {"experiment": experiment, "config": {}, "shaping": shaping or {}},
        },
        path,
    )
    return path


def test_experiment_with_or_without_plus_resumes_the_same_runs(tmp_path):
    """`experiment=X` and `+experiment=X` (the form of every command before train.yaml named the group)
    have one identity, the one states have always stored; another seed is another experiment."""
    from foresight.training.resume import experiment_identity

    old = state_file(tmp_path / "a" / "checkpoints" / "state" / "step000004.safetensors", 4)
    assert (
        experiment_identity(compose(["experiment=optionA"]))
        == experiment_identity(compose(["+experiment=optionA"]))
        == EXPERIMENT
    )
    assert find_resumable(tmp_path, experiment_identity(compose(["experiment=optionA"]))) == old
    assert find_resumable(tmp_path, experiment_identity(compose(["experiment=optionA", "seed=1"]))) is None


def test_resume_auto_skips_unreadable_states_with_a_warning(tmp_path, caplog):
    good = state_file(tmp_path / "a" / "checkpoints" / "state" / "step000004.safetensors", 4)
    time.sleep(0.01)
    newest = state_file(tmp_path / "b" / "checkpoints" / "state" / "step000008.safetensors", 8)
    newest.write_bytes(newest.read_bytes()[:-50])  # half-written (copied while training, disk full, ...)
    empty = tmp_path / "c" / "checkpoints" / "state" / "step000009.safetensors"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="foresight"):
        assert find_resumable(tmp_path, EXPERIMENT) == good
    skipped = [r.getMessage() for r in caplog.records if "skipping an unreadable candidate" in r.getMessage()]
    assert (
        len(skipped) == 2 and any(str(newest) in m for m in skipped) and any(str(empty) in m for m in skipped)
    )


def test_temporary_files_of_dead_writers_are_removed(tmp_path):
    state = tmp_path / "run" / "checkpoints" / "state"
    state.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that ran here and is gone
    host = socket.gethostname()
    killed = state / f".step000008.safetensors.tmp-{host}-{dead.pid}"
    writing = state / f".step000012.safetensors.tmp-{host}-{os.getpid()}"  # a live writer: left alone
    elsewhere = state / ".step000012.safetensors.tmp-othernode-4242"  # another host, recent: may be writing
    stale = state / ".step000004.safetensors.tmp-othernode-4243"  # another host, untouched for 2 h
    legacy = state / f".step000016.safetensors.tmp{dead.pid}"  # written by an earlier version, pid gone
    for path in (killed, writing, elsewhere, stale, legacy):
        path.write_bytes(b"\0" * 1000)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert sorted(remove_dead_temporaries(tmp_path)) == sorted([killed, stale, legacy])
    assert sorted(p.name for p in state.iterdir()) == sorted([writing.name, elsewhere.name])


def test_a_state_written_by_another_experiment_or_altered_is_never_resumed(tmp_path):
    state_file(
        tmp_path / "x" / "checkpoints" / "state" / "step000004.safetensors",
        4,
        {"run_group": "optionB", "overrides": ["+experiment=optionB"]},
    )
    hostile = tmp_path / "y" / "checkpoints" / "state" / "step000009.safetensors"
    SafetensorsIO().save_checkpoint(
        {
            "global_step": 9,
            "foresight": {
                "experiment": EXPERIMENT,
                "config": {"model": {"_target_": "builtins.exec", "_args_": ["1"]}},
            },
        },
        hostile,
    )
    assert find_resumable(tmp_path, EXPERIMENT) is None


# run directories ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path, twin_dir):
    """Both runs resolve the same directory name (as two runs in one second do with <time>): each must
    claim its own, and keep its own checkpoint and config."""
    pinned = "hydra.run.dir=${foresight_new_dir:" + str(tmp_path / "runs" / "2026-12-01_10-00-00") + "}"
    cmd = [
        sys.executable,
        "train.py",
        "+experiment=optionA",
        "logger=none",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
        "callbacks.sample_videos.every_n_steps=0",
        f"paths.cache_dir={twin_dir}",
        f"paths.log_dir={tmp_path}",
        pinned,
    ]
    procs = [
        subprocess.Popen(
            [*cmd, f"seed={seed}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for seed in (0, 1)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["2026-12-01_10-00-00", "2026-12-01_10-00-00_1"]
    from foresight.training.weights import read_meta

    seeds = [read_meta(r / "checkpoints" / "last.safetensors")["config"]["seed"] for r in runs]
    assert sorted(seeds) == [0, 1]  # neither overwrote the other's weights, nor its config
    assert [yaml.safe_load((r / ".hydra" / "config.yaml").read_text())["seed"] for r in runs] == seeds


def test_claiming_a_directory_is_exclusive_and_stable(tmp_path):
    from foresight.config import new_dir

    base = str(tmp_path / "runs" / "t")
    (tmp_path / "runs").mkdir()
    os.mkdir(base)  # another process claimed it first
    mine = new_dir(base)
    assert mine == f"{base}_1" and Path(mine).is_dir()
    assert new_dir(base) == mine  # resolved again in this process: the same directory, no new one


@pytest.mark.slow
def test_resume_auto_with_nothing_left_to_train_leaves_no_new_run_directory(tmp_path, twin_dir):
    from omegaconf import OmegaConf

    from foresight.training.resume import shaping_config

    job = compose(["+experiment=optionA", f"paths.output_dir={tmp_path}"], config_name="train")
    shaping = shaping_config(
        OmegaConf.to_container(OmegaConf.masked_copy(job, [k for k in job if k != "hydra"]), resolve=True)
    )
    finished = tmp_path / "train" / "runs" / "2026-12-01_09-00-00"
    state_file(finished / "checkpoints" / "state" / "step000002.safetensors", 2, shaping=shaping)
    args = [
        "+experiment=optionA",
        "resume=auto",
        "trainer.max_steps=2",
        "logger=none",
        f"paths.cache_dir={twin_dir}",
        f"paths.log_dir={tmp_path}",
    ]
    for _ in range(2):
        done = run_script("train.py", *args, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert (
            "nothing to train" in done.stdout + done.stderr
            and "pass a larger trainer.max_steps" in done.stdout
        )
    assert [p.name for p in (tmp_path / "train" / "runs").iterdir()] == [finished.name]
