"""Trainable weights: `checkpoints/last.safetensors`, what predict.py and evaluation load.

The adapter and LoRA tensors plus, in the metadata, the resolved config that built them; the frozen
VLM and LTX-Video are reloaded from their own sources. Reading one never runs anything the file
names: its config passes `trusted.check` first, and former `_target_` names are mapped to current ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L

from foresight import trusted
from foresight.training.files import parse_json, read_metadata, read_tensors, write_atomically
from foresight.training.fsdp import full_params


def save_trainable(module: "L.LightningModule", path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write module.trainable_state_dict() atomically, with `meta` (config, step, ...) as metadata."""
    tensors = {k: v.contiguous().cpu() for k, v in module.trainable_state_dict().items()}
    return write_atomically(tensors, path, {"foresight": json.dumps(meta, default=str)})


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata written by save_trainable (config, step, ...), its config checked by
    `trusted.check`: nothing a file names is ever built unless Foresight's own configs build it."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path}: no such file; pass a run directory or its checkpoints/last.safetensors"
        )
    raw = read_metadata(path)
    if "foresight" not in raw:
        if "foresight_state" in raw:
            raise ValueError(
                f"{path} is a training-state file, which continues a run (python train.py "
                f"ckpt_path={path}); to predict or evaluate pass the run directory or its "
                f"checkpoints/last.safetensors"
            )
        raise ValueError(
            f"{path} is not a Foresight checkpoint (no 'foresight' metadata); pass a file written by train.py"
        )
    meta = parse_json(raw["foresight"], path, "foresight")
    trusted.check(meta.get("config", {}), str(path))
    trusted.current_config(meta.get("config", {}))
    return meta


def load_trainable(module: "L.LightningModule", path: str | os.PathLike) -> dict[str, Any]:
    """Load trainable weights into module; refuses files whose tensors do not match it exactly."""
    meta = read_meta(path)
    state = read_tensors(path)
    expected = module.trainable_state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}; was it trained with another "
            f"option or size?"
        )
    module.load_state_dict(state, strict=False)
    return meta


def find_weights(target: str | os.PathLike) -> Path:
    """The trainable-weights file of a run directory (its newest checkpoints/last.safetensors), or the file
    given."""
    path = Path(target)
    if path.is_dir():
        found = sorted(path.rglob("last.safetensors"), key=lambda p: p.stat().st_mtime)
        if not found:
            states = sorted(path.rglob("checkpoints/state/step*.safetensors"))
            hint = (
                f" (it holds training state only, such as {states[-1].name}: the run did not finish; "
                f"continue it with python train.py ckpt_path={states[-1]})"
                if states
                else ""
            )
            raise FileNotFoundError(
                f"{path}: no checkpoints/last.safetensors inside{hint}; pass a run directory "
                f"written by train.py or the .safetensors file itself"
            )
        return found[-1]
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; pass a run directory from logs/train/runs/ or a .safetensors file"
        )
    return path


class TrainableCheckpoint(L.Callback):
    """Writes `<dirpath>/last.safetensors` every `every_n_steps` (0: only at the end) and at the end,
    and with a LoRA on the DiT also `<dirpath>/lora/` in diffusers' and the `diffusion_model.` format."""

    def __init__(self, dirpath: str, every_n_steps: int = 0, config: dict[str, Any] | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.config = config or {}
        self.last_path: Path | None = None
        self.saved_step: int | None = None

    def _save(self, trainer: "L.Trainer", module: "L.LightningModule") -> None:
        with full_params(trainer):  # under FSDP every rank gathers the shards; rank 0 writes
            if trainer.is_global_zero:
                meta = {"config": self.config, "step": trainer.global_step, "option": module.option.name}
                self.last_path = save_trainable(module, self.dirpath / "last.safetensors", meta)
                if module.option.lora:
                    from foresight.training.lora_export import export_lora

                    prefix = "ltx.transformer."
                    lora = {
                        k[len(prefix) :]: v
                        for k, v in module.trainable_state_dict().items()
                        if k.startswith(prefix)
                    }
                    export_lora(module.ltx, self.dirpath / "lora", lora)
        self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        # the last step too, before the final validation and sample videos can fail
        if (
            self.every_n_steps and trainer.global_step % self.every_n_steps == 0
        ) or trainer.global_step >= trainer.max_steps:
            self._save(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if self.saved_step != trainer.global_step:  # training ended before max_steps (epoch_samples ran out)
            self._save(trainer, module)
