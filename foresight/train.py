"""Build everything from the config, train, return the metric a sweeper optimises."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig, OmegaConf

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
    option = instantiate(cfg.option)
    vlm = instantiate(cfg.vlm)
    ltx = instantiate(cfg.model)
    adapter = instantiate(cfg.adapter)
    module = instantiate(cfg.module)(vlm=vlm, ltx=ltx, option=option, adapter=adapter)

    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # Hydra's own node is not the job's
    resolved = OmegaConf.to_container(job, resolve=True)
    loggers = [instantiate(c, _convert_="all") for c in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(c, _convert_="all") for c in (cfg.get("callbacks") or {}).values()]
    for cb in callbacks:
        if hasattr(cb, "config"):
            cb.config = resolved  # checkpoints describe themselves
    for lg in loggers:
        lg.log_hyperparams({**resolved, **module.parameter_counts()})

    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    trainer.fit(module, datamodule=datamodule)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metric = metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None
    ckpts = [str(cb.last_path) for cb in callbacks if getattr(cb, "last_path", None)]
    val = "  ".join(f"{k[4:]}={v:.4g}" for k, v in sorted(metrics.items()) if k.startswith("val/"))
    log.info("validation: %s", val or "none run")
    log.info("done: %s=%s; checkpoint %s; logs in %s", cfg.get("optimized_metric"), metric,
             ", ".join(ckpts) or "none", cfg.paths.output_dir)
    return {"metric": metric, "metrics": metrics, "checkpoints": ckpts}
