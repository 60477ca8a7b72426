"""The benchmark's CPU mode: the same code path as on a GPU, with tiny random twins."""

import json

import pytest

from foresight.bench.prediction import architecture, main


def test_bench_tiny_mode_reports_every_stage(tmp_path):
    (row,) = main(["--tiny", "--batch", "2", "--out", str(tmp_path / "bench.json")])
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["rows"] == [row] and report["meta"]["model"] == "tiny"
    assert row["tokens"] == 12 and row["vlm_tokens"] > 0
    for key in (
        "vlm_ms",
        "vlm_per_window_attention_ms",
        "vlm_preprocess_ms",
        "vlm_tensor_ms",
        "vlm_tensor_preprocess_ms",
        "adapter_ms",
        "dit_step_ms",
        "decode_ms",
        "predict_A_ms",
        "predict_B_ms",
        "predict_C_ms",
        "predict_D_ms",
        "train_bare_lora_ms",
        "train_option_c_ckpt_ms",
        "rollout3_A_ms",
        "rollout3_C_ms",
        "rollout3_C_latent_ms",
    ):
        assert row[key] > 0, key
    assert len(row["rollout3_B_chunk_ms"]) == 3
    for option in "ABCD":  # throughput: two clips in one forward
        ms = row[f"predict_{option}_batch2_ms"]
        assert ms > 0 and row[f"predict_{option}_batch2_clips_per_s"] == pytest.approx(2e3 / ms)


def test_architecture_merges_the_parent_config():
    arch = architecture("ltx_13b")
    assert arch["transformer"]["num_layers"] == 48 and arch["transformer"]["num_attention_heads"] == 32
    assert arch["vae"] == architecture("ltx_2b")["vae"]


def test_lora_step_flops_of_the_2b_dit_are_in_the_expected_range():
    import torch
    from diffusers import LTXVideoTransformer3DModel

    from foresight.bench.prediction import lora_step_flops

    with torch.device("meta"):
        dit = LTXVideoTransformer3DModel(**architecture("ltx_2b")["transformer"])
    flops = lora_step_flops(dit, tokens=6144, text_tokens=256)
    # 4 x 1.9e9 weights x 6144 tokens for the linear layers, plus attention over 6144^2 in 28 layers
    linear = 4 * 1.88e9 * 6144
    assert 1.3 * linear < flops < 1.7 * linear


@pytest.mark.slow
def test_training_bench_times_each_option_through_the_trainer_beside_the_bare_step(tmp_path, twin_dir):
    from foresight.bench import training as bench_train

    rows = bench_train.main(
        [
            "--tiny",
            "--options",
            "A",
            "C",
            "--checkpointing",
            "off",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--workers",
            "0",
            "--cache-dir",
            str(twin_dir),
            "--out",
            str(tmp_path / "bench_train.json"),
        ]
    )
    report = json.loads((tmp_path / "bench_train.json").read_text())
    assert report["rows"] == rows and report["meta"]["timed_steps"] == 2
    a, c = rows
    assert (a["option"], a["dit_tokens"], a["ratio_same_tokens"]) == ("A", 0, None)  # A calls no DiT
    # C prepends one latent frame of 2x2 conditioning tokens to the 3x2x2 target grid
    assert (c["option"], c["target_tokens"], c["dit_tokens"]) == ("C", 12, 16)
    for row in rows:
        assert row["step_ms"] > 0 and row["bare_target_tokens_ms"] > 0
        assert row["host_syncs_per_step"] == 0.0  # counted over the timed steps (none on a CPU)
    assert c["ratio_same_tokens"] == c["step_ms"] / c["bare_same_tokens_ms"]


def test_summary_of_repeated_runs_gives_median_range_and_disagreements():
    from foresight.bench.prediction import summarise

    runs = [
        [{"option": "B", "step_ms": 200.0, "peak_gib": 30.0, "mfu": None}],
        [{"option": "B", "step_ms": 240.0, "peak_gib": "out of memory", "mfu": None}],
        [{"option": "B", "step_ms": 190.0, "peak_gib": 31.0, "mfu": None}],
    ]
    (row,) = summarise(runs)
    assert row["option"] == "B" and row["mfu"] is None
    assert row["step_ms"] == 200.0 and row["step_ms_range"] == [190.0, 240.0]
    assert row["peak_gib"] == [30.0, "out of memory", 31.0]  # a run that did not fit stays visible


@pytest.mark.slow
def test_training_bench_trains_each_option_once_per_lever(tmp_path, twin_dir):
    from foresight.bench import training as bench_train

    common = ["--tiny", "--options", "C", "--checkpointing", "off", "--warmup", "1", "--steps", "1"]
    common += ["--workers", "0", "--cache-dir", str(twin_dir), "--out", str(tmp_path / "b.json")]
    levers = ["--lever", "bf16", "--lever", "fp8", "model.dit_quantize=fp8", "--lever", "again"]
    rows = bench_train.main([*common, *levers])
    assert [(r["option"], r["lever"], r["lever_overrides"]) for r in rows] == [
        ("C", "bf16", []),
        ("C", "fp8", ["model.dit_quantize=fp8"]),
        ("C", "again", []),
    ]
    assert all(r["step_ms"] > 0 and r["bare_same_tokens_ms"] > 0 for r in rows)  # one bare step for all
    assert rows[0]["bare_same_tokens_ms"] == rows[1]["bare_same_tokens_ms"]
    bf16, fp8, again = (r["loss"] for r in rows)
    assert again == bf16  # the same seed and data: the same loss, whatever ran before in the process
    assert fp8 != bf16 and abs(fp8 - bf16) < 0.1 * bf16  # fp8 moves the arithmetic, a little
    with pytest.raises(SystemExit):  # a lever without its own name
        bench_train.main([*common, "--lever", "model.dit_quantize=fp8"])


@pytest.mark.slow
def test_repeats_run_in_separate_processes_and_report_median_and_range(tmp_path):
    """--repeats N: N fresh processes (training-step times move between processes, not within one)."""
    rows = main(
        ["--tiny", "--no-train", "--iters", "1", "--repeats", "2", "--out", str(tmp_path / "bench.json")]
    )
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["meta"]["repeats"] == 2 and len(report["runs"]) == 2 and report["rows"] == rows
    for i, run in enumerate(report["runs"]):  # each run's own report stays beside the summary
        assert json.loads((tmp_path / f"bench.run{i}.json").read_text())["rows"] == run
    low, high = rows[0]["dit_step_ms_range"]
    runs = sorted(run[0]["dit_step_ms"] for run in report["runs"])
    assert [low, high] == runs and rows[0]["dit_step_ms"] == sum(runs) / 2


def test_training_from_the_feature_cache_needs_no_video_decoder():
    """A GPU machine without PyAV (36 MB) can train from cached features and run the benches."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['av'] = None\n"
        "import foresight.bench.training, foresight.bench.prediction, foresight.training.train\n"
        "from foresight.data.video import encode_mp4\n"
        "try:\n    encode_mp4(None, 24)\nexcept ImportError:\n    print('decoder needed only here')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decoder needed only here" in done.stdout


def test_memory_bench_tiny_mode_trains_live_and_measures_each_levers_error(tmp_path, twin_dir):
    from foresight.bench.memory import main as memory

    out = tmp_path / "mem.json"
    args = ["--tiny", "--cache-dir", str(twin_dir), "--out", str(out), "--steps", "1"]
    (row,) = memory([*args, "--quantize", "int8", "--checkpointing", "--vae-tiling", "128"])
    assert json.loads(out.read_text())["meta"]["live"] is True
    assert row["step_ms"] > 0 and row["quantize"] == "int8" and row["checkpointing"]
    assert 0 < row["vlm_relative_error"] < 0.05 and 0 < row["t5_relative_error"] < 0.05
    assert row["vae_tiling_latent_error"] == 0.0  # a 64x64 clip fits one tile: tiling changes nothing
    from foresight.models.ltx import LTXVideo

    with pytest.raises(ValueError, match="model.vae_tiling=100: a tile side in pixels, a multiple of 32"):
        LTXVideo("/does/not/exist", vae_tiling=100)  # refused before anything loads
    (plain,) = memory(args)
    assert "vlm_relative_error" not in plain and "vae_tiling_latent_error" not in plain


def test_bench_times_an_fp8_dit_and_reports_its_error(tmp_path):
    (row,) = main(
        ["--tiny", "--no-train", "--no-rollouts", "--dit-quantize", "fp8", "--out", str(tmp_path / "b.json")]
    )
    assert 0 < row["dit_fp8_velocity_error"] < 0.1  # fp8 against the DiT's own dtype, same inputs
    assert row["dit_step_ms"] > 0 and row["predict_C_ms"] > 0
    assert not any(key.startswith("rollout3_") for key in row)  # --no-rollouts
    assert json.loads((tmp_path / "b.json").read_text())["meta"]["dit_quantize"] == "fp8"


def test_train_evaluate_and_preprocess_run_on_random_frozen_models(tmp_path):
    """End-to-end throughput at real scale needs no weights: model.twin=random and vlm.twin=random build
    the frozen models (T5 with the DiT's caption width included) with random weights in memory, and
    train.py, evaluate.py and preprocess.py run their own code on them; sample_world renders clips of
    any size to feed them. Here on the tiny architectures, on a CPU."""
    import tarfile

    from foresight.config import compose
    from foresight.data import sample_world
    from foresight.data.feature_cache import preprocess
    from foresight.data.video import probe
    from foresight.eval.evaluate import evaluate
    from foresight.training.train import train

    data = tmp_path / "clips"
    sample_world.main(
        ["--out", str(data), "--train", "4", "--val", "4"] + "--width 80 --height 64 --frames 30".split()
    )
    with tarfile.open(data / "val-000000.tar") as tar:
        mp4 = next(m for m in tar.getmembers() if m.name.endswith(".mp4"))
        info = probe(tar.extractfile(mp4).read())
    assert (info.width, info.height, info.frames_at(None)) == (80, 64, 30)
    random = [
        "model.twin=random",
        "vlm.twin=random",
        "+vlm.size=tiny",
        f"data.train_shards={data}/train-000000.tar",
        f"data.val_shards={data}/val-000000.tar",
    ]
    run = tmp_path / "run"
    cfg = compose(
        [*random, "+experiment=optionB", "logger=none", f"paths.output_dir={run}", "trainer.max_steps=1"]
    )
    cfg.trainer.limit_val_batches = 0
    train(cfg)
    result = evaluate(run, shards=f"{data}/val-000000.tar", batch_size=4)
    assert result["clips"] == 4 and result["clips_per_second"] > 0 and result["metrics"]["psnr"] > 0
    counts = preprocess(compose([*random, f"preprocess.out_dir={tmp_path / 'features'}"], "preprocess"))
    assert counts["written"] == 8 and counts["clips_per_second"] > 0
    assert len(list((tmp_path / "features").glob("*.tar"))) == 2


def test_bench_times_predictions_with_a_trained_lora_merged_before_fp8(tmp_path):
    out = str(tmp_path / "bench.json")
    common = ["--tiny", "--no-train", "--no-rollouts", "--dit-quantize", "fp8", "--prediction-lora", "4"]
    (row,) = main([*common, "--merge-lora", "--out", out])
    meta = json.loads((tmp_path / "bench.json").read_text())["meta"]
    assert (meta["prediction_lora"], meta["merge_lora"]) == (4, True)
    # fp32 twin: folding the update into the weights changes the velocity by rounding alone
    assert 0 <= row["dit_merge_lora_error"] < 1e-5 and row["dit_fp8_velocity_error"] > 0
    assert row["predict_C_ms"] > 0 and row["predict_D_ms"] > 0
    (wrapped,) = main([*common, "--out", out])
    assert "dit_merge_lora_error" not in wrapped and wrapped["dit_step_ms"] > 0
    with pytest.raises(SystemExit):  # argparse's one line: the LoRA's rank is missing
        main(["--tiny", "--no-train", "--merge-lora", "--out", out])
    with pytest.raises(SystemExit):  # the predictions' LoRA with training steps: --no-train needed
        main(["--tiny", "--prediction-lora", "4", "--out", out])
