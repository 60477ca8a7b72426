"""Checkpoints, all safetensors (never pickle): trainable weights, and training state for resuming.

Two kinds, both self-describing:
- `checkpoints/last.safetensors` (TrainableCheckpoint): the adapter and LoRA tensors plus, in the
  metadata, the resolved config that built them -- what predict.py and evaluation load. The frozen
  VLM and LTX-Video are reloaded from their own sources.
- `checkpoints/state/step<N>.safetensors` (TrainingState, the last `keep_last` kept): everything
  Lightning saves to continue a run (trainable weights, optimizer, LR schedule, loop counters), plus
  the RNG states, the data position and the wandb run id. `SafetensorsIO` stores Lightning's
  checkpoint dict as tensors + a JSON skeleton, so resuming never unpickles anything.

Reading either kind never runs anything the file names: configs pass `trusted.check` first, and an
unreadable file is one error naming it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import socket
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.strategies import FSDPStrategy
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from foresight import trusted

log = logging.getLogger("foresight")


def write_atomically(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    """save_file into a temporary sibling named after this host and process, then rename it into place:
    nobody ever reads half a file, and a kill mid-write leaves the previous file intact (the temporary
    file it leaves is removed by `remove_dead_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{socket.gethostname()}-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


TEMP_MARK = ".tmp-"  # .<name>.tmp-<host>-<pid>: the writer of a temporary file
STALE_SECONDS = 3600  # a temporary file untouched this long has no live writer on any host (a write takes seconds)


def remove_dead_temporaries(root: str | os.PathLike) -> list[Path]:
    """Delete the temporary checkpoint files under `root` whose writer died: written on this host by a
    process that no longer runs, or (any host: shared filesystems) untouched for STALE_SECONDS. Earlier
    versions named them .<name>.tmp<pid>, without the host: those count as this host's."""
    removed = []
    host = socket.gethostname()
    for tmp in Path(root).glob("**/.*.safetensors.tmp*"):
        writer = tmp.name.rsplit(".tmp", 1)[1]
        writer_host, _, pid = writer[1:].rpartition("-") if writer.startswith("-") else (host, "", writer)
        try:
            dead = (writer_host == host and pid.isdigit() and not _running(int(pid))) \
                or time.time() - tmp.stat().st_mtime > STALE_SECONDS
            if dead:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # its writer finished (renamed it) or another cleaner got it first
            continue
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _metadata(path: str | os.PathLike) -> dict[str, str]:
    """A safetensors file's metadata; a file that is not readable safetensors is one error naming it."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except SafetensorError as e:
        raise _unreadable(path, e) from None


def _tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise _unreadable(path, e) from None


def _unreadable(path, error: Exception) -> ValueError:
    return ValueError(f"{path} is not a readable safetensors file ({error}): truncated, not fully copied, or "
                      f"not a checkpoint; pass a complete file written by train.py")


def _json(raw: str, path: str | os.PathLike, key: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: its '{key}' metadata is not valid JSON ({str(e)[:80]}); the file was not "
                         f"written by train.py or was altered") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: its '{key}' metadata is not a JSON object; the file was not written by "
                         f"train.py or was altered")
    return value


def save_trainable(module: "L.LightningModule", path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write module.trainable_state_dict() atomically, with `meta` (config, step, ...) as metadata."""
    tensors = {k: v.contiguous().cpu() for k, v in module.trainable_state_dict().items()}
    return write_atomically(tensors, path, {"foresight": json.dumps(meta, default=str)})


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata written by save_trainable (config, step, ...), its config checked by
    `trusted.check`: nothing a file names is ever built unless Foresight's own configs build it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file; pass a run directory or its checkpoints/last.safetensors")
    raw = _metadata(path)
    if "foresight" not in raw:
        if "foresight_state" in raw:
            raise ValueError(f"{path} is a training-state file, which continues a run (python train.py "
                             f"ckpt_path={path}); to predict or evaluate pass the run directory or its "
                             f"checkpoints/last.safetensors")
        raise ValueError(f"{path} is not a Foresight checkpoint (no 'foresight' metadata); pass a file written by train.py")
    meta = _json(raw["foresight"], path, "foresight")
    trusted.check(meta.get("config", {}), str(path))
    trusted.current_names(meta.get("config", {}))
    return meta


def load_trainable(module: "L.LightningModule", path: str | os.PathLike) -> dict[str, Any]:
    """Load trainable weights into module; refuses files whose tensors do not match it exactly."""
    meta = read_meta(path)
    state = _tensors(path)
    expected = module.trainable_state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}; was it trained with another option or size?"
        )
    module.load_state_dict(state, strict=False)
    return meta


def find_weights(target: str | os.PathLike) -> Path:
    """The trainable-weights file of a run directory (its newest checkpoints/last.safetensors), or the file given."""
    path = Path(target)
    if path.is_dir():
        found = sorted(path.rglob("last.safetensors"), key=lambda p: p.stat().st_mtime)
        if not found:
            states = sorted(path.rglob("checkpoints/state/step*.safetensors"))
            hint = (f" (it holds training state only, such as {states[-1].name}: the run did not finish; "
                    f"continue it with python train.py ckpt_path={states[-1]})" if states else "")
            raise FileNotFoundError(f"{path}: no checkpoints/last.safetensors inside{hint}; pass a run directory "
                                    f"written by train.py or the .safetensors file itself")
        return found[-1]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a run directory from logs/train/runs/ or a "
                                f".safetensors file")
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
        from lightning.pytorch.strategies import FSDPStrategy

        full = contextlib.nullcontext()
        if isinstance(trainer.strategy, FSDPStrategy):  # every rank gathers the shards; rank 0 writes
            from torch.distributed.fsdp import FullyShardedDataParallel

            full = FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=False)
        with full:
            if trainer.is_global_zero:
                meta = {"config": self.config, "step": trainer.global_step, "option": module.option.name}
                self.last_path = save_trainable(module, self.dirpath / "last.safetensors", meta)
                if module.option.lora:
                    from foresight.training.lora_export import export_lora

                    prefix = "ltx.transformer."
                    lora = {k[len(prefix):]: v for k, v in module.trainable_state_dict().items()
                            if k.startswith(prefix)}
                    export_lora(module.ltx, self.dirpath / "lora", lora)
        self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        # the last step too, before the final validation and sample videos can fail
        if (self.every_n_steps and trainer.global_step % self.every_n_steps == 0) \
                or trainer.global_step >= trainer.max_steps:
            self._save(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        if self.saved_step != trainer.global_step:  # training ended before max_steps (epoch_samples ran out)
            self._save(trainer, module)


# training state -----------------------------------------------------------------------------------

def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Lightning's checkpoint dict -> JSON skeleton; tensors go to `tensors` under generated names."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()  # clone: no shared storage in the file
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": _encode(torch.from_numpy(obj.copy()), tensors, where)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"training state {where} holds a {type(obj).__name__}, which the safetensors checkpoint "
                    f"cannot store; keep checkpoint state to tensors, numbers, strings, lists and dicts")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return _decode(obj["__ndarray__"], tensors).numpy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


class SafetensorsIO(CheckpointIO):
    """Lightning's checkpoint dict as a safetensors file: tensors, and the rest as JSON in the metadata."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        tensors: dict[str, torch.Tensor] = {}
        skeleton = json.dumps(_encode(checkpoint, tensors, "checkpoint"))
        write_atomically(tensors, path, {"foresight_state": skeleton})

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        skeleton = _json(_state_skeleton(path), path, "foresight_state")
        tensors = _tensors(path)
        try:
            return _decode(skeleton, tensors)
        except (KeyError, TypeError, AttributeError) as e:  # names a tensor the file lacks, a malformed node
            raise ValueError(f"{path}: malformed training state ({type(e).__name__}: {e}); the file was not "
                             f"written by train.py or was altered") from None

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)


class SafetensorsFSDP(FSDPStrategy):
    """Lightning's FSDP, except that a full checkpoint is read through the strategy's CheckpointIO
    (SafetensorsIO) where Lightning's FSDP loader would torch.load it; the rest of the loading
    (gathered module state, FSDP optimizer state) is Lightning's."""

    def load_checkpoint(self, checkpoint_path, weights_only=None) -> dict:
        import lightning.pytorch.strategies.fsdp as lightning_fsdp

        torch_loader = lightning_fsdp._lazy_load
        lightning_fsdp._lazy_load = self.checkpoint_io.load_checkpoint
        try:
            return super().load_checkpoint(checkpoint_path, weights_only)
        finally:
            lightning_fsdp._lazy_load = torch_loader


def _state_skeleton(path) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such file; pass a checkpoints/state/step*.safetensors "
                                f"of a run, or resume=auto")
    raw = _metadata(path).get("foresight_state")
    if raw is None:
        raise ValueError(f"ckpt_path={path} is not a training-state checkpoint; pass a file from a run's "
                         f"checkpoints/state/ (last.safetensors holds weights only: use it with predict.py)")
    return raw


def is_training_state(path) -> bool:
    return "foresight_state" in _metadata(path)


WANDB_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # wandb names directories after it: no path characters


def read_state(path) -> dict:
    """The non-tensor part of a training-state checkpoint (step, config, wandb run id, ...), no tensors
    read; its config checked by `trusted.check` like a weights file's."""
    skeleton = _json(_state_skeleton(path), path, "foresight_state")
    state = {"global_step": skeleton.get("global_step"), **(skeleton.get("foresight") or {})}
    trusted.check(state.get("config", {}), str(path))
    trusted.current_names(state.get("config", {}))
    run_id = state.get("wandb_run_id")
    if run_id is not None and not (isinstance(run_id, str) and WANDB_RUN_ID.fullmatch(run_id)):
        raise ValueError(f"{path}: refusing wandb_run_id={str(run_id)[:40]!r} (a run id is letters, digits, _ "
                         f"and -); the file was not written by train.py or was altered")
    if state["global_step"] is not None and not isinstance(state["global_step"], int):
        raise ValueError(f"{path}: global_step={state['global_step']!r} is not a step count; the file was not "
                         f"written by train.py or was altered")
    return state


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


# the config keys that shape the trained tensors: a resume must agree on all of them
SHAPING_GROUPS = ("option", "adapter", "model", "vlm")
RUNTIME_KEYS = {"dtype", "device", "gradient_checkpointing", "compile", "_convert_", "_partial_"}


def shaping_config(config: dict) -> dict[str, Any]:
    """Flattened `group.key: value` of the config that shapes the model (runtime knobs excluded)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            if node.get("twin"):  # a twin is named by `twin`; its directory is machine-local
                node = {k: v for k, v in node.items() if k != "pretrained"}
            for k, v in node.items():
                if k not in RUNTIME_KEYS:
                    walk(v, f"{prefix}.{k}")
        else:
            flat[prefix] = node

    for group in SHAPING_GROUPS:
        walk(config.get(group), group)
    return flat


def fingerprint_mismatch(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
            for k in keys if saved.get(k) != current.get(k)]


class TrainingState(ModelCheckpoint):
    """Writes `<dirpath>/step<N>.safetensors` every `every_n_steps` and at the end, keeping the newest
    `keep_last`.

    Besides what Lightning saves, each file holds the RNG states, the resolved config, the shaping
    config (checked on resume) and the wandb run id. To make a resumed run draw exactly the random
    numbers the uninterrupted run draws, the RNG state at the end of every training step is put back
    at the start of the next: whatever runs between steps (validation, sample videos, creating data
    iterators after a restart) cannot shift the training noise.
    """

    FILE_EXTENSION = ".safetensors"

    def __init__(self, dirpath: str, every_n_steps: int = 500, keep_last: int = 3) -> None:
        super().__init__(dirpath=dirpath, filename="step{step:06d}", auto_insert_metric_name=False,
                         every_n_train_steps=every_n_steps, save_top_k=keep_last, monitor="step", mode="max",
                         save_last=False, save_on_train_epoch_end=False)
        self.config: dict[str, Any] = {}
        self.experiment: dict[str, Any] = {}
        self.rng: dict | None = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.rng is not None:
            set_rng_state(self.rng)

    @property
    def saved_step(self) -> int:
        return self._last_global_step_saved

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.rng = rng_state()
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        # The final step too, so a finished run can be extended (resume=auto trainer.max_steps=...):
        # here, before the final validation and sample videos, so nothing after it can cost the state.
        if trainer.global_step >= trainer.max_steps:
            self._save_now(trainer)

    def on_train_end(self, trainer, module) -> None:
        self._save_now(trainer)  # training ended before max_steps (epoch_samples ran out)
        super().on_train_end(trainer, module)

    def _save_now(self, trainer) -> None:
        if trainer.global_step != self._last_global_step_saved:
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng": self.rng}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rng = state_dict.pop("rng", None)
        super().load_state_dict(state_dict)

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        run_ids = [lg.experiment.id for lg in trainer.loggers
                   if type(lg).__name__ == "WandbLogger" and trainer.is_global_zero]
        checkpoint["foresight"] = {"config": self.config, "shaping": shaping_config(self.config),
                                   "experiment": self.experiment, "wandb_run_id": run_ids[0] if run_ids else None}


def find_resumable(log_dir: str | os.PathLike, experiment: dict) -> Path | None:
    """The newest training-state checkpoint under log_dir written by the same experiment. Unreadable
    candidates (half-copied, corrupt, altered) are skipped with a warning each, so one bad file cannot
    stop every experiment from resuming; temporary files of writers that died are removed first."""
    removed = remove_dead_temporaries(log_dir)
    if removed:
        log.info("removed %d temporary checkpoint file(s) left by writers that died, such as %s", len(removed),
                 removed[0])
    found = []
    for path in Path(log_dir).glob("**/checkpoints/state/step*.safetensors"):
        try:
            meta = read_state(path)
        except (ValueError, OSError) as e:
            log.warning("resume=auto: skipping an unreadable candidate: %s",
                        e if str(path) in str(e) else f"{path}: {e}")
            continue
        if meta.get("experiment") == experiment:
            found.append((path.stat().st_mtime, meta.get("global_step") or 0, path))
    return max(found)[2] if found else None
