"""Scores of sampled futures that mean the same for every option and baseline.

One seeded pass per batch: the option samples the future with its own sampler, the VAE decodes it as
real inference does, and the result is scored against the true future. The known current frame is
never scored. These keys rank options (RANKING; lower or higher is better as `better` says):

    latent_mse                 predicted vs true future latents (normalised, future tokens only)
    psnr, ssim (+ lpips ...)   decoded future frames vs the real ones, per frame, averaged

Beside each, on the same clips and frames (never ranked):

    <m>_copy_last              the current frame held still, scored as given (raw pixels)
    <m>_copy_last_vae          the same still clip through the VAE round trip every prediction pays
    <m>_vae_recon              the true future through that round trip: the ceiling no option passes
    <m>_mismatched             the prediction from the same noise with a mismatched instruction (the
                               batch's captions rolled by one clip)
    <m>_instruction_gap        how much better the true instruction scores than the mismatched one
                               (positive: the instruction helps; about zero: it is ignored)

Diagnostics differ in meaning per option and are never ranked: `diag/loss` (the option's own loss)
and `diag/flow_t<q>` (its flow-matching loss at fixed flow times; for B, fractions of t*). The
sampler budget that produced the scores is recorded with them: `sampler/steps`, `sampler/guidance`
and `sampler/dit_calls` (DiT evaluations per sample: steps, twice that with guidance).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch
from torch import Tensor

from foresight.eval.metrics import psnr, ssim
from foresight.features import Features, encode_instruction, frames_to_video, video_to_frames
from foresight.flow import masked_mse
from foresight.models.ltx import pack

RANKING = ("latent_mse", "psnr", "ssim", "lpips", "fvd")
HIGHER_IS_BETTER = ("psnr", "ssim")
FLOW_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)  # flow times at which the DiT's loss is reported
FRAME_METRICS = {"psnr": psnr, "ssim": ssim}  # (pred, truth) videos (B, F, H, W, 3) in [0, 255] -> (B, F)
DIAGNOSTIC = "diag/"
SAMPLER = "sampler/"

FrameMetric = Callable[[Tensor, Tensor], Tensor]


def better(metric: str) -> str:
    """'higher' or 'lower': which direction is better for a score (by its base name)."""
    return "higher" if metric.rsplit("/", 1)[-1].startswith(HIGHER_IS_BETTER) else "lower"


def ranks(metric: str) -> bool:
    """Whether a logged key is a ranking key (`val/psnr`, `eval/latent_mse`, ...), not a baseline,
    a gap or a diagnostic."""
    return metric.split("/", 1)[-1] in RANKING


def gap(metric: str, true: Tensor, mismatched: Tensor) -> Tensor:
    """How much better the true instruction scores: positive when it helps."""
    return true - mismatched if better(metric) == "higher" else mismatched - true


def mismatched(batch: dict) -> dict:
    """The batch with every clip given another clip's instruction (captions and prompts rolled by one)."""
    roll = lambda texts: list(texts[1:]) + list(texts[:1])  # noqa: E731
    return {**batch, **{k: roll(batch[k]) for k in ("caption", "prompt") if k in batch}}


class Scorer:
    """Scores batches for validation (ForesightModule) and evaluate.py alike.

    frame_metrics: more per-frame scores beside PSNR and SSIM (evaluate.py adds LPIPS this way).
    baselines: also score copy-last through the VAE and the VAE's own reconstruction (two decodes).
    instruction_gap: also sample with mismatched instructions (one more sampling pass); needs the
    frozen encoders (features encoded live) and batches of two or more clips.
    """

    def __init__(
        self,
        frame_metrics: dict[str, FrameMetric] | None = None,
        baselines: bool = True,
        instruction_gap: bool = True,
    ) -> None:
        self.frame_metrics = {**FRAME_METRICS, **(frame_metrics or {})}
        self.baselines, self.instruction_gap = baselines, instruction_gap

    @torch.no_grad()
    def __call__(
        self,
        module,
        batch: dict,
        seed: int,
        per_frame: bool = False,
        on_futures: Callable[[Tensor, Tensor, Tensor], None] | None = None,
    ) -> dict[str, Tensor]:
        """{key: scalar} (and `<key>_frames`, (F-1,) means per future frame, with per_frame).

        on_futures: called with the scored futures (predicted, copy-last, true), each (B, F-1, H, W, 3)
        uint8, for scores over whole sets of videos (evaluate.py collects I3D features for FVD)."""
        feats = module.features(batch)
        ltx = module.ltx
        metrics = self.diagnostics(module, feats, seed)
        steps, guidance = module.option.sampler_budget(ltx, feats)
        metrics |= {
            f"{SAMPLER}steps": torch.tensor(float(steps)),
            f"{SAMPLER}guidance": torch.tensor(float(guidance)),
            f"{SAMPLER}dit_calls": torch.tensor(float(steps * (2 if guidance != 1.0 else 1))),
        }
        pred_latents, pred = self.predict(module, feats, seed)  # (B, 128, f, h, w), (B, F, H, W, 3)
        truth = batch["target"][:, 1:]  # frame 0 is the given current frame
        still = batch["context"][:, -1:].expand_as(batch["target"])  # the current frame held: (B, F, H, W, 3)
        still_latents = ltx.encode(frames_to_video(still))
        future = ~feats.first_frame_mask()  # (B, N)
        target = feats.target_tokens()
        videos = {"": pred[:, 1:], "_copy_last": still[:, 1:]}
        latents = {
            "": masked_mse(pack(pred_latents), target, future),
            "_copy_last": masked_mse(pack(still_latents), target, future),
        }
        if self.baselines:
            videos["_copy_last_vae"] = self.decode(ltx, still_latents, seed)[:, 1:]
            videos["_vae_recon"] = self.decode(ltx, feats.target, seed)[:, 1:]
        other = self.mismatched_features(module, batch, feats)
        if other is not None:
            mis_latents, mis = self.predict(module, other, seed)
            videos["_mismatched"] = mis[:, 1:]
            latents["_mismatched"] = masked_mse(pack(mis_latents), target, future)
        for suffix, value in latents.items():
            metrics[f"latent_mse{suffix}"] = value
        # Scores in fp32 whatever the models ran in: under bf16 autocast SSIM's blurs (conv2d) would
        # run in bf16, whose 8-bit mantissa cancels E[x^2] - E[x]^2 of 0..255 pixels; LPIPS and I3D too
        with torch.autocast(truth.device.type, enabled=False):
            if on_futures is not None:
                on_futures(videos[""], videos["_copy_last"], truth)
            for name, score in self.frame_metrics.items():
                for suffix, video in videos.items():
                    frames = score(video, truth)  # (B, F-1)
                    metrics[f"{name}{suffix}"] = frames.mean()
                    if per_frame:
                        metrics[f"{name}{suffix}_frames"] = frames.mean(0)
        if other is not None:
            for name in ("latent_mse", *self.frame_metrics):
                metrics[f"{name}_instruction_gap"] = gap(name, metrics[name], metrics[f"{name}_mismatched"])
        return metrics

    def diagnostics(self, module, feats: Features, seed: int) -> dict[str, Tensor]:
        """The option's own loss and, where a DiT is trained, its flow loss at fixed times (seeded)."""
        option, out = module.option, {}
        with torch.random.fork_rng(devices=[module.device] if module.device.type == "cuda" else []):
            torch.manual_seed(seed)
            out[f"{DIAGNOSTIC}loss"] = option.loss(module.adapter, module.ltx, feats, training=False)["loss"]
            if option.uses_dit:
                for q in FLOW_QUANTILES:
                    torch.manual_seed(seed)
                    out[f"{DIAGNOSTIC}flow_t{q}"] = option.loss(
                        module.adapter, module.ltx, feats, training=False, fixed_t=q
                    )["loss"]
        return out

    @staticmethod
    def predict(module, feats: Features, seed: int) -> tuple[Tensor, Tensor]:
        """The option's sampled future latents and their decoded frames (uint8), as predict.py makes them."""
        gen = torch.Generator(module.device).manual_seed(seed)
        latents = module.option.sample(module.adapter, module.ltx, feats, generator=gen)
        return latents, video_to_frames(module.ltx.decode(latents, generator=gen))

    @staticmethod
    def decode(ltx, latents: Tensor, seed: int) -> Tensor:
        """Latents through the same decoder (and decode noise) as predictions: uint8 (B, F, H, W, 3)."""
        return video_to_frames(
            ltx.decode(latents, generator=torch.Generator(latents.device).manual_seed(seed))
        )

    def mismatched_features(self, module, batch: dict, feats: Features) -> Features | None:
        """The features with other clips' instructions, or None where that cannot be measured."""
        if not self.instruction_gap or feats.batch_size < 2 or "features" in batch:
            return None  # a single clip has no other instruction; cached states hold only their own
        states, mask, text, text_mask = encode_instruction(mismatched(batch), module.vlm, module.ltx)
        return replace(feats, vlm_states=states, vlm_mask=mask, text=text, text_mask=text_mask)
