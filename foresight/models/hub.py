"""Where a frozen model comes from: a hub id or a local `save_pretrained` directory."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def looks_like_path(pretrained: str) -> bool:
    """Hub ids are 'org/name'; anything absolute, relative-dotted, ~ or deeper is a path."""
    return pretrained.startswith(("/", ".", "~")) or pretrained.count("/") > 1


def resolve_pretrained(pretrained: str, expected: list[str]) -> str:
    """Check a local checkpoint directory holds what the loader needs; pass hub ids through.

    Raises FileNotFoundError naming the directory and what is missing, before any loader does
    something less clear with it.
    """
    path = Path(os.path.expanduser(str(pretrained)))
    if path.is_dir():
        missing = [e for e in expected if not (path / e).exists()]
        if missing:
            raise FileNotFoundError(
                f"checkpoint directory {path} lacks {', '.join(missing)}; expected a save_pretrained "
                f"directory with {', '.join(expected)}"
            )
        return str(path)
    if looks_like_path(str(pretrained)) or path.exists():  # a file, or a path that is not there
        raise FileNotFoundError(
            f"checkpoint directory {path} not found; expected a save_pretrained directory with "
            f"{', '.join(expected)} (or pass a hub id such as org/name)"
        )
    return str(pretrained)


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype={name!r} is not supported; use one of {', '.join(DTYPES)}")
    return DTYPES[name]


def freeze(module: nn.Module) -> nn.Module:
    """No gradients, eval mode: the frozen parts never train."""
    module.requires_grad_(False)
    return module.eval()


def own_rng(build):
    """For twin builders: they seed torch for reproducible weights, and the caller's random stream
    (a training run's initialisation) must come out the same whether a twin was built or loaded."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return build(*args, **kwargs)

    return wrapper


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file we did not write, read without unpickling code: safetensors, or
    `torch.load(weights_only=True)` for .pt/.pth."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)
