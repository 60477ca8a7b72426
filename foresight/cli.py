"""The `foresight` command.

foresight data sample [--out data/sample ...]            regenerate the bundled sample clips
foresight data make-shards INPUT... --out DIR             folders/manifests -> probed webdataset shards
foresight data inspect SHARDS...                          counts, durations, sizes, undecodable samples
foresight ckpt-info RUN_DIR_OR_FILE                       what a checkpoint holds and which config made it
foresight compare SOURCE... --out DIR [--by KEY]          runs by group: report.md/.html, summary.json
foresight world render|pretrain|evaluate|checksums ...    the pretrained world (foresight/world/cli.py)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from foresight.console import one_line_errors


def ckpt_info(target: str) -> int:
    """What a weights file (or a run directory's checkpoints/last.safetensors) holds and which config
    made it; a training-state file is described as one, with how to continue it."""
    from safetensors import safe_open

    from foresight.training.resume import is_training_state, read_state
    from foresight.training.weights import find_weights, read_meta

    path = Path(target)
    if path.is_file() and is_training_state(path):
        state = read_state(path)
        print(
            f"{path}\n  training state at step {state['global_step']} of run group "
            f"{(state.get('experiment') or {}).get('run_group')}; "
            f"continue it: python train.py ckpt_path={path}"
        )
        return 0
    path = find_weights(path)
    meta = read_meta(path)
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    n = sum(math.prod(s) for s in shapes.values())
    cfg = meta.get("config", {})
    print(
        f"{path}\n  option {meta.get('option')}  step {meta.get('step')}  "
        f"{len(shapes)} tensors, {n:,} parameters"
    )
    for group in ("model", "vlm", "adapter", "option"):
        node = cfg.get(group, {})
        print(f"  {group}: {node.get('_target_', '?')} {node.get('pretrained', '')}".rstrip())
    return 0


def data_command(args: argparse.Namespace, rest: list[str]) -> int:
    from foresight.data import shards

    if args.data_command == "sample":
        from foresight.data.sample_world import main as sample_main

        sample_main(rest)
        return 0
    try:
        if args.data_command == "make-shards":
            print(
                shards.make_shards(args.inputs, args.out, args.prefix, args.maxcount, args.maxsize).summary(
                    args.out
                )
            )
            return 0
        for spec in args.shards:
            print(f"{spec}\n{shards.format_inspection(shards.inspect(spec))}")
    except (ValueError, FileNotFoundError) as e:  # a wrong input: one line naming it, no traceback
        print(f"foresight data {args.data_command}: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="foresight", description="Foresight utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="sample data, writing and inspecting shards")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_sub.add_parser("sample", help="regenerate the bundled sample clips", add_help=False)
    make = data_sub.add_parser("make-shards", help="write probed webdataset shards from folders or manifests")
    make.add_argument("inputs", nargs="+", help="folders of clip.mp4 + clip.txt, or .csv/.jsonl manifests")
    make.add_argument("--out", required=True)
    make.add_argument("--prefix", default="clips")
    make.add_argument("--maxcount", type=int, default=1000, help="samples per shard at most")
    make.add_argument("--maxsize", type=float, default=1e9, help="bytes per shard at most")
    inspect_p = data_sub.add_parser("inspect", help="summarise shards (brace patterns allowed)")
    inspect_p.add_argument("shards", nargs="+")
    info = sub.add_parser("ckpt-info", help="describe a trainable-weights checkpoint")
    info.add_argument("target")
    cmp = sub.add_parser("compare", help="compare runs by group: report.md, report.html, summary.json, plots")
    cmp.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="run or sweep directories (searched for .hydra/) or wandb:ENTITY/PROJECT",
    )
    cmp.add_argument("--out", required=True, help="directory for the report")
    cmp.add_argument(
        "--by",
        default="run_group",
        help="dotted config key to group by (a _target_ node groups by class name: option)",
    )
    sub.add_parser(
        "world",
        help="render the world, pretrain and evaluate its frozen parts, check its files",
        add_help=False,
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "world":
        from foresight.world.cli import main as world_main

        return world_main(rest)
    if rest and not (args.command == "data" and args.data_command == "sample"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    with one_line_errors(f"foresight {args.command}"):
        if args.command == "data":
            return data_command(args, rest)
        if args.command == "compare":
            from foresight.eval.compare import compare

            print("\n".join(compare(args.sources, args.out, args.by)["files"]))
            return 0
        return ckpt_info(args.target)


if __name__ == "__main__":
    sys.exit(main())
