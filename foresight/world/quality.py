"""How good the world's frozen parts are, on clips they never saw (by default the held-out split).

    foresight world evaluate [--weights weights/world] [--split heldout] [--clips 256] [--out DIR]

- VAE: PSNR of the 17-frame future windows after encode -> decode (posterior mode, the denoising
  decoder at LTX's blend), every frame. Gate: >= 27 dB.
- DiT alone, as image-to-video: the current frame (first latent frame, clean at t=0) and the true
  caption, sampled from noise as option=i2v samples (the model's schedule, no guidance), decoded.
  Scored like validation scores options: latent MSE over the future tokens and PSNR over future
  frames 1..16, each beside copy-last-frame (the current frame held still; its latent score through
  the VAE, its PSNR on raw frames as validation reports it, and also through the VAE round trip).
  Gate: lower latent MSE than copy-last, and PSNR >= copy-last + 2 dB.
- Instruction gap of the DiT: the same clips sampled with mismatched captions (each clip gets the
  next clip's caption, a fixed permutation); a model that ignores the caption has a gap of ~0.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from foresight.eval.metrics import psnr
from foresight.eval.scoring import mismatched
from foresight.features import Features, frames_to_video, video_to_frames
from foresight.models.ltx import LTXVideo, pack
from foresight.options.image_to_video import ImageToVideo
from foresight.world.pretrain import world_features
from foresight.world.render import render_batch
from foresight.world.scene import CURRENT

GATES = {"vae_psnr": 27.0, "psnr_over_copy_last": 2.0}
SAMPLE_STEPS = 20


@torch.no_grad()
def i2v_sample(ltx: LTXVideo, feats: Features, steps: int, generator: torch.Generator) -> Tensor:
    """The DiT alone, as the `i2v` baseline samples: Euler from noise on the model's schedule, the first
    latent frame given, the caption through T5, no guidance. Normalised latents (B, 128, f, h, w)."""
    return ImageToVideo(sample_steps=steps, guidance=1.0).sample(None, ltx, feats, generator=generator)


@torch.no_grad()
def score_batch(
    ltx: LTXVideo, frames: Tensor, captions: list[str], seed: int, steps: int = SAMPLE_STEPS
) -> dict[str, Tensor]:
    """Per-clip scores (each (B,)) of one batch of world clips (B, FRAMES, H, W, 3) uint8."""

    def gen() -> torch.Generator:  # every variant sees the same noise draws
        return torch.Generator(frames.device).manual_seed(seed)

    target = frames[:, CURRENT:]  # (B, 17, H, W, 3): the current frame and the future
    truth = target[:, 1:].float()
    feats = world_features(ltx, frames, captions)
    z0 = feats.target
    out = {"vae_psnr": psnr(video_to_frames(ltx.decode(z0, generator=gen())), target).mean(1)}
    future = ~feats.first_frame_mask()  # (B, N)

    def latent_mse(pred: Tensor) -> Tensor:  # (B,): mean over the future tokens of each clip
        err = (pack(pred) - feats.target_tokens()).pow(2).mean(-1)  # (B, N)
        return (err * future).sum(1) / future.sum(1)

    still = target[:, :1].expand_as(target)
    still_latents = ltx.encode(frames_to_video(still))
    out["latent_mse_copy_last"] = latent_mse(still_latents)
    out["psnr_copy_last"] = psnr(still[:, 1:], truth).mean(1)
    still_decoded = video_to_frames(ltx.decode(still_latents, generator=gen()))
    out["psnr_copy_last_vae"] = psnr(still_decoded[:, 1:], truth).mean(1)
    for name, caps in (("", captions), ("_mismatched", mismatched({"caption": captions})["caption"])):
        f = feats if not name else world_features(ltx, frames, caps)
        pred = i2v_sample(ltx, f, steps, gen())
        out[f"latent_mse{name}"] = latent_mse(pred)
        out[f"psnr{name}"] = psnr(video_to_frames(ltx.decode(pred, generator=gen()))[:, 1:], truth).mean(1)
    return out


def evaluate(
    ltx: LTXVideo,
    split: str = "heldout",
    clips: int = 256,
    batch: int = 32,
    seed: int = 0,
    steps: int = SAMPLE_STEPS,
) -> dict:
    """Means over `clips` clips (seeds 0..clips-1 of `split`), the gates and whether each passes."""
    dev = next(ltx.transformer.parameters()).device
    sums: dict[str, float] = {}
    for i, first in enumerate(range(0, clips, batch)):
        frames, captions, _ = render_batch(list(range(first, min(first + batch, clips))), split, device=dev)
        for k, v in score_batch(ltx, frames, captions, seed + i, steps).items():
            sums[k] = sums.get(k, 0.0) + float(v.sum())
    result = {k: v / clips for k, v in sums.items()}
    result["psnr_over_copy_last"] = result["psnr"] - result["psnr_copy_last"]
    result["instruction_gap_latent_mse"] = result["latent_mse_mismatched"] - result["latent_mse"]
    result["instruction_gap_psnr"] = result["psnr"] - result["psnr_mismatched"]
    result["gates"] = {
        "vae_psnr >= 27 dB": result["vae_psnr"] >= GATES["vae_psnr"],
        "latent_mse < copy-last": result["latent_mse"] < result["latent_mse_copy_last"],
        "psnr >= copy-last + 2 dB": result["psnr_over_copy_last"] >= GATES["psnr_over_copy_last"],
    }
    result["setup"] = {
        "split": split,
        "clips": clips,
        "seed": seed,
        "sample_steps": steps,
        "device": str(dev),
    }
    return result


def markdown(result: dict) -> str:
    r = result
    lines = [
        f"World quality on {r['setup']['clips']} `{r['setup']['split']}` clips "
        f"(sampler: {r['setup']['sample_steps']} Euler steps, seed {r['setup']['seed']})",
        "",
        "| | value | copy-last-frame |",
        "|---|---|---|",
        f"| VAE reconstruction PSNR | {r['vae_psnr']:.2f} dB | |",
        f"| DiT latent MSE (future tokens) | {r['latent_mse']:.4f} | {r['latent_mse_copy_last']:.4f} |",
        f"| DiT future PSNR | {r['psnr']:.2f} dB | {r['psnr_copy_last']:.2f} dB raw, "
        f"{r['psnr_copy_last_vae']:.2f} dB through the VAE |",
        f"| DiT with mismatched captions: latent MSE / PSNR | {r['latent_mse_mismatched']:.4f} / "
        f"{r['psnr_mismatched']:.2f} dB | |",
        "",
        "Gates: " + ", ".join(f"{k} {'PASS' if v else 'MISS'}" for k, v in r["gates"].items()),
    ]
    return "\n".join(lines)


def write(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "world_quality.json", out / "world_quality.md"]
    paths[0].write_text(json.dumps(result, indent=1))
    paths[1].write_text(markdown(result) + "\n")
    return paths
