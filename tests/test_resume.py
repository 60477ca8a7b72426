"""Training state that truly resumes: a run killed with SIGKILL continues with the same losses."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from foresight.config import ROOT
from foresight.training.resume import SafetensorsIO, read_state

STEPS = 16
ARGS = [
    "+experiment=optionB",
    "logger=[csv,wandb]",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=6",
    "trainer.log_every_n_steps=1",
    "callbacks.training_state.every_n_steps=4",
    "callbacks.sample_videos.every_n_steps=0",
]


def train_py(log_dir: Path, twin_dir: Path, *extra: str, wait: bool = True):
    cmd = [
        sys.executable,
        "train.py",
        *ARGS,
        f"paths.log_dir={log_dir}",
        f"paths.cache_dir={twin_dir}",
        *extra,
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": ""}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if wait:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    return proc


def losses(run: Path) -> dict[int, float]:
    (path,) = run.rglob("metrics.csv")
    with open(path) as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


def wandb_ids(run: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[-1] for p in run.rglob("wandb/offline-run-*")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, twin_dir) -> Path:
    log_dir = tmp_path_factory.mktemp("uninterrupted")
    train_py(log_dir, twin_dir)
    (run,) = (log_dir / "train" / "runs").iterdir()
    return run


@pytest.mark.slow
def test_sigkilled_run_resumes_with_the_same_losses_and_wandb_run(uninterrupted, tmp_path, twin_dir):
    proc = train_py(tmp_path, twin_dir, wait=False)
    deadline = time.time() + 240
    while not list(tmp_path.glob("train/runs/*/checkpoints/state/step000008.safetensors")):
        assert proc.poll() is None and time.time() < deadline, "the run ended before its step-8 checkpoint"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    (killed,) = (tmp_path / "train" / "runs").iterdir()
    assert not (killed / "checkpoints" / "last.safetensors").exists()  # it died mid-run
    saved = max(int(p.stem[4:]) for p in killed.glob("checkpoints/state/step*.safetensors"))
    assert saved < STEPS

    resumed_proc = train_py(tmp_path, twin_dir, "resume=auto")
    (resumed,) = [r for r in (tmp_path / "train" / "runs").iterdir() if r != killed]
    after = losses(resumed)
    assert min(after) == saved and max(after) == STEPS - 1  # Lightning logs step s before optimizer step s+1
    reference = losses(uninterrupted)
    np.testing.assert_allclose(
        [after[s] for s in sorted(after)], [reference[s] for s in sorted(after)], rtol=0, atol=1e-6
    )
    assert len(set(after.values())) > 1  # the loss moves: equal curves are not a constant
    assert wandb_ids(killed) == wandb_ids(resumed) and len(wandb_ids(killed)) == 1  # one wandb run, continued
    assert resumed_proc.returncode == 0 and (resumed / "checkpoints" / "last.safetensors").exists()


@pytest.mark.slow
def test_only_the_newest_states_are_kept(uninterrupted):
    kept = sorted(p.name for p in uninterrupted.glob("checkpoints/state/*"))
    assert kept == [
        "step000008.safetensors",
        "step000012.safetensors",
        "step000016.safetensors",
    ]  # keep_last: 3


@pytest.mark.slow
def test_state_file_is_safetensors_with_everything_to_continue(uninterrupted):
    path = uninterrupted / "checkpoints" / "state" / f"step{STEPS:06d}.safetensors"
    state = SafetensorsIO().load_checkpoint(path)
    assert state["global_step"] == STEPS
    assert all(k.startswith("adapter.") or "lora_" in k for k in state["state_dict"])  # trainable only
    (opt,) = state["optimizer_states"]
    assert len(opt["state"]) == len(state["state_dict"]) and opt["param_groups"][0]["betas"] == (0.9, 0.99)
    assert state["lr_schedulers"][0]["last_epoch"] == STEPS
    rng = next(v for k, v in state["callbacks"].items() if k.startswith("TrainingState"))["rng"]
    assert rng["torch"].dtype == torch.uint8 and isinstance(rng["numpy"][1], np.ndarray)
    positions = state["VideoDataModule"]["ranks"][0]["workers"]["0"]
    assert positions["samples"] > 0 and positions["slots"]
    meta = read_state(path)
    assert meta["experiment"] == {"run_group": "optionB", "overrides": ["+experiment=optionB"]}
    assert meta["shaping"]["option.t_star"] == 0.6 and meta["wandb_run_id"] in wandb_ids(uninterrupted)
    with safe_open(str(path), framework="pt") as f:  # no pickle anywhere: tensors and JSON
        assert set(f.metadata()) == {"foresight_state"}


@pytest.mark.slow
def test_resume_with_another_model_config_is_refused(uninterrupted, twin_dir, tmp_path):
    from foresight.config import compose
    from foresight.training.train import train

    path = uninterrupted / "checkpoints" / "state" / "step000008.safetensors"
    cfg = compose(
        [
            *ARGS[:1],
            f"paths.cache_dir={twin_dir}",
            f"paths.output_dir={tmp_path}",
            "logger=none",
            "adapter.width=64",
            "option.t_star=0.5",
            "model.dtype=bfloat16",
            f"ckpt_path={path}",
        ]
    )
    with pytest.raises(ValueError, match=r"differs \(adapter.width: 128 -> 64; option.t_star: 0.6 -> 0.5\)"):
        train(cfg)  # dtype is a runtime choice and may change; widths and t* may not
    weights = uninterrupted / "checkpoints" / "last.safetensors"
    with pytest.raises(ValueError, match="holds weights only"):
        train(
            compose(
                [
                    *ARGS[:1],
                    f"paths.cache_dir={twin_dir}",
                    f"paths.output_dir={tmp_path}",
                    "logger=none",
                    f"ckpt_path={weights}",
                ]
            )
        )


def test_safetensors_io_round_trips_what_lightning_saves(tmp_path):
    state = {
        "epoch": 0,
        "loops": {"progress": {"total": 3}},
        "best": float("inf"),
        "name": None,
        "optimizer_states": [
            {
                "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2, 3)}},
                "param_groups": [{"betas": (0.9, 0.99), "params": [0]}],
            }
        ],
        "rng": {"numpy": ("MT19937", np.arange(4, dtype=np.uint32), 2, 0, 0.0)},
        "bf16": torch.ones(3, dtype=torch.bfloat16),
        "__odd": 1,
    }
    path = tmp_path / "state.safetensors"
    SafetensorsIO().save_checkpoint(state, path)
    back = SafetensorsIO().load_checkpoint(path)
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed into place
    assert back["optimizer_states"][0]["state"][0]["step"].item() == 3.0
    assert torch.equal(back["optimizer_states"][0]["state"][0]["exp_avg"], torch.ones(2, 3))
    assert back["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert np.array_equal(back["rng"]["numpy"][1], np.arange(4)) and back["rng"]["numpy"][0] == "MT19937"
    assert back["best"] == float("inf") and back["bf16"].dtype == torch.bfloat16 and back["__odd"] == 1
    with pytest.raises(TypeError, match=r"checkpoint.bad holds a set"):
        SafetensorsIO().save_checkpoint({"bad": {1, 2}}, tmp_path / "bad.safetensors")
    json.dumps(read_state(path))  # the readable part is plain JSON


def test_building_a_twin_leaves_the_callers_random_stream_alone(tmp_path):
    from foresight.models.text import build_tiny_text_encoder

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_text_encoder(tmp_path)  # seeds its own weights
    assert torch.equal(torch.rand(3), expected)  # a run that built a twin starts like one that loaded it
