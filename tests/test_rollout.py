"""Rollouts: K chunks predicted in turn, each conditioned on the chunk before (Predictor.rollout, predict.py)."""

import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from foresight.config import ROOT, compose
from foresight.data.sample_world import render_clip
from foresight.data.video import CHUNK_BORDER, side_by_side
from foresight.predict import Predictor, chunk_prompts
from foresight.training.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, twin_dir):
    out = tmp_path_factory.mktemp("run")
    cfg = compose([f"paths.cache_dir={twin_dir}", f"paths.output_dir={out}", "logger=none", "+experiment=optionC",
                   "trainer.max_steps=1", "trainer.val_check_interval=1", "callbacks.sample_videos.every_n_steps=0"])
    train(cfg)
    return out


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor(run_dir)


def record_first_latents(predictor, monkeypatch) -> list[torch.Tensor]:
    """The current-frame latent each chunk's sampler was given, in order."""
    seen, sample = [], predictor.module.option.sample

    def spy(adapter, ltx, feats, generator=None):
        seen.append(feats.first_latent.clone())
        return sample(adapter, ltx, feats, generator=generator)

    monkeypatch.setattr(predictor.module.option, "sample", spy)
    return seen


def test_rollout_of_k_chunks_conditions_each_on_the_one_before(predictor, monkeypatch):
    context = np.stack([render_clip(seed=s, width=64, height=64).frames[:4] for s in (3, 4)])  # (2, 4, 64, 64, 3)
    seen = record_first_latents(predictor, monkeypatch)
    run = predictor.rollout(context, ["a red circle moves right", ["a blue square moves up", "it stops"],
                                      "a red circle moves right"], fps=[24.0, 12.0], seed=0)
    assert run.frames.shape == (2, 3, 17, 64, 64, 3) and run.frames.dtype == np.uint8  # K x the future frames
    assert run.latents.shape == (2, 3, 128, 3, 2, 2) and run.contexts.shape == (2, 3, 4, 64, 64, 3)
    assert np.array_equal(run.contexts[:, 0], context)
    for k in range(2):  # chunk k+1 reads the last 4 predicted frames of chunk k
        assert np.array_equal(run.contexts[:, k + 1], run.frames[:, k, -4:])
    # pixel mode: the next current frame is the decoded prediction encoded again, not the latent itself
    assert not torch.equal(seen[1].cpu(), run.latents[:, 0, :, -1:])
    assert len(run.timings) == 3 and all(t["total_s"] >= t["sample_s"] > 0 for t in run.timings)
    joined = run.joined()
    assert joined.shape == (2, 17 + 2 * 16, 64, 64, 3) and run.borders() == (17, 33)
    assert np.array_equal(joined[:, 17:33], run.frames[:, 1, 1:]) and np.array_equal(joined[:, 16], run.frames[:, 0, 16])
    one, _ = predictor.predict(context, "a red circle moves right", fps=[24.0, 12.0], seed=0)
    assert np.array_equal(one, run.frames[:, 0])  # chunk 1 of a rollout is the prediction


def test_latent_continuation_hands_the_latent_over_bit_for_bit(predictor, monkeypatch):
    context = render_clip(seed=7, width=64, height=64).frames[:4]
    seen = record_first_latents(predictor, monkeypatch)
    run = predictor.rollout(context, ["a green triangle moves left"] * 3, seed=1, latent_continuation=True)
    for k in range(2):
        assert torch.equal(seen[k + 1].cpu().float(), run.latents[:, k, :, -1:])
    assert np.array_equal(run.contexts[:, 1], run.frames[:, 0, -4:])  # the VLM still reads decoded frames
    pixel = predictor.rollout(context, ["a green triangle moves left"] * 3, seed=1)
    assert np.array_equal(pixel.frames[:, 0], run.frames[:, 0]) and not np.array_equal(pixel.frames[:, 2],
                                                                                          run.frames[:, 2])


def test_chunk_prompts_and_chunk_borders():
    assert chunk_prompts("go left", 3) == (3, ["go left"] * 3)
    assert chunk_prompts(["a", "b"], None) == (2, ["a", "b"])
    assert chunk_prompts(None, None) == (1, None) and chunk_prompts(None, 2) == (2, None)
    with pytest.raises(ValueError, match="prompt= lists 2 prompts for rollout=3 chunks"):
        chunk_prompts(["a", "b"], 3)
    context = np.zeros((4, 8, 8, 3), np.uint8)
    prediction = np.full((9, 8, 8, 3), 100, np.uint8)
    video = side_by_side(context, prediction, borders=(5,))
    assert video.shape == (12, 8, 16, 3)
    marked = video[3 + 5, :, 8:]  # prediction frame 5 (after the 3 held frames), right panel
    assert (marked[0] == CHUNK_BORDER).all() and (marked[4, 4] == 100).all()
    assert (video[3 + 4, :, 8:] == 100).all() and (prediction == 100).all()  # others and the input untouched


def test_predict_py_rollout_writes_the_joined_chunks(run_dir, tmp_path):
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for frame in render_clip(seed=2, width=64, height=64).frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode())
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "predict.py", f"ckpt={run_dir}", f"input={clip}", "rollout=2",
                           "prompt=[a blue square moves up,it stops]", f"out_dir={out}",
                           f"paths.log_dir={tmp_path / 'logs'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 chunks each; seconds per chunk:" in done.stdout
    with av.open(str(out / "clip.mp4")) as c:
        assert c.streams.video[0].frames == 17 + 16
    with av.open(str(out / "clip_side_by_side.mp4")) as c:
        assert c.streams.video[0].frames == 4 + 33 - 1
    bad = subprocess.run([sys.executable, "predict.py", f"ckpt={run_dir}", f"input={clip}", "rollout=3",
                          "prompt=[a,b]", f"out_dir={tmp_path / 'bad'}", f"paths.log_dir={tmp_path / 'logs'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "prompt= lists 2 prompts for rollout=3 chunks" in bad.stderr
