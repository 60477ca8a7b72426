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


def test_host_syncs_counts_each_sync_of_the_step_and_names_where(tmp_path, twin_dir, monkeypatch, caplog):
    """perf/host_syncs: a step that makes the host wait for the GPU is counted and its place named
    (on a CPU the sync debug mode's warning is raised here by hand, from option B's time draw);
    other warnings still reach the user, and the warning settings are restored after training."""
    import logging
    import warnings

    from foresight import flow
    from foresight.config import compose
    from foresight.training.progress import SYNC_WARNING
    from foresight.training.train import train

    draw = flow.sample_t_within

    def draw_and_sync(*args, **kwargs):
        warnings.warn(SYNC_WARNING, stacklevel=1)  # what the sync debug mode raises at a sync
        warnings.warn("an unrelated warning", stacklevel=1)
        return draw(*args, **kwargs)

    monkeypatch.setattr(flow, "sample_t_within", draw_and_sync)
    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"paths.output_dir={tmp_path}",
            "logger=none",
            "+experiment=optionB",
            "trainer.max_steps=4",
            "trainer.limit_val_batches=0",
            "callbacks.host_syncs.after=1",
        ]
    )
    shown = warnings.showwarning
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        metrics = train(cfg)["metrics"]
    assert metrics["perf/host_syncs"] == 1.0  # steps 1-3: one sync each
    assert "1.0 times a step" in caplog.text and "test_train.py" in caplog.text  # where: the caller
    messages = [str(w.message) for w in seen]
    assert messages.count("an unrelated warning") == 4  # every step's
    assert messages.count(SYNC_WARNING) == 1  # step 0's, before counting began; counted ones are not shown
    assert warnings.showwarning is shown


def test_a_fused_optimizer_clips_under_bf16_and_trains_as_the_foreach_one(tmp_path, twin_dir, monkeypatch):
    """module.optimizer.fused=true with bf16-mixed: Lightning refuses to clip before a fused step (for
    fp16's gradient scaler); bf16 has no scaler, so the gradients are clipped as usual every step and
    the run ends where the for-each AdamW's does."""
    import torch

    from foresight.config import compose
    from foresight.training.train import train

    clip = torch.nn.utils.clip_grad_norm_
    norms: list[tuple[float, float]] = []  # (before, after) each clipping

    def recorded(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        before = clip(parameters, max_norm, *args, **kwargs).item()
        after = torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in parameters if p.grad is not None])
        )
        norms.append((before, after.item()))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recorded)
    weights = {}
    for fused in (False, True):
        norms.clear()
        result = train(
            compose(
                [
                    f"paths.cache_dir={twin_dir}",
                    f"paths.output_dir={tmp_path / str(fused)}",
                    "logger=none",
                    "+experiment=optionB",
                    "trainer.max_steps=3",
                    "trainer.limit_val_batches=0",
                    "trainer.precision=bf16-mixed",
                    "trainer.gradient_clip_val=0.01",
                    f"+module.optimizer.fused={fused}",
                ]
            )
        )
        assert len(norms) == 3 and all(before > 0.01 and after <= 0.01 * 1.001 for before, after in norms)
        with safe_open(str(result["checkpoints"][-1]), framework="pt") as f:
            weights[fused] = {k: f.get_tensor(k) for k in f.keys()}
    assert weights[True].keys() == weights[False].keys()
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, rtol=1e-4, atol=1e-6)
