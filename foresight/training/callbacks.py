"""Sample videos of fixed held-out clips during training: context | prediction | ground truth."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch

from foresight.data.video import encode_mp4, side_by_side
from foresight.features import video_to_frames
from foresight.training.fsdp import sharded_outside_step

log = logging.getLogger(__name__)


class SampleVideos(L.Callback):
    """Every `every_n_steps` (0: only at the end) and at the end of training, predict the first
    `num_clips` held-out clips with a fixed seed and write `<dirpath>/step<N>.mp4` at the clips'
    fps; wandb loggers also get the video. Rank 0 only; off under multi-GPU FSDP (says so once)."""

    def __init__(self, dirpath: str, every_n_steps: int = 0, num_clips: int = 2, seed: int = 0) -> None:
        self.dirpath, self.every_n_steps, self.num_clips, self.seed = (
            Path(dirpath),
            every_n_steps,
            num_clips,
            seed,
        )
        self.batch: dict | None = None
        self.written: list[Path] = []
        self.last_step: int | None = None  # the step last rendered (or skipped)
        self.failed: str | None = None  # the last failure, for the end-of-run summary

    def held_out(self, trainer: L.Trainer) -> dict:
        if self.batch is None:
            batch = next(iter(trainer.datamodule.val_dataloader()), None)
            if batch is None:
                raise ValueError("the held-out set (data.val_shards) gave no usable clip to render")
            n = self.num_clips
            self.batch = {
                k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v)
                for k, v in batch.items()
                if k != "features"
            }
            if "features" in batch:  # the cache: slice the record too
                feats = batch["features"]
                self.batch["features"] = type(feats)(
                    **{
                        k: (
                            getattr(feats, k)[:n]
                            if isinstance(getattr(feats, k), torch.Tensor)
                            else getattr(feats, k)
                        )
                        for k in feats.__dataclass_fields__
                    }
                )
        return self.batch

    def write(self, trainer: L.Trainer, module) -> None:
        """Render, or log one line saying why not: sample videos are for looking at, and never stop a
        run or stand between it and its final state."""
        try:
            self.render(trainer, module)
        except Exception as e:  # noqa: BLE001 -- whatever failed, training goes on
            self.failed = f"step {trainer.global_step}: {type(e).__name__}: {' '.join(str(e).split())}"
            log.warning("sample videos failed at %s (training goes on)", self.failed)

    @torch.no_grad()
    def render(self, trainer: L.Trainer, module) -> None:
        if sharded_outside_step(trainer):
            # outside the training step the adapter and the DiT are shards; rendering needs them whole
            if self.last_step is None and trainer.is_global_zero:
                log.warning(
                    "sample videos are off under FSDP on %d GPUs (the models are sharded outside the "
                    "training step); predict.py renders from the checkpoint",
                    trainer.world_size,
                )
            self.last_step = trainer.global_step
            return
        if not trainer.is_global_zero or getattr(trainer, "datamodule", None) is None:
            return
        self.last_step = trainer.global_step
        batch = trainer.strategy.batch_to_device(self.held_out(trainer), module.device)
        with (
            trainer.precision_plugin.forward_context()
        ):  # the precision training runs in (bf16-mixed: autocast)
            feats = module.features(batch)
            gen = torch.Generator(module.device).manual_seed(self.seed)
            latents = module.option.sample(module.adapter, module.ltx, feats, generator=gen)
            prediction = video_to_frames(module.ltx.decode(latents, generator=gen))  # (B, F, H, W, 3)
        clips = zip(*(v.cpu().numpy() for v in (batch["context"], prediction, batch["target"])), strict=True)
        # per clip the current frame held | prediction | truth, (F, H, 3W, 3); clips stacked vertically
        frames = np.concatenate(
            [side_by_side(ctx[-1:], predicted, truth) for ctx, predicted, truth in clips], axis=1
        )
        fps = float(batch["fps"][0])
        path = self.dirpath / f"step{trainer.global_step:06d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_mp4(frames, fps))
        self.written.append(path)
        for logger in trainer.loggers:
            if hasattr(logger, "log_video"):
                logger.log_video(
                    "samples", [str(path)], step=trainer.global_step, format=["mp4"]
                )  # fps: the file's

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.write(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if self.last_step != trainer.global_step:
            self.write(trainer, module)
