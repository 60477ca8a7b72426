"""Config values checked at the entry points before any model loads or data is read.

A bad value fails in one line naming the key, the value and what it must be, instead of a
traceback after minutes of loading. Keys a config does not have (data=features has no
data.val_samples, for instance) are not checked.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from foresight.data.video import X264_PRESETS

_ABSENT = object()


def _whole(minimum: int, null: bool = False) -> Callable[[Any], bool]:
    return lambda v: (null and v is None) or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum)


def _number(above: float | None = None, at_least: float | None = None, below: float | None = None):
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (
            (above is None or v > above)
            and (at_least is None or v >= at_least)
            and (below is None or v < below)
        )

    return ok


def _betas(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(at_least=0, below=1)(b) for b in v)


def _shards(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


STEPS = "a whole number of steps, 1 or more"
CLIPS = "a whole number of clips, 1 or more"
SHARDS = "a shard file or pattern, such as 'data/clips/train-{000000..000099}.tar'"

# (key, test, what the value must be)
TRAIN: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("seed", _whole(0), "a whole number, 0 or more"),
    ("trainer.max_steps", _whole(1), f"{STEPS} (the training stream has no end: training stops only there)"),
    ("trainer.val_check_interval", _number(above=0), "steps between validations, above 0"),
    ("trainer.limit_val_batches", _number(at_least=0), "validation batches per validation, 0 (none) or more"),
    ("module.optimizer.lr", _number(above=0), "a learning rate above 0, such as 1e-4"),
    ("module.optimizer.weight_decay", _number(at_least=0), "a weight decay of 0 or more"),
    ("module.optimizer.betas", _betas, "two numbers in [0, 1), such as [0.9, 0.99]"),
    ("module.scheduler.warmup_steps", _whole(0), "a whole number of steps, 0 or more"),
    ("data.train_shards", _shards, SHARDS),
    ("data.val_shards", _shards, SHARDS),
    ("data.batch_size", _whole(1), CLIPS),
    ("data.val_batch_size", _whole(1), CLIPS),
    ("data.val_samples", _whole(1, null=True), f"{CLIPS} (or null: the whole held-out set)"),
    ("data.epoch_samples", _whole(1, null=True), f"{CLIPS} (or null: no epochs)"),
    ("data.num_workers", _whole(0), "a whole number of loader processes, 0 or more"),
    ("data.open_shards", _whole(1), "a whole number of shards, 1 or more"),
    ("callbacks.training_state.every_n_steps", _whole(1), STEPS),
    ("callbacks.training_state.keep_last", _whole(1), "a whole number of training-state files, 1 or more"),
    ("callbacks.trainable_checkpoint.every_n_steps", _whole(0), f"{STEPS} (or 0: only at the end)"),
    ("callbacks.sample_videos.every_n_steps", _whole(0), f"{STEPS} (or 0: only at the end)"),
    ("callbacks.sample_videos.num_clips", _whole(1), CLIPS),
)
PREPROCESS = (
    ("preprocess.batch_size", _whole(1), CLIPS),
    *((k, t, w) for k, t, w in TRAIN if k.startswith("data.") or k == "seed"),
)
PREDICT = (
    ("batch_size", _whole(1), CLIPS),
    ("seed", _whole(0), "a whole number, 0 or more"),
    ("rollout", _whole(1, null=True), "a number of chunks, 1 or more (or null)"),
    ("writers", _whole(1), "a number of threads, 1 or more"),
    ("side_by_side", lambda v: isinstance(v, bool), "true or false"),
    ("preset", lambda v: v in X264_PRESETS, f"one of x264's presets: {', '.join(X264_PRESETS)}"),
    ("vlm_graphs", lambda v: v is None or isinstance(v, bool), "true, false or null (as the run trained)"),
    ("dit_graphs", lambda v: v is None or isinstance(v, bool), "true, false or null (as the run trained)"),
    ("merge_lora", lambda v: isinstance(v, bool), "true or false"),
)
EVALUATE = (*PREDICT, ("limit", _whole(1, null=True), f"{CLIPS} (or null: all)"))


def check(cfg: DictConfig, table) -> None:
    """Raise ValueError naming the first key of `table` whose value in cfg fails its test."""
    for key, test, expected in table:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        if value is _ABSENT:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not test(value):
            raise ValueError(f"{key}={value!r}: must be {expected}")
