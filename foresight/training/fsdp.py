"""FSDP as Foresight uses it: only the DiT is sharded, and state is read through SafetensorsIO.

`trainer=fsdp` builds SafetensorsFSDP. The frozen encoders (VLM, VAE, T5) only run forward and
stay whole on every rank (the VAE also holds scalar parameters FSDP refuses); the DiT's blocks
are the wrap units (conf/trainer/fsdp.yaml). Outside the training step the adapter and the DiT are
shards: writing weights gathers them (`full_params`), and sample videos are off on several ranks.
"""

from __future__ import annotations

import contextlib

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy


class SafetensorsFSDP(FSDPStrategy):
    """Lightning's FSDP, except that
    - the module's frozen encoders (`ForesightModule.frozen_encoders`) are ignored modules, moved to
      this rank's device whole (FSDP moves only what it manages);
    - a full checkpoint is read through the strategy's CheckpointIO (SafetensorsIO) where Lightning's
      FSDP loader would torch.load it; the rest of the loading (gathered module state, FSDP optimizer
      state) is Lightning's;
    - it refuses `model.cuda_graphs`: a captured DiT forward would read the blocks' gathered weights
      where one gather left them, and FSDP frees them after each block."""

    def setup(self, trainer: L.Trainer) -> None:
        if getattr(self.lightning_module.ltx, "graphs", None) is not None:
            raise ValueError(
                "model.cuda_graphs=true cannot replay a DiT that FSDP shards (its weights are gathered "
                "anew for every forward): set model.cuda_graphs=false with trainer=fsdp"
            )
        frozen = self.lightning_module.frozen_encoders()
        self.kwargs["ignored_modules"] = frozen
        super().setup(trainer)
        for module in frozen:
            module.to(self.root_device)

    def load_checkpoint(self, checkpoint_path, weights_only=None) -> dict:
        import lightning.pytorch.strategies.fsdp as lightning_fsdp

        torch_loader = lightning_fsdp._lazy_load
        lightning_fsdp._lazy_load = self.checkpoint_io.load_checkpoint
        try:
            return super().load_checkpoint(checkpoint_path, weights_only)
        finally:
            lightning_fsdp._lazy_load = torch_loader


def full_params(trainer: L.Trainer) -> contextlib.AbstractContextManager:
    """Under FSDP, every rank gathers the shards of the whole model for the block (collective: all ranks
    enter it); otherwise nothing."""
    if not isinstance(trainer.strategy, FSDPStrategy):
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=False)


def sharded_outside_step(trainer: L.Trainer) -> bool:
    """Whether the trainable models are shards between training steps (FSDP on several ranks)."""
    return isinstance(trainer.strategy, FSDPStrategy) and trainer.world_size > 1
