"""Build everything from the config, train, return the metric a sweeper optimises."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from foresight.checkpoint import (SafetensorsIO, TrainingState, find_resumable, fingerprint_mismatch, read_state,
                                  shaping_config)

log = logging.getLogger("foresight")


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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured option; returns {'metric': value of cfg.optimized_metric, 'metrics': all}."""
    # Lightning prints through its own handlers and Hydra's root handler alike: keep Hydra's
    # (console and the run's log file), drop the duplicate.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
    # the frozen VLM and LTX stay in eval mode by design; Lightning warns about it every run
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    L.seed_everything(cfg.seed, workers=True)
    # The data module validates frame counts and sizes first: a bad window fails before any model loads.
    datamodule = instantiate(cfg.data)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # Hydra's own node is not the job's
    resolved = OmegaConf.to_container(job, resolve=True)
    experiment = experiment_identity(cfg)
    state_path = resume_from(cfg, resolved, experiment)  # checked before the models load
    option = instantiate(cfg.option)
    vlm = instantiate(cfg.vlm)
    ltx = instantiate(cfg.model)
    adapter = instantiate(cfg.adapter)
    module = instantiate(cfg.module)(vlm=vlm, ltx=ltx, option=option, adapter=adapter)

    loggers = [instantiate(c, _convert_="all") for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values()]
    for cb in callbacks:
        if hasattr(cb, "config"):
            cb.config = resolved  # checkpoints describe themselves
        if isinstance(cb, TrainingState):
            cb.experiment = experiment  # what resume=auto matches
    for lg in loggers:
        lg.log_hyperparams({**resolved, **module.parameter_counts()})

    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                     plugins=[SafetensorsIO()],
                                     enable_checkpointing=any(isinstance(c, TrainingState) for c in callbacks))
    trainer.fit(module, datamodule=datamodule, ckpt_path=state_path)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metric = metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    ckpts = [str(cb.last_path) for cb in callbacks if getattr(cb, "last_path", None)]
    val = "  ".join(f"{k[4:]}={v:.4g}" for k, v in sorted(metrics.items()) if k.startswith("val/"))
    log.info("validation: %s", val or "none run")
    log.info("done: %s=%s; checkpoint %s; logs in %s", cfg.get("optimized_metric"), metric,
             ", ".join(ckpts) or "none", cfg.paths.output_dir)
    return {"metric": metric, "metrics": metrics, "checkpoints": ckpts}


# the task overrides that make another experiment (paths, schedule length, logging, workers do not)
DEFINING = ("experiment", "option", "model", "vlm", "adapter", "data", "module", "seed", "run_group")


def experiment_identity(cfg: DictConfig) -> dict[str, Any]:
    """What `resume=auto` matches: the run group and the overrides that define the job (a sweep's
    jobs differ in theirs, so each resumes its own run)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    else:  # composed outside a Hydra run (tests, scripts)
        overrides = list(OmegaConf.select(cfg, "hydra.overrides.task", default=[]) or [])
    keep = [o for o in overrides if o.lstrip("+~").split("=")[0].split(".")[0] in DEFINING
            and not o.startswith("data.num_workers")]
    return {"run_group": cfg.get("run_group"), "overrides": sorted(keep)}


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
        raise ValueError(f"cannot resume from {path}: the config that shapes the model differs ("
                         f"{'; '.join(diff)}); resume with the values it was trained with, or start a new run")
    run_id = saved.get("wandb_run_id")
    if run_id and OmegaConf.select(cfg, "logger.wandb") is not None:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"
    log.info("resuming from %s (step %s%s)", path, saved.get("global_step"),
             f", wandb run {run_id}" if run_id else "")
    return path
