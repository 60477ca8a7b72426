"""Resuming a run, in one place: the training state a run writes, and finding, checking and restoring it.

- `checkpoints/state/step<N>.safetensors` (TrainingState, the newest `keep_last` kept): everything
  Lightning saves to continue a run (trainable weights, optimizer, LR schedule, loop counters), plus
  the RNG states, the data position, the wandb run id, the resolved config and its shaping part.
  `SafetensorsIO` stores Lightning's checkpoint dict as tensors + a JSON skeleton, so resuming never
  unpickles anything.
- `resume_from` picks the file (ckpt_path=..., or resume=auto: `find_resumable` over the logs, matching
  `experiment_identity`), refuses one whose shaping config differs (`shaping_config`,
  `fingerprint_mismatch`) and points the wandb logger at the run it continues; Lightning restores it.

Reading a state file never runs anything it names: its config passes `trusted.check` first, and an
unreadable file is one error naming it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict

from foresight import trusted
from foresight.training.files import (
    parse_json,
    read_metadata,
    read_tensors,
    remove_dead_temporaries,
    write_atomically,
)

log = logging.getLogger(__name__)


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
        return {
            "__items__": [
                [_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")] for k, v in obj.items()
            ]
        }
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(
        f"training state {where} holds a {type(obj).__name__}, which the safetensors checkpoint "
        f"cannot store; keep checkpoint state to tensors, numbers, strings, lists and dicts"
    )


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
        skeleton = parse_json(_state_skeleton(path), path, "foresight_state")
        tensors = read_tensors(path)
        try:
            return _decode(skeleton, tensors)
        except (KeyError, TypeError, AttributeError) as e:  # names a tensor the file lacks, a malformed node
            raise ValueError(
                f"{path}: malformed training state ({type(e).__name__}: {e}); the file was not "
                f"written by train.py or was altered"
            ) from None

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)


def _state_skeleton(path) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"ckpt_path={path}: no such file; pass a checkpoints/state/step*.safetensors "
            f"of a run, or resume=auto"
        )
    raw = read_metadata(path).get("foresight_state")
    if raw is None:
        raise ValueError(
            f"ckpt_path={path} is not a training-state checkpoint; pass a file from a run's "
            f"checkpoints/state/ (last.safetensors holds weights only: use it with predict.py)"
        )
    return raw


def is_training_state(path) -> bool:
    return "foresight_state" in read_metadata(path)


WANDB_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # wandb names directories after it: no path characters


def read_state(path) -> dict:
    """The non-tensor part of a training-state checkpoint (step, config, wandb run id, ...), no tensors
    read; its config checked by `trusted.check` like a weights file's."""
    skeleton = parse_json(_state_skeleton(path), path, "foresight_state")
    state = {"global_step": skeleton.get("global_step"), **(skeleton.get("foresight") or {})}
    trusted.check(state.get("config", {}), str(path))
    trusted.current_config(state.get("config", {}))
    run_id = state.get("wandb_run_id")
    if run_id is not None and not (isinstance(run_id, str) and WANDB_RUN_ID.fullmatch(run_id)):
        raise ValueError(
            f"{path}: refusing wandb_run_id={str(run_id)[:40]!r} (a run id is letters, digits, _ "
            f"and -); the file was not written by train.py or was altered"
        )
    if state["global_step"] is not None and not isinstance(state["global_step"], int):
        raise ValueError(
            f"{path}: global_step={state['global_step']!r} is not a step count; the file was not "
            f"written by train.py or was altered"
        )
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
    return [
        f"{k}: {saved.get(k, '<unset>')!r} -> {current.get(k, '<unset>')!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]


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
        super().__init__(
            dirpath=dirpath,
            filename="step{step:06d}",
            auto_insert_metric_name=False,
            every_n_train_steps=every_n_steps,
            save_top_k=keep_last,
            monitor="step",
            mode="max",
            save_last=False,
            save_on_train_epoch_end=False,
        )
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
        run_ids = [
            lg.experiment.id
            for lg in trainer.loggers
            if type(lg).__name__ == "WandbLogger" and trainer.is_global_zero
        ]
        checkpoint["foresight"] = {
            "config": self.config,
            "shaping": shaping_config(self.config),
            "experiment": self.experiment,
            "wandb_run_id": run_ids[0] if run_ids else None,
        }


def find_resumable(log_dir: str | os.PathLike, experiment: dict) -> Path | None:
    """The newest training-state checkpoint under log_dir written by the same experiment. Unreadable
    candidates (half-copied, corrupt, altered) are skipped with a warning each, so one bad file cannot
    stop every experiment from resuming; temporary files of writers that died are removed first."""
    removed = remove_dead_temporaries(log_dir)
    if removed:
        log.info(
            "removed %d temporary checkpoint file(s) left by writers that died, such as %s",
            len(removed),
            removed[0],
        )
    found = []
    for path in Path(log_dir).glob("**/checkpoints/state/step*.safetensors"):
        try:
            meta = read_state(path)
        except (ValueError, OSError) as e:
            log.warning(
                "resume=auto: skipping an unreadable candidate: %s",
                e if str(path) in str(e) else f"{path}: {e}",
            )
            continue
        if meta.get("experiment") == experiment:
            found.append((path.stat().st_mtime, meta.get("global_step") or 0, path))
    return max(found)[2] if found else None


# the task overrides that make another experiment (paths, schedule length, logging, workers do not)
DEFINING = ("experiment", "option", "model", "vlm", "adapter", "data", "module", "seed", "run_group")


def defining_overrides(cfg: DictConfig) -> list[str]:
    """The job's command-line overrides that make it another experiment, in order."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    else:  # composed outside a Hydra run (tests, scripts)
        overrides = list(OmegaConf.select(cfg, "hydra.overrides.task", default=[]) or [])
    # `experiment=X` counts as `+experiment=X`, the form every command used before train.yaml's defaults
    # named the group: the identities (and wandb run names) of runs from before and after agree
    return [
        "+" + o if o.startswith("experiment=") else o
        for o in overrides
        if o.lstrip("+~").split("=")[0].split(".")[0] in DEFINING and not o.startswith("data.num_workers")
    ]


def experiment_identity(cfg: DictConfig) -> dict[str, Any]:
    """What `resume=auto` matches: the run group and the defining overrides (a sweep's jobs differ in
    theirs, so each resumes its own run)."""
    return {"run_group": cfg.get("run_group"), "overrides": sorted(defining_overrides(cfg))}


def resume_from(cfg: DictConfig, resolved: dict, experiment: dict) -> str | None:
    """The training-state file to continue (ckpt_path=..., or resume=auto), checked against this config;
    points the wandb logger at the run it continues."""
    path = cfg.get("ckpt_path")
    if path is None and cfg.get("resume") == "auto":
        found = find_resumable(f"{cfg.paths.log_dir}/{cfg.task_name}", experiment)
        if found is None:
            log.info("resume=auto: no earlier run of %s; starting fresh", experiment)
            return None
        path = str(found)
    elif cfg.get("resume") not in (None, "auto"):
        raise ValueError(f"resume={cfg.resume!r}: use resume=auto, or ckpt_path=PATH for a given checkpoint")
    if path is None:
        return None
    saved = read_state(path)
    diff = fingerprint_mismatch(saved.get("shaping", {}), shaping_config(resolved))
    if diff:
        raise ValueError(
            f"cannot resume from {path}: the config that shapes the model differs ("
            f"{'; '.join(diff)}); resume with the values it was trained with, or start a new run"
        )
    run_id = saved.get("wandb_run_id")
    if run_id and OmegaConf.select(cfg, "logger.wandb") is not None:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"
    log.info(
        "resuming from %s (step %s%s)",
        path,
        saved.get("global_step"),
        f", wandb run {run_id}" if run_id else "",
    )
    return path
