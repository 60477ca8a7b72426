"""Rollouts: K chunks predicted in turn, each conditioned on the chunk before (Predictor.rollout)."""

import av
import numpy as np
import pytest
import torch

from foresight.config import compose
from foresight.data.sample_world import render_clip
from foresight.data.video import CHUNK_BORDER, side_by_side
from foresight.predict import Predictor, chunk_prompts
from foresight.training.train import train
from tests.helpers import run_script, tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, twin_dir):
    out = tmp_path_factory.mktemp("run")
    return tiny_run(out, twin_dir, "optionC", 1, "callbacks.sample_videos.every_n_steps=0")


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
    context = np.stack(
        [render_clip(seed=s, width=64, height=64).frames[:4] for s in (3, 4)]
    )  # (2, 4, 64, 64, 3)
    seen = record_first_latents(predictor, monkeypatch)
    run = predictor.rollout(
        context,
        ["a red circle moves right", ["a blue square moves up", "it stops"], "a red circle moves right"],
        fps=[24.0, 12.0],
        seed=0,
    )
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
    assert np.array_equal(joined[:, 17:33], run.frames[:, 1, 1:]) and np.array_equal(
        joined[:, 16], run.frames[:, 0, 16]
    )
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
    assert np.array_equal(pixel.frames[:, 0], run.frames[:, 0]) and not np.array_equal(
        pixel.frames[:, 2], run.frames[:, 2]
    )


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
    done = run_script(
        "predict.py",
        f"ckpt={run_dir}",
        f"input={clip}",
        "rollout=2",
        "prompt=[a blue square moves up,it stops]",
        f"out_dir={out}",
        f"paths.log_dir={tmp_path / 'logs'}",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 chunks each; seconds per chunk:" in done.stdout
    with av.open(str(out / "clip.mp4")) as c:
        assert c.streams.video[0].frames == 17 + 16
    with av.open(str(out / "clip_side_by_side.mp4")) as c:
        assert c.streams.video[0].frames == 4 + 33 - 1
    bad = run_script(
        "predict.py",
        f"ckpt={run_dir}",
        f"input={clip}",
        "rollout=3",
        "prompt=[a,b]",
        f"out_dir={tmp_path / 'bad'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        timeout=300,
    )
    assert bad.returncode != 0 and "prompt= lists 2 prompts for rollout=3 chunks" in bad.stderr


def long_and_short_shard(path):
    """Two clips long enough for a 2-chunk rollout (40 frames) and one that is not (20)."""
    import json

    import webdataset as wds

    from foresight.data.video import encode_mp4

    with wds.TarWriter(str(path)) as sink:
        for seed, frames in ((11, 40), (12, 20), (13, 40)):
            clip = render_clip(seed, num_frames=frames, width=64, height=64)
            sink.write(
                {
                    "__key__": f"clip{seed}",
                    "mp4": encode_mp4(clip.frames, clip.fps),
                    "txt": clip.caption,
                    "json": json.dumps({"fps": clip.fps}),
                }
            )
    return str(path)


def test_rollout_evaluation_scores_each_horizon_beside_copy_last(predictor, tmp_path):
    from foresight.eval.metrics import psnr
    from foresight.eval.rollout import evaluate_rollout

    shard = long_and_short_shard(tmp_path / "long.tar")
    result = evaluate_rollout(predictor, 2, shards=shard, batch_size=2)
    assert result["clips"] == 2 and result["skipped"] == {"too_short": 1}  # the 20-frame clip, counted
    assert result["clips_per_second"] == pytest.approx(2 / result["seconds"], rel=0.05)
    m = result["metrics"]
    for name in ("latent_mse", "psnr", "ssim"):
        for key in (f"{name}_chunk1", f"{name}_chunk2", f"{name}_drift", f"{name}_rollout"):
            assert key in m and f"{key}_copy_last" in m, key
        assert m[f"{name}_drift"] == pytest.approx(m[f"{name}_chunk2"] - m[f"{name}_chunk1"])
    assert len(result["per_frame"]["psnr"]) == len(result["per_frame"]["psnr_copy_last"]) == 2 * 16
    assert len(result["seconds_per_chunk"]) == 2
    # copy-last's horizon curve is the original current frame against the true frames 1..32 after it
    windows = predictor.held_out(shard, batch_size=2, future_frames=33)
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=None)))
    still = batch["context"][:, -1:].expand(-1, 32, -1, -1, -1)
    expected = psnr(still, batch["target"][:, 1:]).mean(0)
    assert result["per_frame"]["psnr_copy_last"] == pytest.approx(expected.tolist(), rel=1e-5)
    with pytest.raises(ValueError, match="no clip in .* is long enough for rollout=3"):
        evaluate_rollout(predictor, 3, shards=shard)

    # a study's arms compared: each arm's runs averaged per chunk, with their spread over runs
    import json

    from foresight.eval.rollout import arms_table

    for arm, shift in (("a", 0.0), ("a", 2.0), ("b", 1.0)):
        run = tmp_path / "arms" / arm / f"run{shift:g}"
        run.mkdir(parents=True)
        moved = {**result, "metrics": {**m, "psnr_chunk1": m["psnr_chunk1"] + shift}}
        (run / "evaluation.json").write_text(json.dumps(moved))
    table = arms_table(tmp_path / "arms").splitlines()
    assert table[2].startswith("| a | 2 | ") and f"{m['psnr_chunk1'] + 1:.4g} ± 1.4 |" in table[2]
    assert table[3].startswith("| b | 1 | ") and f"| {m['psnr_chunk1'] + 1:.4g} |" in table[3]
    assert table[4].startswith("| copy last") and f"| {m['psnr_chunk2_copy_last']:.4g} |" in table[4]


def test_evaluate_py_rollout_writes_its_report(run_dir, tmp_path):
    import json

    shard = long_and_short_shard(tmp_path / "long.tar")
    done = run_script(
        "evaluate.py",
        f"ckpt={run_dir}",
        f"shards={shard}",
        "rollout=2",
        "latent_continuation=true",
        f"out_dir={tmp_path / 'eval'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert (
        result["rollout"] == 2
        and result["latent_continuation"]
        and "psnr_chunk2_copy_last" in result["metrics"]
    )
    assert "| 2 |" in (tmp_path / "eval" / "evaluation.md").read_text() and "Drift" in done.stdout


def test_context_corruption_noises_only_what_is_given():
    from foresight.features import Features, corrupt_frames, corrupt_latents

    g = torch.Generator().manual_seed(0)
    first = torch.randn(3, 128, 1, 2, 2, generator=g)
    target = torch.cat([first, torch.randn(3, 128, 2, 2, 2, generator=g)], 2)
    feats = Features(
        torch.zeros(3, 1, 4),
        torch.ones(3, 1, dtype=torch.bool),
        torch.zeros(3, 1, 8),
        torch.ones(3, 1, dtype=torch.bool),
        first,
        (3, 2, 2),
        torch.full((3,), 24.0),
        target,
        context_latents=torch.randn(3, 128, 3, 2, 2, generator=g),
    )
    assert corrupt_latents(feats, 0.0) is feats
    noisy = corrupt_latents(feats, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(noisy.target[:, :, :1], noisy.first_latent)  # the given frame, one value in both
    assert torch.equal(noisy.target[:, :, 1:], target[:, :, 1:])  # the future to learn stays clean
    assert not torch.equal(noisy.first_latent, first) and not torch.equal(
        noisy.context_latents, feats.context_latents
    )
    assert (noisy.first_latent - first).std() < 0.5  # strength at most the scale
    frames = torch.full((2, 4, 8, 8, 3), 128, dtype=torch.uint8)
    out = corrupt_frames(frames, 20.0, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == frames.shape and not torch.equal(out, frames)
    assert corrupt_frames(frames, 0.0) is frames


def test_context_corruption_is_configured_and_refused_where_it_cannot_work(twin_dir, tmp_path):
    from hydra.utils import instantiate

    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            "logger=none",
            "+experiment=optionC",
            "module.context_noise=0.3",
            "option.first_frame=0.5",
        ]
    )
    with pytest.raises(ValueError, match="module.context_noise=0.3 noises the given current frame"):
        instantiate(cfg.module)(
            vlm=instantiate(cfg.vlm),
            ltx=instantiate(cfg.model),
            option=instantiate(cfg.option),
            adapter=instantiate(cfg.adapter),
        )
    out = tmp_path / "run"
    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"paths.output_dir={out}",
            "logger=none",
            "+experiment=optionC",
            "module.context_noise=0.3",
            "module.context_frame_noise=10",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "callbacks.sample_videos.every_n_steps=0",
        ]
    )
    assert np.isfinite(train(cfg)["metrics"]["train/loss"])


def test_own_chunk_training_reads_what_a_rollouts_second_chunk_reads(predictor, tmp_path):
    from foresight.data.loader import ClipWindows

    shard = long_and_short_shard(tmp_path / "long.tar")
    windows = ClipWindows(
        [shard],
        4,
        [(64, 64, 17)],
        None,
        train=False,
        seed=0,
        strict=False,
        batch_size=2,
        prompt_template=predictor.prompt_template,
        chunks=2,
    )
    batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=None)))
    assert windows.skips == {"too_short": 1}  # 20 frames < 4 + 2 x 16
    assert batch["target"].shape == (2, 17, 64, 64, 3) and batch["continuation"].shape == (2, 16, 64, 64, 3)
    whole = next(
        iter(torch.utils.data.DataLoader(predictor.held_out(shard, future_frames=33), batch_size=None))
    )
    assert torch.equal(torch.cat([batch["target"], batch["continuation"]], 1), whole["target"])

    device = predictor.device
    predictor.module.train()  # as in training: own_chunk_batch samples in eval mode, then puts this back
    own = predictor.module.own_chunk_batch(
        {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()},
        generator=torch.Generator(device).manual_seed(5),
    )
    assert predictor.module.training and predictor.module.adapter.training  # modes put back
    predictor.module.eval()  # as predicting
    run = predictor.rollout(
        batch["context"].numpy(), [batch["caption"]] * 2, fps=batch["fps"].tolist(), seed=5
    )
    assert np.array_equal(own["context"].cpu().numpy(), run.contexts[:, 1])  # chunk 2's context, bit for bit
    assert np.array_equal(
        own["target"][:, 0].cpu().numpy(), run.frames[:, 0, -1]
    )  # its current frame: predicted
    assert torch.equal(own["target"][:, 1:].cpu(), batch["continuation"])  # its future: the truth

    del batch["continuation"]
    with pytest.raises(ValueError, match="module.own_chunk=.* set data.train_chunks=2"):
        predictor.module.own_chunk_batch(batch)


def test_own_chunk_training_runs_and_is_refused_without_the_next_window(twin_dir, tmp_path):
    import csv

    shard = long_and_short_shard(tmp_path / "long.tar")
    common = [f"paths.cache_dir={twin_dir}", "+experiment=optionC", "module.own_chunk=1.0"]
    with pytest.raises(ValueError, match=r"module.own_chunk=1.0 .* set data.train_chunks=2"):
        train(compose([*common, f"paths.output_dir={tmp_path / 'refused'}", "logger=none"]))
    out = tmp_path / "run"
    cfg = compose(
        [
            *common,
            f"paths.output_dir={out}",
            "logger=csv",
            f"data.train_shards={shard}",
            "data.train_chunks=2",
            "data.batch_size=2",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            "callbacks.sample_videos.every_n_steps=0",
        ]
    )
    assert np.isfinite(train(cfg)["metrics"]["train/loss"])
    rows = list(csv.DictReader(next(out.glob("csv/*/metrics.csv")).open()))
    own = [float(r["train/own_chunk"]) for r in rows if r.get("train/own_chunk")]
    assert own == [1.0, 1.0]  # every step trained on the model's own chunk
    skipped = [float(r["data/skipped_too_short"]) for r in rows if r.get("data/skipped_too_short")]
    assert skipped and max(skipped) >= 1  # the 20-frame clip, counted, not trained on
