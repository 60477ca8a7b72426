"""Sweeps and scale-out as users launch them: basic and Optuna sweeps, submitit, DDP on CPU ranks."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from foresight.eval.compare import wandb_records
from foresight.training.resume import SafetensorsIO
from tests.helpers import offline_wandb, run_script

SHORT = ["trainer.max_steps=2", "trainer.val_check_interval=2", "callbacks.sample_videos.every_n_steps=0"]


def train_py(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    out = run_script("train.py", *args, timeout=timeout, env=offline_wandb())
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def wandb_run(run_dir: Path):
    """The run record (group, job type, name) of the offline wandb run under run_dir."""
    (path,) = run_dir.rglob("wandb/offline-run-*/run-*.wandb")
    return next(r.run for r in wandb_records(path) if r.WhichOneof("record_type") == "run")


@pytest.mark.slow
def test_basic_sweep_goes_on_past_a_failed_trial_and_groups_wandb_by_sweep(tmp_path, twin_dir):
    train_py(
        "-m",
        "+experiment=optionA",
        "data.future_frames=9,10,17",
        "logger=wandb",
        *SHORT,
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={twin_dir}",
    )
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    failed = json.loads((sweep / "1" / "failed.json").read_text())
    assert failed["error"] == "ValueError" and "data.future_frames=10" in failed["message"]
    for job, frames in (("0", 9), ("2", 17)):  # the trials before and after it ran, each its own wandb run
        assert (sweep / job / "checkpoints" / "last.safetensors").exists()
        run = wandb_run(sweep / job)
        assert run.run_group == f"sweep-{sweep.name}" and run.job_type == "optionA"
        assert run.display_name == f"+experiment=optionA,data.future_frames={frames}"  # the trial's overrides


@pytest.mark.slow
def test_optuna_study_optimises_the_validation_metric(tmp_path, twin_dir):
    train_py(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "+experiment=optionA",
        "logger=none",
        *SHORT,
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={twin_dir}",
    )
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna" and 0 < result["best_value"] < 100
    assert set(result["best_params"]) == {"module.optimizer.lr", "adapter.depth"}
    assert len([d for d in sweep.iterdir() if d.is_dir() and d.name.isdigit()]) == 2


@pytest.mark.slow
def test_the_local_launcher_runs_a_two_job_sweep(tmp_path, twin_dir):
    train_py(
        "-m",
        "hydra/launcher=local",
        "+experiment=optionA",
        "seed=0,1",
        "logger=csv",
        *SHORT,
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={twin_dir}",
    )
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    assert sorted(p.parent.parent.name for p in sweep.glob("*/checkpoints/last.safetensors")) == ["0", "1"]
    # every job's log in one folder made before any job starts (a folder per job races with the job)
    logs = sweep / ".submitit"
    assert len(list(logs.glob("*_0_log.out"))) == 2 and not [d for d in logs.iterdir() if d.is_dir()]


@pytest.mark.slow
def test_ddp_on_two_cpu_ranks_reads_different_samples_and_writes_one_checkpoint(tmp_path, twin_dir):
    train_py(
        "+experiment=optionA",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "trainer.max_steps=4",
        "trainer.val_check_interval=4",
        "callbacks.training_state.every_n_steps=4",
        "callbacks.sample_videos.every_n_steps=0",
        "logger=csv",
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={twin_dir}",
    )
    (run,) = (tmp_path / "train" / "runs").iterdir()
    assert [p.name for p in run.glob("checkpoints/state/*")] == ["step000004.safetensors"]
    state = SafetensorsIO().load_checkpoint(run / "checkpoints" / "state" / "step000004.safetensors")
    ranks = state["VideoDataModule"]["ranks"]  # every rank's data position, gathered into one file
    assert len(ranks) == 2
    first, second = (r["workers"]["0"] for r in ranks)
    assert first["samples"] > 0 and second["samples"] > 0
    assert first["slots"] != second["slots"]  # each rank draws its own shards and samples
    assert len(list(run.rglob("metrics.csv"))) == 1 and (run / "checkpoints" / "last.safetensors").exists()


def test_fsdp_config_shards_dit_blocks_loads_safetensors_state_and_refuses_dit_graphs():
    from hydra.utils import instantiate

    from foresight.config import compose
    from foresight.training.fsdp import SafetensorsFSDP

    strategy = instantiate(compose(["trainer=fsdp"]).trainer.strategy)  # runs on GPUs only; built here
    assert isinstance(strategy, SafetensorsFSDP)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert {c.__name__ for c in policy._module_classes} == {"LTXVideoTransformerBlock"}
    # a DiT replayed from CUDA graphs would read weights FSDP has freed: refused in one line
    strategy._lightning_module = SimpleNamespace(ltx=SimpleNamespace(graphs=object()))
    with pytest.raises(ValueError, match="set model.cuda_graphs=false with trainer=fsdp"):
        strategy.setup(None)
