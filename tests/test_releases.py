"""One model config per published LTX-Video release, checked against the published numbers.

The numbers below are written out from their sources, not read from our configs:
- architectures: diffusers' scripts/convert_ltx_to_diffusers.py (get_transformer_config,
  get_vae_config for versions 0.9.1, 0.9.5 and 0.9.7);
- schedules: the same script's scheduler per version (0.9.0/0.9.1: use_dynamic_shifting with base/max
  shift 0.95/2.05 at 1024/4096 tokens and shift_terminal 0.1; 0.9.5+: no shifting, where
  LTXConditionPipeline samples its linear-quadratic schedule) and, for distilled releases, the first
  pass of LTX-Video's configs/ltxv-{2b,13b}-0.9.8-distilled.yaml;
- steps and guidance: LTX-Video's configs/ltxv-2b-0.9.1.yaml and ltxv-2b-0.9.5.yaml (40 steps, CFG 3),
  diffusers' LTX docs for 0.9.7-dev (30 steps, CFG 5), distilled releases (their list, CFG 1);
- decoding: decode_timestep 0.05 and decode_noise_scale 0.025 in every LTX-Video config since 0.9.1;
- RoPE time: the causal first-frame offset of LTXConditionPipeline (0.9.5+), none in
  LTXImageToVideoPipeline (0.9.1).
"""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
from omegaconf import OmegaConf
from safetensors.torch import save_file

from foresight.config import compose
from foresight.models.ltx import LTXVideo

DIT_2B = dict(
    in_channels=128,
    out_channels=128,
    num_attention_heads=32,
    attention_head_dim=64,
    cross_attention_dim=2048,
    num_layers=28,
    caption_channels=4096,
)
DIT_13B = dict(DIT_2B, attention_head_dim=128, cross_attention_dim=4096, num_layers=48)
VAE_091 = dict(
    latent_channels=128,
    patch_size=4,
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["LTXVideoDownBlock3D"] * 4,
    layers_per_block=[4, 3, 3, 3, 4],
    spatio_temporal_scaling=[True, True, True, False],
    downsample_type=["conv"] * 4,
    decoder_block_out_channels=[256, 512, 1024],
    decoder_layers_per_block=[5, 6, 7, 8],
    decoder_spatio_temporal_scaling=[True, True, True],
    decoder_inject_noise=[True, True, True, False],
    upsample_residual=[True, True, True],
    upsample_factor=[2, 2, 2],
    timestep_conditioning=True,
)
VAE_095 = dict(
    latent_channels=128,
    patch_size=4,
    block_out_channels=[128, 256, 512, 1024, 2048],
    down_block_types=["LTXVideo095DownBlock3D"] * 4,
    layers_per_block=[4, 6, 6, 2, 2],
    spatio_temporal_scaling=[True, True, True, True],
    downsample_type=["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
    decoder_block_out_channels=[256, 512, 1024],
    decoder_layers_per_block=[5, 5, 5, 5],
    decoder_spatio_temporal_scaling=[True, True, True],
    decoder_inject_noise=[False] * 4,
    upsample_residual=[True, True, True],
    upsample_factor=[2, 2, 2],
    timestep_conditioning=True,
    spatial_compression_ratio=32,
    temporal_compression_ratio=8,
)
DISTILLED = [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725]

RELEASES = {  # config name: (hub id, DiT, VAE, schedule kind, steps, shift_terminal, guidance, causal RoPE)
    "ltx_2b": ("Lightricks/LTX-Video-0.9.5", DIT_2B, VAE_095, "linear_quadratic", 40, None, 3.0, True),
    "ltx_2b_091": ("Lightricks/LTX-Video-0.9.1", DIT_2B, VAE_091, "shifted", 40, 0.1, 3.0, False),
    "ltx_2b_distilled": ("Lightricks/LTX-Video-0.9.5", DIT_2B, VAE_095, "list", 7, None, 1.0, True),
    "ltx_13b": ("Lightricks/LTX-Video-0.9.7-dev", DIT_13B, VAE_095, "linear_quadratic", 30, None, 5.0, True),
    "ltx_13b_distilled": (
        "Lightricks/LTX-Video-0.9.8-13B-distilled",
        DIT_13B,
        VAE_095,
        "list",
        7,
        None,
        1.0,
        True,
    ),
}
PARAMS = {"DIT_2B": 1_923_385_472, "DIT_13B": 13_042_569_344}  # the published 1.92B and 13.0B


def model_config(name: str):
    return compose([f"model={name}", "logger=none"]).model


@pytest.mark.parametrize("name", RELEASES)
def test_each_release_config_equals_the_published_numbers(name):
    repo, dit, vae, kind, steps, terminal, guidance, causal = RELEASES[name]
    cfg = model_config(name)
    arch = OmegaConf.to_container(cfg.architecture)
    for part, published in (("transformer", dit), ("vae", vae)):
        ours = {k: v for k, v in arch[part].items() if v is not None}  # null: the class's own default
        assert ours == published, (name, part)
    assert cfg.pretrained == repo and cfg.causal_rope is causal and cfg.guidance == guidance
    assert (cfg.schedule.kind, cfg.schedule.steps, cfg.schedule.shift_terminal) == (kind, steps, terminal)
    if kind == "list":
        assert list(cfg.schedule.timesteps) == DISTILLED
    assert (cfg.decode_timestep, cfg.decode_noise_scale) == (0.05, 0.025)


def test_the_default_release_has_the_denoising_decoder():
    default = compose(["model=ltx_2b", "logger=none"]).model
    assert (
        default.architecture.vae.timestep_conditioning and default.pretrained != "Lightricks/LTX-Video"
    )  # 0.9.0
    assert (
        compose(["logger=none"]).model.architecture.vae.down_block_types
        == default.architecture.vae.down_block_types
    )


@pytest.mark.parametrize("name", ["ltx_2b", "ltx_13b"])
def test_published_sizes_build_on_meta(name):
    cfg = model_config(name)
    arch = OmegaConf.to_container(cfg.architecture)
    with torch.device("meta"):
        dit = LTXVideoTransformer3DModel(**arch["transformer"])
        vae = AutoencoderKLLTXVideo(**arch["vae"])
    assert sum(p.numel() for p in dit.parameters()) == PARAMS["DIT_13B" if "13b" in name else "DIT_2B"]
    assert (vae.spatial_compression_ratio, vae.temporal_compression_ratio) == (32, 8)


def test_a_vae_without_the_denoising_decoder_is_refused_in_one_line(tmp_path, tiny_cfg):
    """0.9.0's decoder is not timestep-conditioned: asking it for t=0.05 is refused, not skipped."""
    arch = OmegaConf.to_container(tiny_cfg.model.architecture)
    arch["vae"]["timestep_conditioning"] = False
    with pytest.raises(
        ValueError, match=r"decode_timestep=0.05 .* has none \(0.9.0\); set model.decode_timestep=null"
    ):
        LTXVideo(str(tmp_path / "v090"), twin="tiny", architecture=arch)
    plain = LTXVideo(
        str(tmp_path / "v090"), twin="tiny", architecture=arch, decode_timestep=None, decode_noise_scale=None
    )
    z = torch.zeros(1, 128, 2, 1, 1)
    assert torch.equal(plain.decode(z), plain.decode(z))  # no noise is blended without that decoder
    arch["vae"]["timestep_conditioning"] = True
    with pytest.raises(ValueError, match="set model.decode_timestep and model.decode_noise_scale"):
        LTXVideo(str(tmp_path / "v091"), twin="tiny", architecture=arch, decode_timestep=None)


def test_timesteps_reach_the_dit_in_fp32(tiny_cfg, tiny_ltx):
    """In bf16, 993.7 would snap to 992; diffusers' pipelines pass the timestep in fp32."""
    ltx = LTXVideo(tiny_cfg.model.pretrained, dtype="bfloat16")
    seen = []
    ltx.transformer.time_embed.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x, text = torch.zeros(1, 4, 128), torch.zeros(1, 3, ltx.caption_dim)
    coords = ltx.coords(torch.zeros(4, 3), torch.tensor([24.0]))
    ltx.velocity(x, torch.full((1, 4), 0.9937), coords, text, torch.ones(1, 3, dtype=torch.bool))
    assert seen[0].dtype == torch.float32 and seen[0].flatten()[0].item() == pytest.approx(993.7, abs=1e-3)


def test_a_cached_twin_of_another_architecture_is_rebuilt(tmp_path, tiny_cfg):
    arch = OmegaConf.to_container(tiny_cfg.model.architecture)
    LTXVideo(str(tmp_path / "twin"), twin="tiny", architecture=arch)
    arch["transformer"]["num_layers"] = 1
    again = LTXVideo(str(tmp_path / "twin"), twin="tiny", architecture=arch)
    assert len(again.transformer.transformer_blocks) == 1


def test_a_dit_published_as_one_file_loads_through_from_single_file(tmp_path, tiny_cfg, tiny_ltx):
    """Releases such as 2B 0.9.8-distilled exist only as one original-layout .safetensors: the DiT is
    read from it (LTX's key names), its config from the release folder's transformer/."""
    original = {
        "patchify_proj": "proj_in",
        "adaln_single": "time_embed",
        "q_norm": "norm_q",
        "k_norm": "norm_k",
    }
    state = {}
    for key, value in tiny_ltx.transformer.state_dict().items():
        for theirs, ours in original.items():
            key = key.replace(ours, theirs)
        state[f"model.diffusion_model.{key}"] = value.contiguous()
    save_file(state, tmp_path / "ltxv-tiny-distilled.safetensors")
    single = LTXVideo(
        tiny_cfg.model.pretrained, transformer_file=str(tmp_path / "ltxv-tiny-distilled.safetensors")
    )
    for (name, a), b in zip(
        tiny_ltx.transformer.state_dict().items(), single.transformer.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="model.transformer_file=/nope/x.safetensors not found"):
        LTXVideo(tiny_cfg.model.pretrained, transformer_file="/nope/x.safetensors")
