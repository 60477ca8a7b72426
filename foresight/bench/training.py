"""Training steps through the real trainer from the feature cache, beside the bare DiT LoRA step.

    python -m foresight.bench.training --model ltx_2b --vlm 7b --options A B C D --compile \
        --out bench_train.json
    python -m foresight.bench.training --options C --checkpointing off --sizes 768x512x49 1216x704x121 \
        --compile
    python -m foresight.bench.training --options B --compile --lever bf16 --lever fp8 model.dit_quantize=fp8 \
        --lever graphs model.compile_mode=reduce-overhead      # each lever's effect, in the same process
    python -m foresight.bench.training --tiny --out bench_train.json     # CPU, tiny twins: what CI runs

The performance issue's training target: an option's step (adapter + LoRA r=128, bf16, batch 1,
768x512x121 = 6144 target tokens) within 1.10x the bare DiT LoRA step measured in the same run.
Each option trains through `foresight.training.train.train`, the code behind `train.py ... data=features`:
FeatureDataModule reading feature shards written here at full size (random values: speed does not
depend on them), the LightningModule, AdamW and its schedule, gradient clipping, the training-state
and progress callbacks. Its step time is `perf/step_ms` (foresight.training.progress.StepTimes): the median
wall time between step ends over the last `--steps` steps, after `--warmup` steps (compilation).
Each row also gives `perf/host_syncs` (how often a timed step made the host wait for the GPU) and
the last step's loss: every lever trains the same seed on the same data, so a lever that changes
the arithmetic (fp8) moves the loss a little, and one that breaks it shows.
The bare step (DiT + LoRA alone on in-memory latents: no adapter, no data, no Lightning) is timed
in the same process at each DiT sequence length the options use: the target's tokens, and option
C's with its prepended conditioning frame (C's DiT reads more tokens by design; both ratios are kept).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from foresight.bench.data import write_feature_shard
from foresight.bench.prediction import (
    add_run_arguments,
    bare_lora_loss,
    lora_step_flops,
    mfu,
    random_ltx,
    repeat_in_processes,
    run_meta,
    time_train_step,
)
from foresight.config import compose
from foresight.models.ltx import latent_grid
from foresight.models.vlm import SIZES
from foresight.training.train import train


def cached_shapes(cfg, vlm_size: str, vlm_tokens: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(VLM states, caption states) shapes of one cached clip, as preprocess.py writes them for cfg."""
    width = SIZES[vlm_size]["text"]["hidden_size"] * len(cfg.vlm.layers)
    return (vlm_tokens, width), (
        cfg.model.text_max_tokens,
        cfg.model.architecture.transformer.caption_channels,
    )


def dit_grid(option: str, grid: tuple[int, int, int], cfg) -> tuple[int, int, int] | None:
    """The latent grid whose token count is the DiT sequence of `option` (None: A calls no DiT)."""
    f, h, w = grid
    if option == "A":
        return None
    if option == "C":
        return (2 * f, h, w) if cfg.option.placement == "target" else (f + cfg.option.cond_frames, h, w)
    return grid


def overrides(args, option: str, shards: str, out_dir: Path, checkpointing: bool) -> list[str]:
    """train.py's command line for this option, model and size (everything on the one device)."""
    tiny = args.tiny
    device = "cpu" if tiny else "cuda"
    lora = (
        [] if option == "A" else [f"option.lora.rank={args.lora_rank}", f"option.lora.alpha={args.lora_rank}"]
    )
    return [
        f"option={option}",
        *lora,
        f"model={'tiny' if tiny else args.model}",
        f"model.compile={args.compile}",
        f"model.attention_backend={args.attention or 'null'}",
        f"model.gradient_checkpointing={checkpointing}",
        *([] if tiny else ["model.twin=random", f"+model.device={device}"]),
        f"vlm={'tiny' if tiny else 'qwen2_5_vl_' + args.vlm}",
        *([] if tiny else ["vlm.twin=random", f"+vlm.size={args.vlm}", f"+vlm.device={device}"]),
        f"adapter.width={args.adapter_width}",
        f"adapter.heads={max(1, args.adapter_width // 64)}",
        "data=features",
        f"data.train_shards='{shards}'",
        f"data.val_shards='{shards}'",
        "data.batch_size=1",
        f"data.num_workers={args.workers}",
        f"trainer={'cpu' if tiny else 'gpu'}",
        f"trainer.max_steps={args.warmup + args.steps}",
        "trainer.limit_val_batches=0",
        "~callbacks.sample_videos",
        f"callbacks.step_times.window={args.steps}",
        f"callbacks.host_syncs.after={args.warmup}",
        "logger=none",
        f"paths.output_dir={out_dir}",
        *(["paths.cache_dir=" + args.cache_dir] if args.cache_dir else []),
        *(v.replace("{option}", option) for v in args.set),
    ]


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def bare_steps(args, grids: set[tuple[int, int, int]], caption: tuple[int, int], device, dtype) -> dict:
    """Bare DiT LoRA step per grid (and with gradient checkpointing): {(grid, ckpt): (ms, peak)}."""
    ltx = random_ltx(
        args.model,
        device,
        str(dtype).split(".")[-1],
        text_encoder=False,  # no T5: captions are random states here
        compile=args.compile,
        attention_backend=args.attention,
    )
    ltx.add_lora(rank=args.lora_rank, alpha=args.lora_rank, targets=["to_q", "to_k", "to_v", "to_out.0"])
    lora = [p for p in ltx.parameters() if p.requires_grad]
    tokens, width = caption
    text = torch.randn(1, tokens, width, device=device)
    text_mask = torch.ones(1, tokens, dtype=torch.bool, device=device)
    out = {}
    for checkpointing in args.checkpointing:
        (
            ltx.transformer.enable_gradient_checkpointing
            if checkpointing
            else ltx.transformer.disable_gradient_checkpointing
        )()
        for grid in sorted(grids):
            loss = bare_lora_loss(ltx, grid, text, text_mask, device)
            out[grid, checkpointing] = time_train_step(loss, lora, device, dtype, args.steps)
    flops = {grid: lora_step_flops(ltx.transformer, grid[0] * grid[1] * grid[2], tokens) for grid in grids}
    del ltx, lora
    free_memory()
    return {"times": out, "flops": flops}


def bench_size(args, size: str, tmp: Path, device, dtype) -> list[dict]:
    """Rows for one clip size: every option x checkpointing through the trainer, beside the bare step."""
    width, height, frames = (int(v) for v in size.split("x"))
    grid = latent_grid(frames, height, width)
    pattern = str(tmp / "features-{000000..000001}.tar")
    configs = {
        option: compose(overrides(args, option, pattern, tmp / "run", False)) for option in args.options
    }
    vlm_shape, caption = cached_shapes(configs[args.options[0]], args.vlm, args.vlm_tokens)
    for i in range(2):  # what preprocess.py writes, at this size
        write_feature_shard(tmp / f"features-{i:06d}.tar", 8, vlm_shape, caption, grid)
    plans = {option: dit_grid(option, grid, cfg) for option, cfg in configs.items()}
    bare = bare_steps(args, {g for g in [grid, *plans.values()] if g is not None}, caption, device, dtype)
    rows = []
    for option, (lever, *extra), checkpointing in itertools.product(
        args.options, args.lever, args.checkpointing
    ):
        run_dir = tmp / f"run_{option}_{lever}_{checkpointing}"
        cfg = compose([*overrides(args, option, pattern, run_dir, checkpointing), *extra])
        started = time.perf_counter()
        try:
            metrics = train(cfg)["metrics"]
            step_ms, peak = metrics["perf/step_ms"], metrics.get("perf/peak_gib")
            syncs, loss = metrics.get("perf/host_syncs"), metrics.get("train/loss")
        except torch.OutOfMemoryError:
            step_ms, peak, syncs, loss = None, "out of memory", None, None
        free_memory()
        dit = plans[option]
        same_ms = bare["times"][dit, checkpointing][0] if dit else None
        target_ms = bare["times"][grid, checkpointing][0]
        row = {
            "option": option,
            "lever": lever,
            "lever_overrides": extra,
            "size": size,
            "checkpointing": checkpointing,
            "target_tokens": grid[0] * grid[1] * grid[2],
            "dit_tokens": dit[0] * dit[1] * dit[2] if dit else 0,
            "step_ms": step_ms,
            "peak_gib": peak,
            "host_syncs_per_step": syncs,
            "loss": loss,
            "bare_same_tokens_ms": same_ms,
            "bare_same_tokens_peak_gib": bare["times"][dit, checkpointing][1] if dit else None,
            "ratio_same_tokens": step_ms / same_ms if step_ms and same_ms else None,
            "bare_target_tokens_ms": target_ms,
            "ratio_target_tokens": step_ms / target_ms if step_ms and target_ms else None,
            "mfu": mfu(bare["flops"][dit], step_ms, device) if dit else None,
            "run_s": round(time.perf_counter() - started, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ltx_2b")
    parser.add_argument("--vlm", default="7b", choices=["7b", "3b"])
    parser.add_argument("--sizes", nargs="+", default=["768x512x121"], help="WxHxF of the target clip")
    parser.add_argument("--options", nargs="+", default=["A", "B", "C", "D"])
    parser.add_argument(
        "--checkpointing",
        nargs="+",
        default=["off", "on"],
        choices=["off", "on"],
        help="gradient checkpointing of the DiT blocks: each value a row",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random twins on CPU (the CI mode)")
    parser.add_argument("--warmup", type=int, default=8, help="steps before timing (compilation, allocator)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    parser.add_argument("--lora-rank", type=int, default=128)
    parser.add_argument("--adapter-width", type=int, default=1024)
    parser.add_argument(
        "--vlm-tokens", type=int, default=567, help="cached VLM states per clip (4 frames + prompt)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="model.compile=true (DiT blocks, VAE decoder)")
    parser.add_argument("--cache-dir", default=None, help="paths.cache_dir for the tiny twins")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="more train.py overrides for every run ('{option}' is replaced by the option)",
    )
    parser.add_argument(
        "--lever",
        nargs="+",
        action="append",
        metavar="NAME [KEY=VALUE ...]",
        help="train every option once per lever: a name and its train.py overrides (repeatable; default: "
        "one lever named base with none); the bare step stays plain diffusers + peft",
    )
    add_run_arguments(parser, default_out="bench_train.json")
    args = parser.parse_args(argv)
    args.lever = args.lever or [["base"]]
    names = [lever[0] for lever in args.lever]
    if len(set(names)) < len(names) or any("=" in name for name in names):
        parser.error(f"--lever: each starts with its own name, then its overrides (got names {names})")
    if args.repeats > 1:
        return repeat_in_processes(
            "foresight.bench.training", sys.argv[1:] if argv is None else argv, args.repeats, args.out
        )
    args.checkpointing = [v == "on" for v in args.checkpointing]
    if args.tiny:
        args.model, args.vlm, args.sizes, args.lora_rank, args.adapter_width = (
            "tiny",
            "tiny",
            ["64x64x17"],
            4,
            64,
        )
        args.vlm_tokens = 30

    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows += bench_size(args, size, Path(tmp), device, dtype)
    meta = run_meta(
        device,
        args.model,
        args.vlm,
        "bfloat16" if dtype == torch.bfloat16 else "float32",
        args.lora_rank,
        args.adapter_width,
        args.compile,
    )
    meta |= {
        "attention_backend": args.attention,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "vlm_tokens": args.vlm_tokens,
        "workers": args.workers,
        "overrides": args.set,
        "levers": args.lever,
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
