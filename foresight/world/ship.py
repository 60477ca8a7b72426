"""The shipped world: fp16 `save_pretrained` exports, size limits, and SHA256SUMS over every file.

    weights/world/ltx/{vae,transformer,text_encoder,tokenizer}/   what LTXVideo loads (model=world)
    weights/world/vlm/                                            what FrozenVLM loads (vlm=world)
    weights/world/SHA256SUMS                                      `sha256sum -c` reads it too

Every file the world needs is committed, so nothing is redrawn at random at load time and results do
not move with a library's initialisation code. The checksums prove the files are the ones measured.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import torch

from foresight.config import ROOT

WEIGHTS = ROOT / "weights" / "world"
CHECKSUMS = "SHA256SUMS"
MAX_FILE = 16_000_000  # bytes per file (issue 14)
MAX_TOTAL = 24_000_000  # bytes for the whole world


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shipped_files(root: Path) -> list[Path]:
    """Every file under root except the checksum list itself, sorted, relative to root."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def write_checksums(root: Path) -> Path:
    lines = [f"{sha256(root / rel)}  {rel.as_posix()}" for rel in shipped_files(root)]
    path = root / CHECKSUMS
    path.write_text("\n".join(lines) + "\n")
    return path


def verify(root: Path) -> list[str]:
    """Problems with the shipped files (empty when all is well): missing, unlisted, changed, too large."""
    listing = root / CHECKSUMS
    if not listing.is_file():
        return [f"{listing} is missing; run `foresight world checksums --write` after pretraining"]
    recorded = dict(
        reversed(line.split(maxsplit=1)) for line in listing.read_text().splitlines() if line.strip()
    )
    present = {p.as_posix() for p in shipped_files(root)}
    problems = [f"{name}: listed in {CHECKSUMS} but missing" for name in sorted(set(recorded) - present)]
    problems += [f"{name}: present but not listed in {CHECKSUMS}" for name in sorted(present - set(recorded))]
    total = 0
    for name in sorted(present & set(recorded)):
        size = (root / name).stat().st_size
        total += size
        if sha256(root / name) != recorded[name]:
            problems.append(f"{name}: checksum differs from {CHECKSUMS}")
        if size > MAX_FILE:
            problems.append(f"{name}: {size / 1e6:.1f} MB, over the {MAX_FILE / 1e6:.0f} MB a file may take")
    if total > MAX_TOTAL:
        problems.append(f"the world's files take {total / 1e6:.1f} MB, over {MAX_TOTAL / 1e6:.0f} MB")
    return problems


def export_fp16(model: torch.nn.Module, directory: Path) -> None:
    """save_pretrained a half-precision copy into directory (written beside it, then swapped in)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    copy.deepcopy(model).to(torch.float16).save_pretrained(tmp)
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
