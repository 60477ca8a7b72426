"""Hydra glue shared by the entry points and the tests."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


def wandb_offline() -> bool:
    """Offline unless an API key is configured (env or ~/.netrc), so wandb never prompts."""
    if os.environ.get("WANDB_MODE") in {"offline", "disabled", "dryrun"}:
        return True
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return not (netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


_claimed: dict[str, str] = {}


def new_dir(base: str) -> str:
    """`base`, or else `base_1`, `base_2`, ...: the first that this process creates itself. os.mkdir is
    atomic (also on NFS), so two runs started in the same second never share a run directory. The
    answer is kept per process (and Hydra caches it in the config, which its launchers copy to each
    job), so a directory is claimed once however often the config is resolved."""
    if base not in _claimed:
        Path(base).parent.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            path = base if n == 0 else f"{base}_{n}"
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            _claimed[base] = path
            break
    return _claimed[base]


def experiment_overrides(args: list[str]) -> list[str]:
    """`+experiment=X` as `experiment=X`. train.yaml's defaults list names the group (`experiment: null`,
    so that an experiment overrides the groups before it), and there Hydra refuses `+`, which would add a
    second entry; the `+` form, which every command used before, keeps working."""
    return [a[1:] if a.startswith("+experiment=") else a for a in args]


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    os.environ.setdefault("FORESIGHT_ROOT", str(ROOT))
    if not OmegaConf.has_resolver("foresight_wandb_offline"):
        OmegaConf.register_new_resolver("foresight_wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("foresight_new_dir"):
        OmegaConf.register_new_resolver("foresight_new_dir", new_dir, use_cache=True)


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """The DictConfig `train.py` would see for these overrides, outside a Hydra run (tests, scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            config_name=config_name,
            overrides=experiment_overrides(list(overrides or [])),
            return_hydra_config=True,
        )
