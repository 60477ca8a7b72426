"""Build everything from the config, train, return the metric a sweeper optimises."""

from __future__ import annotations

import logging
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
    L.seed_everything(cfg.seed, workers=True)
    # The data module validates frame counts and sizes first: a bad window fails before any model loads.
    datamodule = instantiate(cfg.data)
    option = instantiate(cfg.option)
    vlm = instantiate(cfg.vlm)
    ltx = instantiate(cfg.model)
    adapter = instantiate(cfg.adapter)
    module = instantiate(cfg.module)(vlm=vlm, ltx=ltx, option=option, adapter=adapter)

    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    resolved.pop("hydra", None)
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
    log.info("done: %s=%s; checkpoint %s; logs in %s", cfg.get("optimized_metric"), metric,
             ", ".join(ckpts) or "none", cfg.paths.output_dir)
    return {"metric": metric, "metrics": metrics, "checkpoints": ckpts}
