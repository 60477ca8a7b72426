"""Shared fixtures: tiny twins of the frozen models, built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def own_wandb_service():
    """wandb.init in this process starts a service and exports WANDB_SERVICE, which every train.py
    subprocess started later would share: a killed run's id would stay "in use" in it. Stop it after
    each test, as separate user processes never share one."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


@pytest.fixture(scope="session")
def twin_dir(tmp_path_factory) -> Path:
    """Where tiny twins are built for this test session (fresh: proves building works)."""
    return tmp_path_factory.mktemp("twins")


@pytest.fixture(scope="session")
def tiny_cfg(twin_dir):
    from foresight.config import compose

    return compose([f"paths.cache_dir={twin_dir}", "logger=none"])


@pytest.fixture(scope="session")
def tiny_ltx(tiny_cfg):
    from hydra.utils import instantiate

    return instantiate(tiny_cfg.model)


@pytest.fixture(scope="session")
def tiny_vlm(tiny_cfg):
    from hydra.utils import instantiate

    return instantiate(tiny_cfg.vlm)


@pytest.fixture(scope="session")
def batch():
    """A fixed batch of two synthetic clips, windowed as the loader does (target[0] = context[-1])."""
    from foresight.data.sample_world import clip_batch

    return clip_batch()  # context (2, 4, 64, 64, 3), target (2, 17, 64, 64, 3)
