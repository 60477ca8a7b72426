"""The LightningModule: frozen VLM and LTX-Video, the trainable adapter (+ LoRA), one option.

Every option shares this loop: batch -> Features (frozen encoders, no grad) -> option.loss.
Validation scores sampled futures with fixed seeds on a fixed held-out set (foresight.eval.scoring),
with keys that mean the same for every option, so that runs and options compare honestly.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable

import lightning as L
import torch
from torch import Tensor

from foresight.eval.scoring import Scorer
from foresight.features import (
    Features,
    corrupt_frames,
    corrupt_latents,
    encode_batch,
    next_context,
    video_to_frames,
)
from foresight.models.adapter import QueryAdapter
from foresight.models.ltx import LTXVideo
from foresight.models.vlm import FrozenVLM
from foresight.options.base import Option


def plain_name(name: str) -> str:
    """A parameter's path without the segments FSDP and activation-checkpoint wrappers insert."""
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


class ForesightModule(L.LightningModule):
    def __init__(
        self,
        vlm: FrozenVLM | None,
        ltx: LTXVideo,
        option: Option,
        adapter: Callable[..., QueryAdapter],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
        val_seed: int = 0,
        vlm_dim: int | None = None,
        baselines: bool = True,
        instruction_gap: bool = True,
        context_noise: float = 0.0,
        context_frame_noise: float = 0.0,
        own_chunk: float = 0.0,
    ) -> None:
        """vlm=None with vlm_dim: trained from the feature cache, whose batches carry the VLM states.
        optimizer, scheduler: partials called with the trainable parameters and with the optimizer
        (conf/train.yaml module.optimizer, module.scheduler); scheduler None: a constant learning rate.
        baselines, instruction_gap: what validation scores beside the prediction (Scorer).
        context_noise, context_frame_noise: training against exposure bias (rollouts), off at 0: noise
        of a per-clip strength up to this on the given latents (features.corrupt_latents) and on the
        VLM's context frames, 0-255 (features.corrupt_frames; needs live encoding, not the cache).
        own_chunk: the share of training steps that train on the window after the batch's one, read
        from the model's own prediction of the batch's window (`own_chunk_batch`; needs live encoding
        and data.train_chunks >= 2)."""
        super().__init__()
        if not 0.0 <= own_chunk <= 1.0:
            raise ValueError(
                f"module.own_chunk={own_chunk} is a share of training steps; use a value in [0, 1]"
            )
        if own_chunk and vlm is None and option.uses_adapter:
            raise ValueError(
                f"module.own_chunk={own_chunk} has the VLM read the model's own predicted frames, but "
                f"this run reads cached VLM states (data=features); train from video or set it to 0"
            )
        if context_frame_noise and vlm is None:
            raise ValueError(
                f"module.context_frame_noise={context_frame_noise} corrupts the frames the VLM reads, "
                f"but this run reads cached VLM states (data=features); train from video or set it to 0"
            )
        if context_noise and option.first_frame < 1.0:
            raise ValueError(
                f"module.context_noise={context_noise} noises the given current frame, which "
                f"option.first_frame={option.first_frame} sometimes generates instead (it would learn "
                f"to generate the noise); set option.first_frame=1 or context_noise=0"
            )
        self.context_noise, self.context_frame_noise = context_noise, context_frame_noise
        self.own_chunk = own_chunk
        self.vlm, self.ltx, self.option = vlm, ltx, option
        if option.lora:
            ltx.add_lora(**option.lora)
        self.adapter = (
            adapter(in_dim=vlm.out_dim if vlm is not None else vlm_dim, out_dim=option.adapter_out_dim(ltx))
            if option.uses_adapter
            else None
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_seed = val_seed
        self.scorer = Scorer(baselines=baselines, instruction_gap=instruction_gap)
        self.strict_loading = False  # training-state checkpoints hold the trainable tensors only
        self.val_clips = 0  # clips scored by the validation under way
        self.validated: dict[str, int] | None = None  # the last finished validation: {"step", "clips"}

    # parameters ---------------------------------------------------------------------------------

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Only what trains (adapter, LoRA): the frozen models are reloaded from their source.
        Names are the plain module paths, also under FSDP (whose wrappers add path segments)."""
        return {plain_name(n): p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def parameter_counts(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"params/total": total, "params/trainable": trainable, "params/frozen": total - trainable}

    def frozen_encoders(self) -> list[torch.nn.Module]:
        """The frozen models that only run forward (VLM, VAE, T5; those loaded): FSDP keeps them whole."""
        return [m for m in (self.vlm, self.ltx.vae, self.ltx.text_encoder) if m is not None]

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        from lightning.pytorch.plugins.precision import Precision
        from lightning.pytorch.strategies import FSDPStrategy
        from lightning.pytorch.utilities import GradClipAlgorithmType

        if gradient_clip_val and isinstance(self.trainer.strategy, FSDPStrategy):
            # Lightning's FSDP precision refuses norm clipping; FSDP computes the norm over all shards
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
            return
        plugin = self.trainer.precision_plugin
        if gradient_clip_val and optimizer.defaults.get("fused") and getattr(plugin, "scaler", None) is None:
            # Lightning's mixed precision refuses to clip before a fused optimizer's step, which
            # unscales fp16's scaled gradients itself; bf16 has no scaler, so its gradients are the
            # true ones and clip as they would for any optimizer (module.optimizer.fused=true)
            algorithm = GradClipAlgorithmType(
                gradient_clip_algorithm or self.trainer.gradient_clip_algorithm or "norm"
            )
            Precision.clip_gradients(plugin, optimizer, gradient_clip_val, algorithm)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = self.trainable_state_dict()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "state_dict" not in checkpoint:  # FSDP's loader has already put the weights in (and popped them)
            return
        saved, trainable = set(checkpoint["state_dict"]), set(self.trainable_state_dict())
        if saved != trainable:
            missing, unexpected = sorted(trainable - saved), sorted(saved - trainable)
            raise ValueError(
                f"the checkpoint's trainable tensors do not fit this model (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}); resume with the config it was trained with"
            )

    def configure_optimizers(self) -> dict[str, Any]:
        opt = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": opt}
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "step"},
        }

    # steps --------------------------------------------------------------------------------------

    def features(self, batch: dict) -> Features:
        """From the feature cache when the batch carries them (data=features), else encoded live."""
        if "features" in batch:
            return batch["features"]
        if (self.vlm is None and self.option.uses_adapter) or self.ltx.text_encoder is None:
            raise ValueError(
                "this module was built without its frozen encoders (to train from the feature "
                "cache) and cannot encode video; build it with the VLM and T5 loaded (predict.py does)"
            )
        return encode_batch(batch, self.vlm, self.ltx, context_latents=self.option.needs_context_latents)

    @torch.no_grad()
    def own_chunk_batch(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """The window after the batch's, as the second chunk of a rollout sees it: the model predicts the
        batch's future (its own sampler, eval mode, no gradient), and the next window's context is the
        last C frames of context + that prediction, its current frame the predicted last frame, its
        future the true continuation. Training on it teaches the model to predict from its own output
        (exposure bias), the gradient flowing through this second chunk only. generator: the sampler's
        and decoder's noise (None: the global one), drawn as a rollout draws it."""
        if "features" in batch:
            raise ValueError(
                f"module.own_chunk={self.own_chunk} needs the batch's frames, but this run reads the "
                f"feature cache (data=features); train from video or set it to 0"
            )
        context, target = batch["context"], batch["target"]  # (B, C, H, W, 3), (B, F, H, W, 3) uint8
        f = target.shape[1]
        truth = batch.get("continuation")  # (B, (K-1)(F-1), H, W, 3) uint8
        if truth is None or truth.shape[1] < f - 1:
            raise ValueError(needs_next_window(self.own_chunk))
        with eval_mode(self):
            feats = encode_batch(  # the current frame's latent only: the future is predicted
                {**batch, "target": None},
                self.vlm,
                self.ltx,
                future_frames=f,
                context_latents=self.option.needs_context_latents,
            )
            z = self.option.sample(self.adapter, self.ltx, feats, generator=generator)  # (B, 128, f, h, w)
            video = video_to_frames(self.ltx.decode(z, generator=generator))  # (B, F, H, W, 3) uint8
        return {
            **batch,
            "context": next_context(context, video),
            "target": torch.cat([video[:, -1:], truth[:, : f - 1]], 1),  # (B, F, H, W, 3)
        }

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        own = bool(self.own_chunk) and torch.rand(()).item() < self.own_chunk
        if own:
            batch = self.own_chunk_batch(batch)
        if self.context_frame_noise:
            batch = {**batch, "context": corrupt_frames(batch["context"], self.context_frame_noise)}
        feats = corrupt_latents(self.features(batch), self.context_noise)
        out = self.option.loss(self.adapter, self.ltx, feats, training=True)
        bs = len(batch["caption"])
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=False, batch_size=bs)
        # host numbers go in as CPU tensors: a logged float is copied to the GPU, which waits for the step
        self.log("train/lr", torch.tensor(self.optimizers().param_groups[0]["lr"]), batch_size=bs)
        if self.own_chunk:  # its mean over steps: the share that trained on the model's own chunk
            self.log("train/own_chunk", torch.tensor(float(own)), batch_size=bs)
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "consumed"):
            skips = dm.consumed(batch)  # also records the data position that checkpoints save
            if skips:
                self.log_dict(
                    {f"data/skipped_{k}": torch.tensor(float(v)) for k, v in skips.items()}, batch_size=bs
                )
        return out["loss"]

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        # Stopping at the last step makes Lightning validate right after it even when max_steps is no
        # multiple of val_check_interval (once when it is): every run ends with validation metrics.
        if self.trainer.global_step >= self.trainer.max_steps:
            self.trainer.should_stop = True

    def on_validation_epoch_start(self) -> None:
        self.val_clips = 0

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        metrics = self.scorer(self, batch, seed=self.val_seed + batch_idx)
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=len(batch["caption"]))
        self.val_clips += len(batch["caption"])

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.validated = {"step": self.trainer.global_step, "clips": self.val_clips}
        self.log("data/val_clips", torch.tensor(float(self.val_clips)))  # how many clips the scores rest on
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "val_skip_counts"):
            for reason, n in dm.val_skip_counts().items():
                self.log(f"data/val_skipped_{reason}", float(n))


def module_from_config(cfg) -> ForesightModule:
    """The module a composed config describes, every part built from it (the frozen encoders live)."""
    from hydra.utils import instantiate

    return instantiate(cfg.module)(
        vlm=instantiate(cfg.vlm),
        ltx=instantiate(cfg.model),
        option=instantiate(cfg.option),
        adapter=instantiate(cfg.adapter),
    )


def needs_next_window(own_chunk: float) -> str:
    """What a run with module.own_chunk and no next window's truth in its batches is told."""
    return (
        f"module.own_chunk={own_chunk} trains on the window after each one and needs its true frames: "
        f"set data.train_chunks=2 (clips of C + 2(F-1) frames, e.g. data=world_rollout)"
    )


@contextmanager
def eval_mode(module: torch.nn.Module):
    """The module and all its children in eval mode (no dropout), each put back as it was after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
