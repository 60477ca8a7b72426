"""Self-describing checkpoints of the trainable weights only (safetensors, never pickle).

The frozen VLM and LTX-Video are reloaded from their own sources; a checkpoint holds the adapter
and LoRA tensors plus, in the safetensors metadata, the resolved config that built them, so a
file alone says which option, model sizes and adapter shape it belongs to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
from safetensors import safe_open
from safetensors.torch import save_file


def save_trainable(module: "L.LightningModule", path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write module.trainable_state_dict() atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous().cpu() for k, v in module.trainable_state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"foresight": json.dumps(meta, default=str)})
    os.replace(tmp, path)
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata written by save_trainable (config, step, ...)."""
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("foresight")
    if raw is None:
        raise ValueError(f"{path} is not a Foresight checkpoint (no 'foresight' metadata); pass a file written by train.py")
    return json.loads(raw)


def load_trainable(module: "L.LightningModule", path: str | os.PathLike) -> dict[str, Any]:
    """Load trainable weights into module; refuses files whose tensors do not match it exactly."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    expected = module.trainable_state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}; was it trained with another option or size?"
        )
    module.load_state_dict(state, strict=False)
    return read_meta(path)


class TrainableCheckpoint(L.Callback):
    """Writes `<dirpath>/last.safetensors` every `every_n_steps` (0: only at the end) and at the end,
    and with a LoRA on the DiT also `<dirpath>/lora/` in diffusers' and the `diffusion_model.` format."""

    def __init__(self, dirpath: str, every_n_steps: int = 0, config: dict[str, Any] | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.config = config or {}
        self.last_path: Path | None = None

    def _save(self, trainer: "L.Trainer", module: "L.LightningModule") -> None:
        if trainer.is_global_zero:
            meta = {"config": self.config, "step": trainer.global_step, "option": module.option.name}
            self.last_path = save_trainable(module, self.dirpath / "last.safetensors", meta)
            if module.option.lora:
                from foresight.lora_export import export_lora

                export_lora(module.ltx, self.dirpath / "lora")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        self._save(trainer, module)
