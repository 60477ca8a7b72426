"""The exported IC-LoRA loads into a diffusers LTX pipeline and reproduces the trained DiT."""

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXConditionPipeline,
    LTXVideoTransformer3DModel,
)
from safetensors.torch import load_file
from transformers import AutoTokenizer, T5EncoderModel

from foresight.models.ltx import grid_positions, rope_coords
from foresight.training.lora_export import DIFFUSERS_FILE, DIFFUSION_MODEL_FILE, export_lora
from tests.helpers import build


def test_diffusers_pipeline_loads_the_lora_and_matches(tmp_path, twin_dir, tiny_cfg):
    module = build("B", twin_dir, ["option.lora.rank=4", "option.lora.alpha=8"])
    with torch.no_grad():  # a "trained" LoRA: B no longer zero
        for name, p in module.ltx.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    files = export_lora(module.ltx, tmp_path / "lora")
    assert [f.name for f in files] == [DIFFUSERS_FILE, DIFFUSION_MODEL_FILE]
    keys = list(load_file(str(files[0])))
    assert keys and all(k.startswith("transformer.") and "lora_" in k for k in keys)
    assert all(k.startswith("diffusion_model.") for k in load_file(str(files[1])))

    source = tiny_cfg.model.pretrained
    pipe = LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=AutoencoderKLLTXVideo.from_pretrained(source, subfolder="vae"),
        text_encoder=T5EncoderModel.from_pretrained(source, subfolder="text_encoder"),
        tokenizer=AutoTokenizer.from_pretrained(source, subfolder="tokenizer"),
        transformer=LTXVideoTransformer3DModel.from_pretrained(source, subfolder="transformer"),
    )
    pipe.load_lora_weights(str(tmp_path / "lora"))

    g = torch.Generator().manual_seed(0)
    grid = (2, 2, 2)
    x = torch.randn(1, 8, 128, generator=g)
    t = torch.full((1, 8), 0.4)
    coords = rope_coords(grid_positions(grid), torch.tensor([24.0]))
    text, mask = module.ltx.text_encoder(["a red circle moves right"])
    with torch.no_grad():
        ours = module.ltx.velocity(x, t, coords, text, mask)
        theirs = pipe.transformer(
            hidden_states=x,
            encoder_hidden_states=text,
            timestep=t * 1000,
            encoder_attention_mask=mask.float(),
            video_coords=coords,
            return_dict=False,
        )[0]
        pipe.transformer.disable_lora()
        plain = pipe.transformer(
            hidden_states=x,
            encoder_hidden_states=text,
            timestep=t * 1000,
            encoder_attention_mask=mask.float(),
            video_coords=coords,
            return_dict=False,
        )[0]
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-3)  # the LoRA matters, so the match means something
