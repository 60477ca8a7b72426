"""Safetensors files as checkpoints use them: written atomically, read with one-line errors.

What the trainable-weights files (weights.py) and the training-state files (resume.py) share. A
writer renames a finished temporary file into place, so nobody reads half a file; temporary files
of writers that died are found and removed by `remove_dead_temporaries`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file


def write_atomically(
    tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]
) -> Path:
    """save_file into a temporary sibling named after this host and process, then rename it into place:
    nobody ever reads half a file, and a kill mid-write leaves the previous file intact (the temporary
    file it leaves is removed by `remove_dead_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{socket.gethostname()}-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


TEMP_MARK = ".tmp-"  # .<name>.tmp-<host>-<pid>: the writer of a temporary file
STALE_SECONDS = (
    3600  # a temporary file untouched this long has no live writer on any host (a write takes seconds)
)


def remove_dead_temporaries(root: str | os.PathLike) -> list[Path]:
    """Delete the temporary checkpoint files under `root` whose writer died: written on this host by a
    process that no longer runs, or (any host: shared filesystems) untouched for STALE_SECONDS. Earlier
    versions named them .<name>.tmp<pid>, without the host: those count as this host's."""
    removed = []
    host = socket.gethostname()
    for tmp in Path(root).glob("**/.*.safetensors.tmp*"):
        writer = tmp.name.rsplit(".tmp", 1)[1]
        writer_host, _, pid = writer[1:].rpartition("-") if writer.startswith("-") else (host, "", writer)
        try:
            dead = (
                writer_host == host and pid.isdigit() and not _running(int(pid))
            ) or time.time() - tmp.stat().st_mtime > STALE_SECONDS
            if dead:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # its writer finished (renamed it) or another cleaner got it first
            continue
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A safetensors file's metadata; a file that is not readable safetensors is one error naming it."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except SafetensorError as e:
        raise unreadable(path, e) from None


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise unreadable(path, e) from None


def unreadable(path, error: Exception) -> ValueError:
    return ValueError(
        f"{path} is not a readable safetensors file ({error}): truncated, not fully copied, or "
        f"not a checkpoint; pass a complete file written by train.py"
    )


def parse_json(raw: str, path: str | os.PathLike, key: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ValueError(
            f"{path}: its '{key}' metadata is not valid JSON ({str(e)[:80]}); the file was not "
            f"written by train.py or was altered"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{path}: its '{key}' metadata is not a JSON object; the file was not written by "
            f"train.py or was altered"
        )
    return value
