"""evaluate.py: a checkpoint's scores on held-out shards, beside the copy-last-frame baseline."""

import json
import math
import os

import pytest
import torch

from foresight.config import ROOT
from tests.helpers import run_script, tiny_run
from tests.test_fvd import i3d_weights

pytestmark = pytest.mark.slow  # end to end: trains through the real entry points

SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, twin_dir):
    out = tmp_path_factory.mktemp("run")
    return tiny_run(out, twin_dir, "optionB", 2, "callbacks.sample_videos.every_n_steps=0")


def test_scores_match_the_windows_and_the_baseline_is_computed_honestly(run_dir):
    from foresight.eval.evaluate import evaluate, markdown
    from foresight.eval.metrics import psnr
    from foresight.predict import Predictor

    result = evaluate(run_dir, shards=str(SAMPLE / "val-000000.tar"), limit=4, batch_size=2)
    assert (
        result["clips"] == 4 and result["option"] == "B" and result["step"] == 2 and result["skipped"] == {}
    )
    assert result["clips_per_second"] == pytest.approx(4 / result["seconds"], rel=0.05)  # throughput
    assert result["steady_clips_per_second"] > 0  # after the first of its two batches
    assert set(result["metrics"]) >= {
        "latent_mse",
        "latent_mse_copy_last",
        "psnr",
        "psnr_copy_last",
        "ssim",
        "ssim_copy_last",
        "psnr_copy_last_vae",
        "psnr_vae_recon",
        "psnr_instruction_gap",
        "diag/loss",
        "diag/flow_t0.5",
    }
    assert all(len(v) == 16 for v in result["per_frame"].values())  # 17 target frames, the first is given
    # the baseline does not depend on the model: recompute it from the same windows
    windows = Predictor(run_dir).held_out(str(SAMPLE / "val-000000.tar"), limit=4, batch_size=2)
    batches = list(torch.utils.data.DataLoader(windows, batch_size=None))
    target = torch.cat([b["target"] for b in batches])
    still = torch.cat([b["context"][:, -1:] for b in batches]).expand_as(target)
    expected = psnr(still[:, 1:], target[:, 1:])  # (4, 16)
    assert result["metrics"]["psnr_copy_last"] == pytest.approx(expected.mean().item(), rel=1e-5)
    assert result["per_frame"]["psnr_copy_last"] == pytest.approx(expected.mean(0).tolist(), rel=1e-5)
    report = markdown(result)
    assert "| psnr |" in report and "| 16 |" in report
    assert "LPIPS: skipped: no weights at lpips.vgg=None, lpips.lin=None" in report
    assert (
        "FVD: skipped: no weights at fvd.i3d=None (set fvd.i3d to pytorch-i3d's rgb_imagenet.pt)." in report
    )
    assert "fvd" not in result["metrics"] and "| fvd |" not in report


def test_evaluate_py_writes_json_and_markdown(run_dir, tmp_path):
    out = run_script(
        "evaluate.py",
        f"ckpt={run_dir}",
        "limit=2",
        "batch_size=2",
        f"out_dir={tmp_path}",
        f"fvd.i3d={i3d_weights(tmp_path)}",
        timeout=300,
        env={**os.environ, "FORESIGHT_ROOT": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "evaluation.json").read_text())
    assert result["clips"] == 2 and (tmp_path / "evaluation.md").read_text().startswith(
        "# Evaluation of option B"
    )
    assert {"fvd", "fvd_copy_last"} <= set(result["metrics"])  # fvd.i3d reaches evaluate()
    bad = run_script(
        "evaluate.py", f"ckpt={run_dir}", f"shards={tmp_path}/none-*.tar", f"out_dir={tmp_path}", timeout=300
    )
    assert bad.returncode != 0 and "shards=" in bad.stderr and "matched no files" in bad.stderr


def test_compare_includes_evaluations_beside_their_run_group(run_dir, tmp_path):
    from foresight.eval.compare import compare
    from foresight.eval.evaluate import evaluate, write

    result = evaluate(run_dir, limit=2, batch_size=2)
    write(result, tmp_path / "evals" / "b")
    summary = compare([str(tmp_path / "evals")], tmp_path / "report")
    (group,) = summary["groups"].values()
    assert list(summary["groups"]) == ["optionB"] and group["seeds"] == [0]
    assert group["metrics"]["eval/psnr"]["mean"] == pytest.approx(result["metrics"]["psnr"])
    assert group["metrics"]["eval/latent_mse_copy_last"]["mean"] == pytest.approx(
        result["metrics"]["latent_mse_copy_last"]
    )
    assert "eval/psnr" in (tmp_path / "report" / "report.md").read_text()


def lpips_weights(directory):
    """Random weights in the two published formats: torchvision VGG16 and LPIPS v0.1's heads."""
    from foresight.eval.lpips import VGG_BLOCKS

    torch.manual_seed(0)
    vgg, channels = {}, 3
    for block, width in zip(VGG_BLOCKS, [64, 128, 256, 512, 512], strict=True):
        for index in block:
            vgg[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3) * (2 / (9 * channels)) ** 0.5
            vgg[f"features.{index}.bias"] = torch.zeros(width)
            channels = width
    lin = {f"lin{k}.model.1.weight": torch.rand(1, w, 1, 1) for k, w in enumerate([64, 128, 256, 512, 512])}
    torch.save(vgg, directory / "vgg16.pth")
    torch.save(lin, directory / "vgg.pth")
    return directory / "vgg16.pth", directory / "vgg.pth"


def test_lpips_from_local_weights(run_dir, tmp_path):
    from foresight.data.sample_world import render_clip
    from foresight.eval.evaluate import evaluate
    from foresight.eval.lpips import LPIPS

    vgg, lin = lpips_weights(tmp_path)
    lpips = LPIPS(vgg, lin)
    a = torch.from_numpy(render_clip(seed=1, width=64, height=64).frames[None, :3])  # (1, 3, 64, 64, 3)
    b = torch.from_numpy(render_clip(seed=2, width=64, height=64).frames[None, :3])
    same, diff = lpips(a, a), lpips(a, b)
    assert same.shape == (1, 3) and torch.allclose(same, torch.zeros(1, 3))
    assert (diff > 0).all() and torch.allclose(diff, lpips(b, a))  # a distance: symmetric, 0 on equals
    result = evaluate(run_dir, limit=2, batch_size=2, lpips_vgg=str(vgg), lpips_lin=str(lin))
    assert result["metrics"]["lpips"] > 0 and result["metrics"]["lpips_copy_last"] > 0
    assert len(result["per_frame"]["lpips"]) == 16 and "lpips" not in result["not_computed"]
    with pytest.raises(ValueError, match="expected \\[64, 128, 256, 512, 512\\]"):
        LPIPS(vgg, _wrong_heads(tmp_path))


def _wrong_heads(directory):
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, 8, 1, 1) for k in range(5)}, directory / "bad.pth")
    return directory / "bad.pth"


def test_fvd_from_local_i3d_weights(run_dir, tmp_path):
    from foresight.eval.evaluate import evaluate, markdown

    result = evaluate(run_dir, limit=4, batch_size=2, fvd_i3d=str(i3d_weights(tmp_path)))
    m = result["metrics"]
    assert "fvd" not in result["not_computed"] and result["clips"] == 4
    assert m["fvd"] > 0 and m["fvd_copy_last"] > 0 and all(map(math.isfinite, (m["fvd"], m["fvd_copy_last"])))
    report = markdown(result)
    assert f"| fvd | {m['fvd']:.4g} | {m['fvd_copy_last']:.4g} | — | — | — | lower |" in report
    assert "I3D (Kinetics-400) logits over the 4 predicted" in report and "strongly biased" in report
    missing = evaluate(run_dir, limit=1, batch_size=1, fvd_i3d=str(tmp_path / "absent.pt"))
    assert missing["not_computed"]["fvd"].startswith(
        f"skipped: no weights at fvd.i3d={tmp_path / 'absent.pt'}"
    )
