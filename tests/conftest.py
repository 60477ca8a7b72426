"""Shared fixtures: tiny twins of the frozen models, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


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
