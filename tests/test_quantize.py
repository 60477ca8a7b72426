"""Weight-only int8 for the frozen encoders: the same outputs within quantisation error, less memory."""

import numpy as np
import pytest
import torch
from torch import nn

from foresight.models.quantize import Int8Linear, quantize


def weight_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def test_int8_linear_is_the_linear_within_quantisation_error():
    torch.manual_seed(0)
    linear = nn.Linear(256, 64)
    q = Int8Linear(linear)
    assert q.weight.dtype == torch.int8 and q.scale.shape == (64,)
    x = torch.randn(8, 256)
    exact, approx = linear(x), q(x)
    rel = (approx - exact).norm() / exact.norm()
    assert 0 < rel < 0.01, rel  # int8 per-channel: ~0.3% on Gaussian weights
    # the dequantised weight is within half a step of the original everywhere
    step = linear.weight.abs().amax(1, keepdim=True) / 127
    assert ((q.weight.float() * q.scale[:, None] - linear.weight).abs() <= step / 2 + 1e-7).all()
    nobias = Int8Linear(nn.Linear(4, 3, bias=False))
    assert nobias.bias is None and nobias(torch.randn(2, 4)).shape == (2, 3)


def test_quantized_encoders_keep_their_outputs_and_shrink(tiny_cfg, tiny_ltx):  # tiny_ltx: its T5 twin built
    from foresight.models.text import FrozenTextEncoder
    from foresight.models.vlm import FrozenVLM

    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8))
    prompts, captions = ["the ball rolls left", "a door opens"], ["a red ball", "a blue door"]
    text_path = tiny_cfg.model.pretrained
    pairs = {}
    for how in (None, "int8"):
        vlm = FrozenVLM(tiny_cfg.vlm.pretrained, twin="tiny", quantize=how)
        t5 = FrozenTextEncoder(text_path, twin="tiny", quantize=how)
        pairs[how] = (vlm, t5, vlm(frames, prompts), t5(captions))
    (vlm, t5, (states, mask), (text, _)), (qvlm, qt5, (qstates, qmask), (qtext, _)) = pairs.values()
    assert not any(type(m) is nn.Linear for m in [*qvlm.modules(), *qt5.modules()])
    assert torch.equal(mask, qmask)
    for exact, approx in ((states, qstates), (text, qtext)):
        rel = (approx - exact).norm() / exact.norm()
        assert 0 < rel < 0.05, rel
    # fp32 twins: the linear weights go from 4 bytes to 1 (+ a scale per row); embeddings stay
    assert weight_bytes(qt5) < 0.6 * weight_bytes(t5) and weight_bytes(qvlm) < 0.6 * weight_bytes(vlm)


def test_a_bad_quantize_value_fails_before_loading():
    from foresight.models.ltx import LTXVideo
    from foresight.models.vlm import FrozenVLM

    with pytest.raises(ValueError, match="vlm.quantize='int4': use null .* or int8"):
        FrozenVLM("/does/not/exist", quantize="int4")
    with pytest.raises(ValueError, match="model.text_encoder_quantize='fp8': use null"):
        LTXVideo("/does/not/exist", text_encoder_quantize="fp8")
    with pytest.raises(ValueError, match="key='x'"):
        quantize(nn.Linear(2, 2), "x", "key")


def test_evaluate_runs_a_checkpoint_with_int8_encoders(twin_dir, tmp_path):
    from foresight.config import compose
    from foresight.eval.evaluate import evaluate
    from foresight.models.quantize import Int8Linear
    from foresight.predict import Predictor
    from foresight.training.train import train

    out = tmp_path / "run"
    train(
        compose(
            [
                f"paths.cache_dir={twin_dir}",
                f"paths.output_dir={out}",
                "logger=none",
                "experiment=optionC",
                "trainer.max_steps=1",
                "trainer.val_check_interval=1",
                "callbacks.sample_videos.every_n_steps=0",
            ]
        )
    )
    exact, int8 = (evaluate(out, limit=4, quantize=how) for how in (None, "int8"))
    assert exact["quantize"] is None and int8["quantize"] == "int8" and int8["clips"] == exact["clips"] == 4
    assert np.isfinite(int8["metrics"]["latent_mse"]) and int8["metrics"] != exact["metrics"]
    predictor = Predictor(out, quantize="int8")
    assert any(isinstance(m, Int8Linear) for m in predictor.module.vlm.modules())
    assert any(isinstance(m, Int8Linear) for m in predictor.module.ltx.text_encoder.modules())
    with pytest.raises(ValueError, match="quantize='int4': use null"):
        Predictor(out, quantize="int4")
