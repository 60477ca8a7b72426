"""`foresight world ...`: render the world's shards, pretrain its frozen parts, measure them, check the files.

foresight world render    [--out data/world] [--train 256] [--val 32] [--heldout 32] [--heldout-long 32]
                          [--train-long 0] [--chunks 3]
foresight world pretrain  [--out weights/world] [--work .cache/world_pretrain] [--stage all|vae|dit]
                          (--vae-steps N | --vae-minutes M) (--dit-steps N | --dit-minutes M) ...
foresight world evaluate  [--weights weights/world] [--split heldout] [--clips 256] [--out DIR]
foresight world checksums [--weights weights/world] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foresight.config import ROOT


def model_config(name: str, overrides: list[str] = ()):
    """The composed model config: conf/model/<name>.yaml with its defaults and these overrides."""
    from foresight.config import compose

    return compose([f"model={name}", "logger=none", *overrides]).model


def render(args: argparse.Namespace) -> int:
    from foresight.world.scene import rollout_frames
    from foresight.world.shards import write_world

    if args.chunks < 1:
        print(
            f"foresight world render: --chunks {args.chunks}: a long clip holds at least one prediction "
            f"window (--chunks 1 or more)",
            file=sys.stderr,
        )
        return 2
    counts = {
        "train": args.train,
        "val": args.val,
        "heldout": args.heldout,
        "heldout_long": args.heldout_long,
        "train_long": args.train_long,
    }
    paths = write_world(args.out, counts, args.chunks)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {args.train} train, {args.val} val, {args.heldout} held-out, {args.heldout_long} long "
        f"held-out and {args.train_long} long train clips ({rollout_frames(args.chunks)} frames) in "
        f"{len(paths)} shards ({size / 1e6:.1f} MB) to {args.out}"
    )
    return 0


def pretrain(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from foresight.world import pretrain as pt

    stages = pt.STAGES if args.stage == "all" else (args.stage,)
    settings = {}
    for stage, base in (("vae", pt.VAE), ("dit", pt.DIT)):
        steps, minutes = getattr(args, f"{stage}_steps"), getattr(args, f"{stage}_minutes")
        if stage in stages and steps is None and minutes is None:
            print(
                f"foresight world pretrain: give the {stage} stage a length: --{stage}-steps N or "
                f"--{stage}-minutes M",
                file=sys.stderr,
            )
            return 2
        settings[stage] = pt.settings_from(
            base, steps, minutes, getattr(args, f"{stage}_batch"), getattr(args, f"{stage}_lr")
        )
    pt.pretrain(
        OmegaConf.to_container(model_config(args.model), resolve=True),
        args.out,
        args.work,
        stages,
        settings["vae"],
        settings["dit"],
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        save_every=args.save_every,
        log_every=args.log_every,
        stats_clips=args.stats_clips,
        monitor_clips=args.monitor_clips,
    )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    import torch
    from hydra.utils import instantiate

    from foresight.world import quality

    ltx = instantiate(model_config(args.model, [f"model.pretrained={args.weights.resolve() / 'ltx'}"]))
    ltx.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result = quality.evaluate(ltx, args.split, args.clips, args.batch, args.seed, args.steps)
    print(quality.markdown(result))
    if args.out:
        print("\n".join(str(p) for p in quality.write(result, args.out)))
    return 0


def checksums(args: argparse.Namespace) -> int:
    from foresight.world import ship

    if args.write:
        print(ship.write_checksums(args.weights))
        return 0
    problems = ship.verify(args.weights)
    for p in problems:
        print(f"{args.weights}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.weights}: every file matches {ship.CHECKSUMS}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    from foresight.world.scene import ROLLOUT_CHUNKS
    from foresight.world.ship import WEIGHTS

    parser = argparse.ArgumentParser(prog="foresight world", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write the world's clips as webdataset shards")
    r.add_argument("--out", type=Path, default=ROOT / "data" / "world")
    r.add_argument("--train", type=int, default=256)
    r.add_argument("--val", type=int, default=32)
    r.add_argument("--heldout", type=int, default=32)
    r.add_argument(
        "--heldout-long",
        type=int,
        default=32,
        help="the first held-out clips again, continued for --chunks windows (rollouts)",
    )
    r.add_argument(
        "--train-long",
        type=int,
        default=0,
        help="the first train clips again, continued for --chunks windows (data=world_rollout trains on "
        "the model's own previous chunk from them)",
    )
    r.add_argument(
        "--chunks",
        type=int,
        default=ROLLOUT_CHUNKS,
        help="windows of 17 frames a long clip scores in turn: 4 + 16 * chunks frames",
    )
    p = sub.add_parser("pretrain", help="train the world's VAE, then its DiT (resumable, seeded)")
    p.add_argument("--model", default="world", help="model config whose `architecture` sets the sizes")
    p.add_argument("--out", type=Path, default=WEIGHTS)
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / ".cache" / "world_pretrain",
        help="training state (resumed when present)",
    )
    p.add_argument("--stage", choices=["all", "vae", "dit"], default="all")
    for stage in ("vae", "dit"):
        p.add_argument(f"--{stage}-steps", type=int)
        p.add_argument(
            f"--{stage}-minutes",
            type=float,
            help="train this long (the step count is fixed after timing the first steps)",
        )
        p.add_argument(f"--{stage}-batch", type=int)
        p.add_argument(f"--{stage}-lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=4, help="processes laying out scenes")
    p.add_argument("--save-every", type=float, default=120.0, help="seconds between state saves and exports")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument(
        "--stats-clips", type=int, default=2048, help="clips the VAE's latent mean and std are measured on"
    )
    p.add_argument("--monitor-clips", type=int, default=64, help="held-out clips the VAE's PSNR is logged on")
    e = sub.add_parser("evaluate", help="the world's gates on a split it never trained on")
    e.add_argument("--model", default="world")
    e.add_argument("--weights", type=Path, default=WEIGHTS)
    e.add_argument("--split", default="heldout")
    e.add_argument("--clips", type=int, default=256)
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--steps", type=int, default=20, help="Euler steps of the DiT's sampler")
    e.add_argument("--device", default=None)
    e.add_argument("--out", type=Path, default=None, help="write world_quality.json/.md here")
    c = sub.add_parser("checksums", help="check the shipped files against SHA256SUMS (or --write it)")
    c.add_argument("--weights", type=Path, default=WEIGHTS)
    c.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    commands = {"render": render, "pretrain": pretrain, "evaluate": evaluate, "checksums": checksums}
    return commands[args.command](args)
