"""Peak GPU memory of live training: the VLM and T5 resident, every step encoding its clip.

    python -m foresight.bench.memory --option B --vlm 7b --quantize int8 --checkpointing --vae-tiling 256
    python -m foresight.bench.memory --tiny --out bench_memory.json     # CPU, tiny twins: what CI runs

One training step as `train.py` runs it without the feature cache (module.features encodes the
context with the VLM, the caption with T5 and the target with the VAE; the option's loss; backward;
AdamW), on random full-size models (2B DiT + LoRA r=128, Qwen2.5-VL, T5-XXL; bf16) and random
frames: memory and speed do not depend on the values. The levers, each a config key: int8 weights for
the frozen encoders (vlm.quantize, model.text_encoder_quantize), gradient checkpointing of the DiT
(model.gradient_checkpointing) and a tiled VAE (model.vae_tiling). What each costs in accuracy is
measured on the same inputs: the encoders' outputs against bf16 (relative error), the tiled VAE's
latents against untiled ones.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from hydra.utils import instantiate

from foresight.bench.prediction import (
    PROMPT,
    add_run_arguments,
    peak_gib,
    random_ltx,
    random_vlm,
    relative_error,
    repeat_in_processes,
    run_meta,
    time_train_step,
)
from foresight.config import compose
from foresight.features import frames_to_video
from foresight.models.quantize import quantize_encoders

CAPTION = "a red ball rolls to the left across a wooden table"


def build(args, device: torch.device, dtype_name: str):
    """(module, config) for the option: tiny twins (CPU) or random full-size models on the GPU."""
    lora = (
        []
        if args.option == "A"
        else [f"option.lora.rank={args.lora_rank}", f"option.lora.alpha={args.lora_rank}"]
    )
    common = [
        "logger=none",
        f"option={args.option}",
        *lora,
        f"adapter.width={args.adapter_width}",
        f"adapter.heads={max(1, args.adapter_width // 64)}",
    ]
    if args.tiny:
        cfg = compose(
            [
                *common,
                "model=tiny",
                "vlm=tiny",
                *([f"paths.cache_dir={args.cache_dir}"] if args.cache_dir else []),
            ]
        )
        ltx = instantiate(cfg.model, gradient_checkpointing=args.checkpointing, vae_tiling=args.vae_tiling)
        vlm = instantiate(cfg.vlm, preprocess="tensor")
    else:
        cfg = compose([*common, f"model={args.model}", f"vlm=qwen2_5_vl_{args.vlm}"])
        ltx = random_ltx(
            args.model,
            device,
            dtype_name,
            gradient_checkpointing=args.checkpointing,
            vae_tiling=args.vae_tiling,
            attention_backend=args.attention,
        )
        vlm = random_vlm(args.vlm, device, dtype_name, preprocess="tensor")
    option = instantiate(cfg.option)
    module = instantiate(cfg.module)(vlm=vlm, ltx=ltx, option=option, adapter=instantiate(cfg.adapter))
    return module.to(device), cfg


def bench(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype_name = "bfloat16" if dtype == torch.bfloat16 else "float32"
    width, height, frames = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    module, _ = build(args, device, dtype_name)
    vlm, ltx = module.vlm, module.ltx
    g = torch.Generator(device).manual_seed(0)
    batch = {
        "context": torch.randint(
            0, 256, (1, args.context_frames, height, width, 3), dtype=torch.uint8, device=device, generator=g
        ),
        "target": torch.randint(
            0, 256, (1, frames, height, width, 3), dtype=torch.uint8, device=device, generator=g
        ),
        "caption": [CAPTION],
        "prompt": [PROMPT],
        "fps": torch.tensor([24.0], device=device),
    }
    row = {
        "option": args.option,
        "size": args.size,
        "quantize": args.quantize,
        "checkpointing": args.checkpointing,
        "vae_tiling": args.vae_tiling,
    }
    if args.quantize:  # the encoders' outputs on the same inputs, before and after
        states, _ = vlm(batch["context"], batch["prompt"])
        text, _ = ltx.text_encoder(batch["caption"])
        quantize_encoders(vlm, ltx.text_encoder, args.quantize, "--quantize")
        row["vlm_relative_error"] = relative_error(vlm(batch["context"], batch["prompt"])[0], states)
        row["t5_relative_error"] = relative_error(ltx.text_encoder(batch["caption"])[0], text)
        del states, text
    if args.vae_tiling:  # the tiled VAE's latents against untiled ones (and what untiled encoding peaks at)
        video = frames_to_video(batch["target"])
        with torch.no_grad():
            tiled = ltx.encode(video)
            ltx.vae.disable_tiling()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                row["vae_tiling_latent_error"] = relative_error(tiled, ltx.encode(video))
                row["vae_untiled_encode_peak_gib"] = peak_gib(device)
            except torch.OutOfMemoryError:
                row["vae_tiling_latent_error"] = row["vae_untiled_encode_peak_gib"] = "out of memory"
            ltx.vae.use_tiling = True
        del video, tiled
    if device.type == "cuda":
        torch.cuda.empty_cache()
        row["weights_gib"] = torch.cuda.memory_allocated() / 2**30
    params = [p for p in module.parameters() if p.requires_grad]

    def loss() -> torch.Tensor:
        return module.option.loss(module.adapter, ltx, module.features(batch), training=True)["loss"]

    row["step_ms"], row["peak_gib"] = time_train_step(loss, params, device, dtype, args.steps)
    if device.type == "cuda":
        row["reserved_peak_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ltx_2b")
    parser.add_argument("--vlm", default="7b", choices=["7b", "3b"])
    parser.add_argument("--option", default="B", choices=["A", "B", "C", "D"])
    parser.add_argument("--size", default="768x512x121", help="WxHxF of the target clip")
    parser.add_argument("--context-frames", type=int, default=4)
    parser.add_argument(
        "--quantize", choices=["int8"], default=None, help="vlm.quantize and model.text_encoder_quantize"
    )
    parser.add_argument("--checkpointing", action="store_true", help="model.gradient_checkpointing")
    parser.add_argument(
        "--vae-tiling", type=int, default=None, metavar="PX", help="model.vae_tiling (tile side)"
    )
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps (after 2 warm-up steps; the median)"
    )
    parser.add_argument("--lora-rank", type=int, default=128)
    parser.add_argument("--adapter-width", type=int, default=1024)
    parser.add_argument("--tiny", action="store_true", help="tiny twins on CPU (the CI mode)")
    parser.add_argument("--cache-dir", default=None, help="paths.cache_dir for the tiny twins")
    add_run_arguments(parser, default_out="bench_memory.json")
    args = parser.parse_args(argv)
    if args.repeats > 1:
        return repeat_in_processes(
            "foresight.bench.memory", sys.argv[1:] if argv is None else argv, args.repeats, args.out
        )
    if args.tiny:
        args.size, args.lora_rank, args.adapter_width = "64x64x17", 4, 64
    row = bench(args)
    print(json.dumps(row), flush=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    meta = run_meta(
        device,
        "tiny" if args.tiny else args.model,
        "tiny" if args.tiny else args.vlm,
        "bfloat16" if device.type == "cuda" else "float32",
        args.lora_rank,
        args.adapter_width,
        False,
    )
    meta |= {"attention_backend": args.attention, "timed_steps": args.steps, "live": True}
    args.out.write_text(json.dumps({"meta": meta, "rows": [row]}, indent=2))
    return [row]


if __name__ == "__main__":
    main()
