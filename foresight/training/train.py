"""Build everything from the config, train, return the metric a sweeper optimises."""

from __future__ import annotations

import gc
import json
import logging
import math
import shutil
import sys
import tarfile
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from foresight import checks
from foresight.console import Reported, one_line
from foresight.eval.scoring import RANKING, better
from foresight.training.module import needs_next_window
from foresight.training.resume import (
    SafetensorsIO,
    TrainingState,
    defining_overrides,
    experiment_identity,
    read_state,
    resume_from,
)
from foresight.training.weights import TrainableCheckpoint

log = logging.getLogger(__name__)


def instantiate(node, **kwargs):
    """hydra.utils.instantiate, but a config mistake surfaces as its own one-line error.

    Hydra wraps whatever a constructor raises; our constructors raise ValueError or
    FileNotFoundError with a message naming the field and the fix, so pass those through.
    """
    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, FileNotFoundError)):
            raise e.__cause__ from None
        raise


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train_or_record_failure(cfg: DictConfig) -> float | None:
    """train.py's job. In a sweep a failed trial (CUDA out of memory included) is logged, written to
    `<run>/failed.json`, and returns NaN, which Optuna records as a failed trial, so the sweep goes on.
    A single run fails loudly. Either way the wandb run is closed: the next trial of a sweep runs in
    this process and must get its own."""
    try:
        metric = train(cfg)["metric"]
    except Exception as e:  # noqa: BLE001 -- any trial may fail; the sweep must not
        finish_wandb(exit_code=1)
        if not in_sweep():
            raise
        log.error("trial failed, the sweep goes on: %s: %s", type(e).__name__, e)
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "failed.json").write_text(
            json.dumps(
                {"error": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}, indent=1
            )
        )
        del e
        gc.collect()  # drop the failed trial's tensors before the next trial in this process
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return math.nan
    finish_wandb()
    return metric


def finish_wandb(exit_code: int = 0) -> None:
    wandb = sys.modules.get("wandb")  # only if a logger imported it
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured option; returns {'metric': value of cfg.optimized_metric, 'metrics': all}.

    Nothing after the last step stands between a run and its final state: the training state and
    the weights are written at the last step, before the final validation and sample videos. An
    error after that point is reported in the summary, and then fails the run (one line) with all
    its files in place."""
    checks.check(cfg, checks.TRAIN)  # before anything is read or loaded
    check_own_chunk(cfg)
    L.seed_everything(cfg.seed, workers=True)
    # The data module validates frame counts and sizes first: a bad window fails before any model loads.
    datamodule = instantiate(cfg.data)
    group_wandb_by_sweep(cfg)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # Hydra's own node is not the job's
    resolved = OmegaConf.to_container(job, resolve=True)
    experiment = experiment_identity(cfg)
    state_path = resume_from(cfg, resolved, experiment)  # checked before the models load
    first_step = 0 if state_path is None else read_state(state_path)["global_step"] or 0
    if first_step >= cfg.trainer.max_steps:
        return nothing_to_train(cfg, state_path, first_step)
    if cfg.trainer.get("limit_val_batches", 1):
        check_held_out(datamodule, cfg.data.get("val_shards"))
    option = instantiate(cfg.option)
    if not option.trains:
        raise ValueError(
            f"option={option.name} has nothing to train (no adapter, no LoRA): score it with "
            f"python evaluate.py option={option.name} shards=..."
        )
    vlm, ltx, vlm_dim = frozen_models(cfg, datamodule, option)
    adapter = instantiate(cfg.adapter)
    module = instantiate(cfg.module)(vlm=vlm, ltx=ltx, option=option, adapter=adapter, vlm_dim=vlm_dim)

    loggers = [instantiate(c, _convert_="all") for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values()]
    for cb in callbacks:
        if hasattr(cb, "config"):
            cb.config = resolved  # checkpoints describe themselves
        if isinstance(cb, TrainingState):
            cb.experiment = experiment  # what resume=auto matches
    for lg in loggers:
        lg.log_hyperparams({**resolved, **module.parameter_counts()})

    trainer: L.Trainer = instantiate(
        cfg.trainer,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[SafetensorsIO()],
        enable_checkpointing=any(isinstance(c, TrainingState) for c in callbacks),
    )
    started = time.monotonic()
    after_last_step = fit(trainer, module, datamodule, state_path, callbacks, cfg.data.get("val_shards"))

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metric = metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    ckpts = [str(cb.last_path) for cb in callbacks if getattr(cb, "last_path", None)]
    if trainer.is_global_zero:
        log_summary(
            cfg,
            trainer,
            callbacks,
            metrics,
            trainer.global_step - first_step,
            time.monotonic() - started,
            module.validated,
            after_last_step,
        )
    if after_last_step is not None:
        raise Reported(
            f"training reached step {trainer.global_step} and wrote its final state and weights, "
            f"but then failed: {one_line(after_last_step)}; the run directory "
            f"{cfg.paths.output_dir} is complete otherwise (score it with python evaluate.py "
            f"ckpt={cfg.paths.output_dir})"
        ) from after_last_step
    return {"metric": metric, "metrics": metrics, "checkpoints": ckpts}


def fit(
    trainer: L.Trainer, module, datamodule, state_path: str | None, callbacks: list, val_shards: str | None
) -> Exception | None:
    """trainer.fit, and what failed after the last step (returned: the final files are written by then),
    a final validation that scored no clip included. Anything failing earlier is raised."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=state_path)
    except Exception as e:
        if not final_files_written(trainer, callbacks):
            raise
        if (module.validated or {}).get("step") == trainer.global_step:
            return e
        failed = RuntimeError(f"the final validation on data.val_shards={val_shards!r} failed: {one_line(e)}")
        failed.__cause__ = e
        return failed
    final = module.validated or {}
    if (
        trainer.enable_validation
        and final_files_written(trainer, callbacks)
        and (final.get("step") != trainer.global_step or not final.get("clips"))
    ):
        return ValueError(
            f"the final validation scored no clip of data.val_shards={val_shards!r} (skipped: "
            f"{counts(datamodule.val_skip_counts()) or 'none'})"
        )
    return None


def check_own_chunk(cfg: DictConfig) -> None:
    """Training on the model's own previous chunk needs the next window's truth in every batch."""
    own = cfg.module.get("own_chunk") or 0
    if own and (cfg.data.get("train_chunks") or 1) < 2:
        raise ValueError(needs_next_window(own))


def check_held_out(datamodule, spec: str | None) -> None:
    """The held-out set must give a batch before any model loads: validation, the end-of-run scores and
    the sample videos all read it, and a broken one found at the first validation costs the steps
    before it. Reads the first batch only, with the random state put back (the run is unchanged)."""
    fix = "pass other shards, or a window that fits the clips (data.context_frames, data.future_frames)"
    with torch.random.fork_rng(devices=[]):
        try:
            batch = next(iter(datamodule.val_dataloader()), None)
        except (OSError, EOFError, tarfile.TarError) as e:
            raise ValueError(
                f"data.val_shards={spec!r} cannot be read ({type(e).__name__}: {one_line(e)}); pass "
                f"readable webdataset shards (foresight data inspect SHARDS shows what is wrong)"
            ) from e
        except ValueError as e:  # the data stream's own verdict on a held-out set with nothing usable
            raise ValueError(f"data.val_shards={spec!r} holds no usable clip ({one_line(e)}); {fix}") from e
    if batch is None:
        raise ValueError(
            f"data.val_shards={spec!r} holds no usable clip (skipped: "
            f"{counts(datamodule.val_skip_counts()) or 'none'}); {fix}"
        )


def final_files_written(trainer: L.Trainer, callbacks: list) -> bool:
    """Whether training reached its last step and every checkpoint callback has written that step."""
    writers = [cb for cb in callbacks if isinstance(cb, (TrainingState, TrainableCheckpoint))]
    return trainer.global_step >= trainer.max_steps and all(
        cb.saved_step == trainer.global_step for cb in writers
    )


def nothing_to_train(cfg: DictConfig, state_path: str, step: int) -> dict[str, Any]:
    """A resume whose state already reached trainer.max_steps: say so, and leave no empty run directory."""
    log.info(
        "nothing to train: %s is at step %d and trainer.max_steps=%d; to train longer, pass a larger "
        "trainer.max_steps",
        state_path,
        step,
        cfg.trainer.max_steps,
    )
    remove_unused_run_dir(cfg)
    return {"metric": None, "metrics": {}, "checkpoints": []}


def remove_unused_run_dir(cfg: DictConfig) -> None:
    """Delete this job's Hydra run directory if it holds nothing but Hydra's own files (.hydra/, the log)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    out = Path(HydraConfig.get().runtime.output_dir)
    if (
        Path(cfg.paths.output_dir).resolve() == out.resolve()
        and out.is_dir()
        and all(p.name == ".hydra" or p.suffix == ".log" for p in out.iterdir())
    ):
        shutil.rmtree(out, ignore_errors=True)


def frozen_models(cfg: DictConfig, datamodule, option) -> tuple[Any, Any, int | None]:
    """(VLM, LTX-Video, cached VLM width). From the feature cache (data=features) the VLM and T5 already
    ran in preprocess.py: neither is loaded (Qwen2.5-VL-7B and T5-XXL hold 15.4 + 8.9 GiB of bf16
    weights), and the adapter's input width comes from the cached states. Options without an adapter
    (the baselines) load no VLM at all."""
    if not hasattr(datamodule, "cached_widths"):
        return instantiate(cfg.vlm) if option.uses_adapter else None, instantiate(cfg.model), None
    widths = datamodule.cached_widths()
    ltx = instantiate(cfg.model, text_encoder=False)
    if widths["text"] != ltx.caption_dim:
        raise ValueError(
            f"the feature cache holds caption states {widths['text']} wide, but this model's DiT "
            f"reads {ltx.caption_dim}: it was written with another model; re-run python preprocess.py with "
            f"this one"
        )
    return None, ltx, widths["vlm"]


COPY_LAST = "_copy_last"  # the floor the verdict is about
SUMMARY_BESIDE = (
    (COPY_LAST, "copy last frame"),
    ("_copy_last_vae", "through the VAE"),
    ("_vae_recon", "VAE ceiling"),
    ("_instruction_gap", "instruction gap"),
)


def log_summary(
    cfg: DictConfig,
    trainer: L.Trainer,
    callbacks: list,
    metrics: dict[str, float],
    steps: int,
    seconds: float,
    validated: dict | None = None,
    after_last_step: Exception | None = None,
) -> None:
    """The end of a run in a few lines: what it reached, beside the baseline and in words, what the
    data skipped, what failed, and where its files are."""
    out = Path(cfg.paths.output_dir)
    lines = [
        f"{cfg.run_group}: {steps} steps in {seconds:.0f} s ({steps / max(seconds, 1e-9):.2f} steps/s), "
        f"now at step {trainer.global_step}"
    ]
    lines += validation_summary(cfg, metrics, validated, trainer.global_step)
    train_skips = {
        k.removeprefix("data/skipped_"): int(v) for k, v in metrics.items() if k.startswith("data/skipped_")
    }
    lines.append(f"  skipped samples        {counts(train_skips) or 'none'} in training")
    if after_last_step is not None:
        lines.append(f"  FAILED after the last step: {one_line(after_last_step)}")
    for cb in callbacks:
        if isinstance(cb, TrainingState) and cb.best_model_path:
            lines.append(f"  resume state           {cb.best_model_path}   (continue: resume=auto)")
        elif getattr(cb, "last_path", None):
            lines.append(f"  checkpoint             {cb.last_path}   (python predict.py ckpt={out} ...)")
        if getattr(cb, "failed", None):
            lines.append(f"  sample videos FAILED at {cb.failed}")
        elif getattr(cb, "written", None):
            lines.append(f"  sample videos          {cb.written[-1].parent}")
    for lg in trainer.loggers:
        where = getattr(lg, "log_dir", None) or getattr(getattr(lg, "experiment", None), "dir", None)
        offline = (
            where and type(lg).__name__ == "WandbLogger" and OmegaConf.select(cfg, "logger.wandb.offline")
        )
        lines.append(
            f"  {type(lg).__name__:<22} {where or out}"
            + (f"   (upload later: wandb sync {Path(where).parent})" if offline else "")
        )
    lines.append(f"  run directory          {out}")
    log.info("\n".join(lines))


def counts(by_reason: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(by_reason.items()) if n)


def validation_summary(
    cfg: DictConfig, metrics: dict[str, float], validated: dict | None, step: int
) -> list[str]:
    """The ranking metrics beside their baselines, how many clips they rest on, and whether the run
    beats the copy-last-frame baseline, in words."""
    keys = [f"val/{name}" for name in RANKING if f"val/{name}" in metrics]
    if not keys or validated is None:
        return [
            "  validation             none"
            + (" (trainer.limit_val_batches=0)" if not cfg.trainer.get("limit_val_batches", 1) else "")
        ]
    val_skips = {
        k.removeprefix("data/val_skipped_"): int(v)
        for k, v in metrics.items()
        if k.startswith("data/val_skipped_")
    }
    expected, clips = expected_val_clips(cfg), validated["clips"]
    when = f"at step {validated['step']}" + (" (NOT the last step)" if validated["step"] != step else "")
    short = expected is not None and clips < expected
    lines = [
        f"  validation {when} on {clips} clips"
        + (f", skipped {counts(val_skips)}" if counts(val_skips) else "")
        + (f" -- FEWER than the {expected} configured: its scores are noisy" if short else "")
    ]
    for key in keys:
        beside = [
            f"{title} {metrics[key + suffix]:.4g}"
            for suffix, title in SUMMARY_BESIDE
            if key + suffix in metrics
        ]
        lines.append(f"  {key:<22} {metrics[key]:.4g}" + (f"   ({'; '.join(beside)})" if beside else ""))
    scored = [k for k in keys if f"{k}{COPY_LAST}" in metrics]
    beaten = [
        k
        for k in scored
        if (metrics[k] > metrics[f"{k}{COPY_LAST}"]) == (better(k) == "higher")
        and metrics[k] != metrics[f"{k}{COPY_LAST}"]
    ]
    names = lambda ks: ", ".join(k.removeprefix("val/") for k in ks)  # noqa: E731
    if scored and not beaten:
        lines.append(
            f"  verdict                does NOT beat the copy-last-frame baseline on any of {names(scored)}: "
            f"it has learned nothing useful yet"
        )
    elif len(beaten) < len(scored):
        lines.append(
            f"  verdict                does NOT beat the copy-last-frame baseline on "
            f"{names(k for k in scored if k not in beaten)} (beats it on {names(beaten)})"
        )
    elif scored:
        lines.append(
            f"  verdict                beats the copy-last-frame baseline on every metric ({names(scored)})"
        )
    return lines


def expected_val_clips(cfg: DictConfig) -> int | None:
    """How many clips a validation should score as configured (None: the whole held-out set, unknown)."""
    limits = [OmegaConf.select(cfg, "data.val_samples")]
    batches, batch_size = cfg.trainer.get("limit_val_batches"), OmegaConf.select(cfg, "data.val_batch_size")
    if isinstance(batches, int) and not isinstance(batches, bool) and isinstance(batch_size, int):
        limits.append(batches * batch_size)
    known = [n for n in limits if isinstance(n, int)]
    return min(known) if known else None


def group_wandb_by_sweep(cfg: DictConfig) -> None:
    """In a sweep, the wandb group is the sweep (its directory's name), the job type the experiment
    and the run name the job's defining overrides, so a sweep is one group in wandb's UI."""
    from hydra.core.hydra_config import HydraConfig

    if not in_sweep() or OmegaConf.select(cfg, "logger.wandb") is None:
        return
    hc = HydraConfig.get()
    with open_dict(cfg):
        cfg.logger.wandb.group = f"sweep-{Path(hc.sweep.dir).name}"
        cfg.logger.wandb.job_type = cfg.run_group
        cfg.logger.wandb.name = (
            cfg.logger.wandb.name or ",".join(defining_overrides(cfg)) or f"job{hc.job.num}"
        )
