"""The main job end to end, as a user runs it (a shortened schedule)."""

import json

import av
import pytest
from safetensors import safe_open

from tests.helpers import offline_wandb, run_script

pytestmark = pytest.mark.slow  # end to end: trains through the real entry points


@pytest.mark.parametrize(
    "experiment,logger", [("optionA", "csv"), ("optionB", "wandb"), ("optionC", "csv"), ("optionD", "csv")]
)
def test_train_py_runs_and_writes_trainable_checkpoint(experiment, logger, tmp_path, twin_dir):
    env_overrides = [
        f"paths.log_dir={tmp_path}",
        f"paths.cache_dir={twin_dir}",
        f"logger={logger}",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
    ]
    out = run_script(
        "train.py", f"+experiment={experiment}", *env_overrides, timeout=300, env=offline_wandb()
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "train" / "runs").iterdir()
    ckpt = run / "checkpoints" / "last.safetensors"
    text = out.stdout + out.stderr  # progress lines (not a terminal) and the end-of-run summary
    assert "step 5/6  loss" in text and "steps/s  ETA" in text
    assert f"resume state           {run}/checkpoints/state/step000006.safetensors" in text
    assert f"checkpoint             {ckpt}" in text and f"run directory          {run}" in text
    with safe_open(str(ckpt), framework="pt") as f:
        keys = list(f.keys())
        meta = json.loads(f.metadata()["foresight"])
    assert keys and all(k.startswith("adapter.") or "lora_" in k for k in keys)
    assert any("lora_" in k for k in keys) == (experiment != "optionA")
    assert (run / "checkpoints" / "lora" / "pytorch_lora_weights.safetensors").exists() == (
        experiment != "optionA"
    )
    assert meta["step"] == 6 and meta["option"] == experiment[-1]
    target = {"A": "CleanLatents", "B": "PartialDiffusion", "C": "ImagePath", "D": "TextPath"}[experiment[-1]]
    assert meta["config"]["option"]["_target_"].endswith(target)
    if logger == "csv":
        (metrics,) = run.rglob("metrics.csv")
        text = metrics.read_text()
        for key in (
            "train/loss",
            "train/lr",
            "val/latent_mse",
            "val/latent_mse_copy_last",
            "val/psnr",
            "val/ssim_copy_last",
        ):
            assert key in text
    else:
        assert list(run.rglob("wandb/offline-run-*")), "wandb should have written an offline run"
        assert list(run.rglob("wandb/offline-run-*/files/media/videos/samples_*.mp4"))  # sample videos logged
    (video,) = (run / "samples").glob("*.mp4")  # held | prediction | truth, two clips stacked
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height, stream.frames, round(float(stream.average_rate))) == (
            192,
            128,
            17,
            24,
        )


def test_train_returns_the_optimized_metric(tmp_path, twin_dir):
    from foresight.config import compose
    from foresight.training.train import train

    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"paths.output_dir={tmp_path}",
            "logger=none",
            "+experiment=optionD",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "optimized_metric=val/psnr",
        ]
    )
    result = train(cfg)
    assert result["metric"] == result["metrics"]["val/psnr"] and result["metric"] > 0
    assert set(result["metrics"]) >= {
        "val/diag/flow_t0.5",
        "val/ssim",
        "val/ssim_instruction_gap",
        "train/loss",
    }
    assert result["metrics"]["perf/step_ms"] > 0  # StepTimes: the median time between step ends
