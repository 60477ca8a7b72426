"""Predicting with a trained checkpoint: the Python API and predict.py."""

import av
import numpy as np
import pytest
from PIL import Image

from foresight.config import ROOT
from foresight.data.sample_world import render_clip
from foresight.predict import Predictor
from tests.conftest import REAL
from tests.helpers import run_script, tiny_run

pytestmark = pytest.mark.slow  # end to end: trains through the real entry points


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, twin_dir):
    out = tmp_path_factory.mktemp("run")
    return tiny_run(out, twin_dir, "optionB", 2, "callbacks.sample_videos.num_clips=1")


def test_predictor_loads_once_and_is_reproducible(run_dir):
    predictor = Predictor(run_dir)
    context = render_clip(seed=5, width=64, height=64).frames[:4]  # (4, 64, 64, 3)
    a, timings = predictor.predict(context, "a red circle moves right", seed=1)
    b, _ = predictor.predict(context, "a red circle moves right", seed=1)
    c, _ = predictor.predict(context, "a red circle moves right", seed=2)
    assert a.shape == (1, 17, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(timings) == {"encode_s", "sample_s", "decode_s", "total_s"} and timings["total_s"] > 0


def test_predictions_run_in_the_precision_the_run_trained_in(run_dir):
    """A run's trainer.precision is the context it validated in: 32-true predicts in fp32; a bf16-mixed
    run (every GPU run) predicts under Lightning's bf16 autocast, its fp32 adapter and LoRA included."""
    import torch

    predictor = Predictor(run_dir)
    seen = []
    predictor.module.adapter.register_forward_hook(
        lambda *_: seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
    )
    context = render_clip(seed=5, width=64, height=64).frames[:4]
    fp32, _ = predictor.predict(context, "a red circle moves right", seed=1)
    assert predictor.cfg.trainer.precision == "32-true" and seen and not any(seen)
    predictor.cfg.trainer.precision = "bf16-mixed"  # as a GPU run records it
    seen.clear()
    bf16, _ = predictor.predict(context, "a red circle moves right", seed=1)
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert not np.array_equal(fp32, bf16)


def test_predictor_reads_images_and_refuses_short_clips(run_dir, tmp_path):
    predictor = Predictor(run_dir)
    Image.fromarray(render_clip(seed=1).frames[0]).save(tmp_path / "frame.png")
    context, _ = predictor.read_context(tmp_path / "frame.png")
    assert context.shape == (4, 64, 64, 3)
    if REAL.exists():
        with pytest.raises(ValueError, match="has 3 frames; this checkpoint reads 4"):
            predictor.read_context(REAL / "video_0.mov")
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.safetensors"):
        Predictor(tmp_path)


def test_predict_py_writes_videos_and_never_overwrites(run_dir, tmp_path):
    clip = tmp_path / "clip.png"
    Image.fromarray(render_clip(seed=2).frames[0]).save(clip)
    args = [
        f"ckpt={run_dir}",
        f"input={clip}",
        "prompt=a blue square moves up",
        f"out_dir={tmp_path / 'out'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    first = run_script("predict.py", *args, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    with av.open(str(tmp_path / "out" / "clip_side_by_side.mp4")) as c:
        s = c.streams.video[0]
        assert (s.width, s.height, s.frames) == (128, 64, 4 + 17 - 1)
    again = run_script("predict.py", *args, timeout=300)
    assert again.returncode != 0 and "pass overwrite=true" in again.stderr


def test_predict_py_on_a_directory_and_on_shards_in_batches(run_dir, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        Image.fromarray(render_clip(seed=i).frames[0]).save(clips / f"c{i}.png")
        (clips / f"c{i}.txt").write_text(f"clip {i} moves left")
    (clips / "broken.mp4").write_bytes(b"not a video")
    common = [
        f"ckpt={run_dir}",
        "batch_size=2",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    out = run_script("predict.py", *common, f"input={clips}", f"out_dir={tmp_path / 'dir'}", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "dir").glob("*.mp4")) == [
        "c0.mp4",
        "c0_side_by_side.mp4",
        "c1.mp4",
        "c1_side_by_side.mp4",
        "c2.mp4",
        "c2_side_by_side.mp4",
    ]
    assert (
        "wrote 3 prediction(s)" in out.stdout and "broken.mp4" in out.stdout
    )  # the bad file: skipped, named
    shards = run_script(
        "predict.py",
        *common,
        f"input={ROOT / 'data/sample/val-000000.tar'}",
        f"out_dir={tmp_path / 'shards'}",
        "side_by_side=false",  # the futures alone
        "preset=ultrafast",  # x264's fastest: the writer bounds predict.py at full size
        timeout=300,
    )
    assert shards.returncode == 0, shards.stderr[-2000:]
    videos = sorted((tmp_path / "shards").glob("*.mp4"))
    assert (
        len(videos) == 16 and "wrote 16 prediction(s) to" in shards.stdout
    )  # every clip of the shard, captions as prompts, no side-by-side
    assert not any(v.name.endswith("_side_by_side.mp4") for v in videos)
    assert "end to end" in shards.stdout and "after the first batch" in shards.stdout  # 8 batches
    with av.open(str(videos[0])) as c:
        assert c.streams.video[0].frames == 17  # the future, from the current frame
    assert b"subme=0 " in videos[0].read_bytes()  # x264 wrote its ultrafast settings (medium: subme=7)


def test_checkpoint_naming_former_targets_still_loads(run_dir, tmp_path):
    """A checkpoint written before the training machinery moved into foresight/training/ stores
    `_target_: foresight.module.ForesightModule` (and the old callback paths) and `module.warmup_steps`:
    it predicts exactly as before; a target that no conf/ file names, now or formerly, is still refused."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from foresight.training.weights import find_weights
    from foresight.trusted import FORMER_TARGETS, UntrustedConfig

    path = find_weights(run_dir)
    with safe_open(str(path), framework="pt") as f:
        tensors, raw = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()["foresight"]
    old = raw
    for former, current in FORMER_TARGETS.items():
        if former != current:
            old = old.replace(f'"{current}"', f'"{former}"')
    old = json.loads(
        old
    )  # and the LR schedule as it was stored then: module.warmup_steps, no module.scheduler
    old["config"]["module"]["warmup_steps"] = old["config"]["module"].pop("scheduler")["warmup_steps"]
    del old["config"]["callbacks"]["host_syncs"]  # a callback added since
    old = json.dumps(old)
    assert '"foresight.module.ForesightModule"' in old and '"foresight.training.' not in old
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"foresight": old})
    context = render_clip(seed=5, width=64, height=64).frames[:4]
    now, _ = Predictor(path).predict(context, "a red circle moves right", seed=1)
    before, _ = Predictor(tmp_path / "old.safetensors").predict(context, "a red circle moves right", seed=1)
    assert np.array_equal(now, before)

    unknown = json.loads(old)
    unknown["config"]["module"]["_target_"] = "foresight.module.Unknown"
    save_file(tensors, str(tmp_path / "unknown.safetensors"), metadata={"foresight": json.dumps(unknown)})
    with pytest.raises(UntrustedConfig, match=r"refusing config.module._target_='foresight.module.Unknown'"):
        Predictor(tmp_path / "unknown.safetensors")
