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
