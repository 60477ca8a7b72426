"""Parity with diffusers' own LTX pipelines on the tiny twins.

For the same seed, schedule, prompt embedding and first frame, Foresight's sampler gives the video
latents LTX's pipeline gives, and its decoder the same frames: a validation sample is what real
inference would produce. Each release family is checked with the pipeline it ships with:
0.9.1 (shifted schedule, RoPE time without the causal offset) with LTXImageToVideoPipeline;
0.9.5+ (linear-quadratic schedule, causal RoPE) and distilled lists with LTXConditionPipeline.
"""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXImageToVideoPipeline
from diffusers.pipelines.ltx import pipeline_ltx_condition
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
from PIL import Image

from foresight.features import Features, frames_to_video, video_to_frames
from foresight.flow import Schedule
from foresight.models.ltx import latent_grid, pack, unpack
from foresight.options.image_to_video import ImageToVideo

FRAMES, SIZE, FPS = 17, 64, 24.0
TOL = 1e-4  # float32 on the CPU; the pipelines compute their sigmas in numpy float32


@pytest.fixture(scope="module")
def scene(tiny_ltx, batch):
    """One clip's current frame (uint8 (H, W, 3)), its latent and the caption's T5 states."""
    frame = batch["context"][:1, -1]  # (1, H, W, 3)
    first_latent = tiny_ltx.encode(frames_to_video(frame[:, None]))  # (1, 128, 1, h, w)
    text, mask = tiny_ltx.text_encoder(batch["caption"][:1])
    return frame, first_latent, text, mask


def release(ltx, schedule: Schedule, causal_rope: bool):
    """The tiny twin sampling as another release does (a shallow copy: the shared twin is untouched)."""
    twin = copy.copy(ltx)
    twin.schedule, twin.causal_rope = schedule, causal_rope
    return twin


def ours(ltx, scene, seed: int, decode: bool = False):
    _, first_latent, text, mask = scene
    grid = latent_grid(FRAMES, SIZE, SIZE)
    feats = Features(
        vlm_states=torch.zeros(1, 1, 8),
        vlm_mask=torch.ones(1, 1, dtype=torch.bool),
        text=text,
        text_mask=mask,
        first_latent=first_latent,
        grid=grid,
        fps=torch.tensor([FPS]),
    )
    gen = torch.Generator().manual_seed(seed)
    latents = ImageToVideo().sample(None, ltx, feats, generator=gen)  # (1, 128, f, h, w)
    return latents, (ltx.decode(latents, generator=gen) if decode else None)


def components(ltx) -> dict:
    return dict(
        vae=ltx.vae,
        transformer=ltx.transformer,
        text_encoder=ltx.text_encoder.model,
        tokenizer=ltx.text_encoder.tokenizer,
    )


def test_shifted_schedule_matches_image_to_video_pipeline(tiny_ltx, scene):
    """0.9.1: dynamic shift by token count + shift_terminal 0.1, RoPE time 8k/fps."""
    ltx = release(tiny_ltx, Schedule("shifted", 8, 0.1), causal_rope=False)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    pipe = LTXImageToVideoPipeline(scheduler=scheduler, **components(ltx))
    _, first_latent, text, mask = scene
    grid = latent_grid(FRAMES, SIZE, SIZE)
    # the pipeline takes packed latents whose first frame is the image; ours draws the same noise
    noise = torch.randn(1, 128, *grid, generator=torch.Generator().manual_seed(3))
    start = pack(torch.cat([first_latent, noise[:, :, 1:]], 2))
    theirs = pipe(
        prompt_embeds=text,
        prompt_attention_mask=mask.long(),
        latents=start,
        height=SIZE,
        width=SIZE,
        num_frames=FRAMES,
        frame_rate=FPS,
        num_inference_steps=8,
        guidance_scale=1.0,
        output_type="latent",
        return_dict=False,
    )[0]
    theirs = unpack(theirs, grid)  # this pipeline returns its latents packed, (1, N, 128)
    mine, _ = ours(ltx, scene, seed=3)
    assert theirs.shape == mine.shape == (1, 128, *grid)
    assert (mine - theirs).abs().max().item() < TOL
    assert (mine[:, :, 1:] - noise[:, :, 1:]).abs().mean() > 0.1  # it did sample


def condition_pipeline(ltx, scene, monkeypatch, seed: int, **kwargs):
    """LTXConditionPipeline from the same current frame, encoded to the posterior mode as ours is
    (diffusers samples the posterior; the mode makes the first latent identical), without the
    conditioning-noise option (image_cond_noise_scale, which Foresight's sampler does not apply)."""
    monkeypatch.setattr(
        pipeline_ltx_condition, "retrieve_latents", lambda out, generator=None: out.latent_dist.mode()
    )
    pipe = LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False), **components(ltx)
    )
    frame, _, text, mask = scene
    condition = LTXVideoCondition(image=Image.fromarray(frame[0].numpy()), frame_index=0)
    return pipe(
        conditions=[condition],
        prompt_embeds=text,
        prompt_attention_mask=mask.long(),
        height=SIZE,
        width=SIZE,
        num_frames=FRAMES,
        frame_rate=FPS,
        guidance_scale=1.0,
        image_cond_noise_scale=0.0,
        generator=torch.Generator().manual_seed(seed),
        return_dict=False,
        **kwargs,
    )[0]


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule("linear_quadratic", 8, None),
        Schedule("list", timesteps=(1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725)),
    ],
    ids=["linear_quadratic", "distilled_list"],
)
def test_condition_pipeline_gives_the_same_latents(tiny_ltx, scene, monkeypatch, schedule):
    """0.9.5+: the default linear-quadratic schedule, and a distilled release's fixed list."""
    ltx = release(tiny_ltx, schedule, causal_rope=True)
    times = None if schedule.kind != "list" else [t * 1000 for t in schedule.timesteps]
    theirs = condition_pipeline(
        ltx,
        scene,
        monkeypatch,
        seed=5,
        num_inference_steps=schedule.steps,
        timesteps=times,
        output_type="latent",
    )
    mine, _ = ours(ltx, scene, seed=5)
    assert theirs.shape == mine.shape
    assert (mine - theirs).abs().max().item() < TOL


def test_denoising_decoder_gives_the_same_frames(tiny_ltx, scene, monkeypatch):
    """Decoding after sampling: 0.025 noise from the same generator, timestep-conditioned decoder at
    t=0.05."""
    ltx = release(tiny_ltx, Schedule("linear_quadratic", 8, None), causal_rope=True)
    theirs = condition_pipeline(
        ltx,
        scene,
        monkeypatch,
        seed=7,
        num_inference_steps=8,
        output_type="pt",
        decode_timestep=0.05,
        decode_noise_scale=0.025,
    )  # (1, F, 3, H, W) in [0, 1]
    _, video = ours(ltx, scene, seed=7, decode=True)  # (1, 3, F, H, W) in [-1, 1]
    mine = (video.permute(0, 2, 1, 3, 4) + 1) / 2
    assert theirs.shape == mine.shape
    assert (mine - theirs).abs().max().item() < 1e-3
    # the decode noise matters: another seed's decode differs
    other = (ltx.decode(ours(ltx, scene, seed=7)[0], generator=torch.Generator().manual_seed(99)) + 1) / 2
    assert (other.permute(0, 2, 1, 3, 4) - theirs).abs().max().item() > 1e-3
    assert video_to_frames(video).shape == (1, FRAMES, SIZE, SIZE, 3)
