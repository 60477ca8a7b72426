"""Quantised frozen models, int8 encoders (memory) and an fp8 DiT (speed): the same outputs within
quantisation error, LoRA trains through them, and evaluate.py and predict.py run checkpoints with them."""

import numpy as np
import pytest
import torch
from torch import nn

from foresight.models.quantize import Fp8Linear, Int8Linear, quantize
from tests.helpers import tiny_run


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
    with pytest.raises(ValueError, match="model.dit_quantize='int8': use null .* or fp8"):
        LTXVideo("/does/not/exist", dit_quantize="int8")
    with pytest.raises(ValueError, match="key='x'"):
        quantize(nn.Linear(2, 2), "x", "key")


def test_evaluate_runs_a_checkpoint_with_quantized_or_compiled_frozen_models(twin_dir, tmp_path):
    from foresight.eval.evaluate import evaluate
    from foresight.models.quantize import Int8Linear
    from foresight.predict import Predictor

    out = tiny_run(tmp_path / "run", twin_dir, "optionC", 1, "callbacks.sample_videos.every_n_steps=0")
    exact, int8 = (evaluate(out, limit=4, quantize=how) for how in (None, "int8"))
    assert exact["quantize"] is None and int8["quantize"] == "int8" and int8["clips"] == exact["clips"] == 4
    assert np.isfinite(int8["metrics"]["latent_mse"]) and int8["metrics"] != exact["metrics"]
    fp8 = evaluate(out, limit=4, dit_quantize="fp8")  # the trained LoRA over an fp8 DiT
    assert fp8["dit_quantize"] == "fp8" and exact["dit_quantize"] is None and fp8["quantize"] is None
    assert np.isfinite(fp8["metrics"]["latent_mse"]) and fp8["metrics"] != exact["metrics"]
    to_q = Predictor(out, dit_quantize="fp8").module.ltx.transformer.transformer_blocks[0].attn1.to_q
    assert isinstance(to_q.base_layer, Fp8Linear) and to_q.lora_B["default"].weight.abs().sum() > 0
    with pytest.raises(ValueError, match="dit_quantize='int8': use null"):
        Predictor(out, dit_quantize="int8")
    # compile: on or off over what the run trained with (its model.compile=false), recorded
    assert exact["compile"] is False
    compiled = Predictor(out, compile=True)
    assert compiled.identity()["compile"] is True and compiled.identity()["compile_mode"] is None
    assert compiled.module.ltx.transformer.transformer_blocks[0]._compiled_call_impl is not None
    graphs = evaluate(out, limit=4, compile=True, compile_mode="reduce-overhead")  # no CUDA graphs on a CPU
    assert (graphs["compile"], graphs["compile_mode"]) == (True, "reduce-overhead") and graphs["clips"] == 4
    with pytest.raises(ValueError, match="compile_mode='fast' is not a torch.compile mode; use null or"):
        Predictor(out, compile_mode="fast")
    tuned = Predictor(out, compile=True, compile_options={"coordinate_descent_tuning": True})
    assert exact["compile_options"] is None
    assert tuned.identity()["compile_options"] == {"coordinate_descent_tuning": True}
    with pytest.raises(ValueError, match="compile_options has 'fast_mode', not an option of torch._inductor"):
        Predictor(out, compile_options={"fast_mode": True})
    # CUDA graphs of the DiT's forward (replayed on a GPU only): on over the run's config, recorded
    assert exact["dit_graphs"] is False
    graphed = Predictor(out, dit_graphs=True)
    assert graphed.identity()["dit_graphs"] is True and graphed.module.ltx.graphs is not None
    with pytest.raises(ValueError, match="model.cuda_graphs=true replays the whole DiT forward"):
        Predictor(out, dit_graphs=True, compile_mode="reduce-overhead")
    # the LoRA folded into the DiT's weights: the same scores to fp32 rounding; then fp8 over them
    merged = evaluate(out, limit=4, merge_lora=True)
    assert exact["merge_lora"] is False and merged["merge_lora"] is True and merged["clips"] == 4
    for key, value in exact["metrics"].items():
        # abs: the instruction gaps are differences of PSNRs near 20 dB
        assert merged["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
    block = Predictor(out, merge_lora=True, dit_quantize="fp8").module.ltx.transformer.transformer_blocks[0]
    assert isinstance(block.attn1.to_q, Fp8Linear)  # no wrapper left: the merged weight is the fp8 one
    predictor = Predictor(out, quantize="int8")
    assert any(isinstance(m, Int8Linear) for m in predictor.module.vlm.modules())
    assert any(isinstance(m, Int8Linear) for m in predictor.module.ltx.text_encoder.modules())
    with pytest.raises(ValueError, match="quantize='int4': use null"):
        Predictor(out, quantize="int4")


def relative(approx, exact):
    return ((approx.float() - exact.float()).norm() / exact.float().norm()).item()


def test_fp8_linear_is_the_linear_forward_and_backward_within_fp8_error():
    torch.manual_seed(0)
    linear = nn.Linear(256, 64)
    q = Fp8Linear(linear)
    assert q.weight.dtype == q.weight_t.dtype == torch.float8_e4m3fn
    assert q.weight.shape == (64, 256) and q.weight_t.shape == (256, 64)
    assert q.weight.is_contiguous() and q.weight_t.is_contiguous()  # what the CUDA kernel needs
    x = torch.randn(2, 8, 256, requires_grad=True)
    exact, approx = linear(x), q(x)
    assert approx.shape == exact.shape and approx.dtype == torch.float32  # what the layer returned
    assert 0 < relative(approx, exact) < 0.06  # e4m3: 3 mantissa bits, per-row scales
    grad = torch.randn_like(exact)
    (exact_grad,) = torch.autograd.grad(exact, x, grad)
    (approx_grad,) = torch.autograd.grad(approx, x, grad)
    assert 0 < relative(approx_grad, exact_grad) < 0.06
    # the two fp8 copies weigh what the fp32 weight's bf16 copy would: 2 bytes a weight (+ scales)
    assert q.weight.numel() * 2 == 256 * 64 * 2


def test_fp8_dit_keeps_the_velocity_and_trains_lora_through_it(tiny_cfg, tiny_ltx):
    from hydra.utils import instantiate

    from foresight.models.ltx import grid_positions, rope_coords

    exact = instantiate(tiny_cfg.model)  # the same twin files: the same weights
    fp8 = instantiate(tiny_cfg.model, dit_quantize="fp8")
    blocks = fp8.transformer.transformer_blocks
    assert isinstance(blocks[0].attn1.to_q, Fp8Linear) and isinstance(blocks[0].ff.net[2], Fp8Linear)
    assert type(fp8.transformer.proj_in) is nn.Linear  # the layers nearest the latents stay

    torch.manual_seed(0)
    grid = (2, 2, 2)
    x, t_tok = torch.randn(1, 8, 128), torch.full((1, 8), 0.5)
    coords = rope_coords(grid_positions(grid), torch.tensor([24.0]))
    text, mask = torch.randn(1, 6, exact.caption_dim), torch.ones(1, 6, dtype=torch.bool)

    def velocity(ltx):
        return ltx.velocity(x, t_tok, coords, text, mask)

    before = velocity(fp8).detach()
    assert 0 < relative(before, velocity(exact).detach()) < 0.1
    for ltx in (exact, fp8):
        torch.manual_seed(1)  # the same LoRA init
        ltx.add_lora(rank=4, alpha=4, targets=["to_q", "to_k", "to_v", "to_out.0"])
    to_q = blocks[0].attn1.to_q
    assert isinstance(to_q.base_layer, Fp8Linear) and to_q.lora_A["default"].weight.requires_grad
    assert to_q.lora_A["default"].weight.dtype == torch.float32  # LoRA trains in fp32, not fp8
    assert torch.equal(velocity(fp8).detach(), before)  # LoRA's B = 0: nothing changed
    grads = {}
    for name, ltx in (("exact", exact), ("fp8", fp8)):
        lora = {n: p for n, p in ltx.transformer.named_parameters() if p.requires_grad}
        velocity(ltx).square().mean().backward()
        grads[name] = torch.cat([lora[n].grad.flatten() for n in sorted(lora) if "lora_B" in n])
    assert grads["exact"].abs().sum() > 0
    assert 0 < relative(grads["fp8"], grads["exact"]) < 0.1  # input gradients through fp8 matmuls


def test_train_py_trains_with_an_fp8_dit(tmp_path, twin_dir):
    from foresight.config import compose
    from foresight.training.train import train

    cfg = compose(
        [
            f"paths.cache_dir={twin_dir}",
            f"paths.output_dir={tmp_path}",
            "logger=none",
            "+experiment=optionC",
            "model.dit_quantize=fp8",
            "trainer.max_steps=2",
            "trainer.limit_val_batches=0",
        ]
    )
    metrics = train(cfg)["metrics"]
    assert np.isfinite(metrics["train/loss"])
