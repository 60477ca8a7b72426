"""The `foresight` command.

    foresight sample-data [--out data/sample ...]   regenerate the bundled sample clips
    foresight ckpt-info RUN_DIR_OR_FILE             what a checkpoint holds and which config made it
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def ckpt_info(target: str) -> int:
    from safetensors import safe_open

    from foresight.checkpoint import read_meta

    path = Path(target)
    if path.is_dir():
        found = sorted(path.rglob("*.safetensors"), key=lambda p: p.stat().st_mtime)
        if not found:
            print(f"no .safetensors checkpoint under {path}; pass a run directory from logs/ or a file", file=sys.stderr)
            return 1
        path = found[-1]
    meta = read_meta(path)
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    n = sum(math.prod(s) for s in shapes.values())
    cfg = meta.get("config", {})
    print(f"{path}\n  option {meta.get('option')}  step {meta.get('step')}  {len(shapes)} tensors, {n:,} parameters")
    for group in ("model", "vlm", "adapter", "option"):
        node = cfg.get(group, {})
        print(f"  {group}: {node.get('_target_', '?')} {node.get('pretrained', '')}".rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="foresight", description="Foresight utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sample-data", help="regenerate the bundled sample clips", add_help=False)
    info = sub.add_parser("ckpt-info", help="describe a trainable-weights checkpoint")
    info.add_argument("target")
    args, rest = parser.parse_known_args(argv)
    if args.command == "sample-data":
        from foresight.data.sample_world import main as sample_main

        sample_main(rest)
        return 0
    return ckpt_info(args.target)


if __name__ == "__main__":
    sys.exit(main())
