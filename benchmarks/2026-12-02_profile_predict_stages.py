"""Where prediction's stages spend their time, per lever, in one process (leads, not figures).

For each variant of a stage: the median of `--iters` calls after 3 (synchronised), the GPU's busy
time and kernel time by kind over 3 profiled calls (foresight.bench.profiling), and the output's
relative L2 error against the stage's first variant on the same inputs (a lever that breaks the
arithmetic shows). Stages, at 768x512x121 with random full-size weights in bf16:

  dit     one DiT velocity (6144 tokens): eager, compiled, graphs (compile_mode=reduce-overhead),
          then the fp8 DiT compiled and with graphs (fp8 is not undone, so it comes last)
  decode  the 0.9.5 denoising decoder, eager and compiled, each in the default layout and in
          channels_last_3d (what LTXVideo uses on a GPU), then the latter with cudnn.benchmark
  tuning  the fp8 DiT compiled and the channels-last decoder compiled (prediction's stages as
          LTXVideo runs them on a GPU) under inductor's tuning settings (INDUCTOR below): do better
          generated kernels take the fused norms, activations and fp8 casts nearer the bandwidth?
          `--tuning-stages dit decode` picks which (each setting compiles afresh: minutes)
  vlm     the 7B VLM on 4 frames + prompt, tensor preprocessing: without the KV cache (as
          FrozenVLM runs), with it (transformers' default), with its vision and text blocks compiled

    OUT=. python benchmarks/2026-12-02_profile_predict_stages.py --stages dit decode vlm
    OUT=. python benchmarks/2026-12-02_profile_predict_stages.py --stages tuning --tuning-stages dit
    OUT=/tmp python benchmarks/2026-12-02_profile_predict_stages.py --tiny     # the script's own check, CPU

Writes $OUT/predict_stages.json (rows, rewritten after each variant: what finished survives a
timeout) and appends each variant's kernel table to $OUT/profiles.txt.
"""

import argparse
import json
import os
import statistics
import sys
import time
import traceback

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from foresight.bench.prediction import PROMPT, random_ltx, random_vlm, relative_error
from foresight.bench.profiling import busy_ms, ms_by_kind
from foresight.models.compiled import compile_blocks
from foresight.models.ltx import LTXVideo, grid_positions, latent_grid, rope_coords, unpack

OUT = os.environ.get("OUT", ".")
ROWS: list[dict] = []
TINY = "--tiny" in sys.argv  # tiny twins on the CPU: checks the script, measures nothing
DEVICE = torch.device("cpu" if TINY else "cuda")
DTYPE = "float32" if TINY else "bfloat16"
WIDTH, HEIGHT, FRAMES = (64, 64, 17) if TINY else (768, 512, 121)


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def measure(stage: str, variant: str, fn, iters: int, reference: torch.Tensor | None) -> torch.Tensor:
    """Times fn, profiles 3 calls, records the row; returns fn's output (the reference of the stage)."""
    row = {"stage": stage, "variant": variant}
    try:
        for _ in range(3):  # compilation, graph capture, cuDNN's algorithm search
            out = fn()
        times = []
        for _ in range(iters):
            sync()
            start = time.perf_counter()
            out = fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                fn()
            sync()
        events = prof.events()
        out = out[0] if isinstance(out, tuple) else out
        out = out.float().clone()  # a graph's output is overwritten by its next replay
        row |= {
            "ms": statistics.median(times),
            "ms_range": [min(times), max(times)],
            "busy_ms": busy_ms(events) / 3,
            "kernel_ms_by_kind": {k: round(v / 3, 2) for k, v in ms_by_kind(events).items()},
        }
        if reference is not None:
            row["rel_error_vs_first"] = relative_error(out, reference)
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90)
        with open(os.path.join(OUT, "profiles.txt"), "a") as f:
            f.write(f"\n{stage} {variant}\n{table}")
    except Exception as e:  # a lever that fails is a result, not the end of the series
        row["error"] = f"{type(e).__name__}: {e}"[:500]
        traceback.print_exc()
        out = None
    ROWS.append(row)
    print(json.dumps(row), flush=True)
    with open(os.path.join(OUT, "predict_stages.json"), "w") as f:
        json.dump(
            {
                "device": str(DEVICE) if TINY else torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "rows": ROWS,
            },
            f,
            indent=1,
        )
    return out


# torch._inductor.config settings the tuning stage compiles under, each against the first
INDUCTOR = {
    "default": {},
    # inductor times neighbouring launch configurations (block sizes, warps) of each generated kernel
    "coordinate_descent": {"coordinate_descent_tuning": True},
    # ... and autotunes pointwise/reduction kernels and the matmuls as mode="max-autotune" does
    "max_autotune": {"max_autotune": True, "max_autotune_pointwise": True, "coordinate_descent_tuning": True},
}


def recompile(blocks, mode: str | None) -> None:
    """The blocks compiled as LTXVideo and FrozenVLM compile them, in `mode` ("eager": not at all),
    dynamo's caches and CUDA graphs cleared first."""
    torch._dynamo.reset()
    for block in blocks:
        block._compiled_call_impl = None
    if mode != "eager":
        compile_blocks(blocks, mode)


def ltx_and_inputs(
    dit_quantize: str | None = None,
) -> tuple[LTXVideo, tuple[Tensor, ...], tuple[int, int, int]]:
    """The random video model (no T5: captions are random states here), one DiT call's inputs
    (x, t_tok, coords, text, text_mask) at the profiled size, and its latent grid."""
    torch.manual_seed(0)
    ltx = random_ltx(
        "tiny" if TINY else "ltx_2b", DEVICE, DTYPE, text_encoder=False, dit_quantize=dit_quantize
    )
    grid = latent_grid(FRAMES, HEIGHT, WIDTH)
    n = grid[0] * grid[1] * grid[2]
    g = torch.Generator(DEVICE).manual_seed(0)
    x = torch.randn(1, n, ltx.latent_channels, device=DEVICE, generator=g)
    t_tok = torch.full((1, n), 0.5, device=DEVICE)
    coords = rope_coords(grid_positions(grid, device=DEVICE), torch.tensor([24.0], device=DEVICE))
    text = torch.randn(1, 256, ltx.caption_dim, device=DEVICE, generator=g)
    text_mask = torch.ones(1, 256, dtype=torch.bool, device=DEVICE)
    return ltx, (x, t_tok, coords, text, text_mask), grid


def dit_and_decode(stages: list[str], iters: int) -> None:
    ltx, (x, t_tok, coords, text, text_mask), grid = ltx_and_inputs()
    blocks = ltx.transformer.transformer_blocks
    with torch.no_grad():
        if "dit" in stages:
            ref = None
            for variant, quantize, mode in (
                ("eager", None, "eager"),
                ("compiled", None, None),
                ("graphs", None, "reduce-overhead"),
                ("fp8_compiled", "fp8", None),
                ("fp8_graphs", "fp8", "reduce-overhead"),
            ):
                if quantize and variant == "fp8_compiled":
                    ltx.quantize_dit(quantize)
                recompile(blocks, mode)
                out = measure(
                    "dit", variant, lambda: ltx.velocity(x, t_tok, coords, text, text_mask), iters, ref
                )
                ref = out if ref is None else ref
        if "decode" in stages:
            latents = unpack(x, grid)
            decoder = ltx.vae.decoder

            def decode():
                return ltx.decode(latents, generator=torch.Generator(DEVICE).manual_seed(1))

            ref = None
            for variant, mode in (
                ("eager", "eager"),
                ("eager_channels_last", "eager"),
                ("compiled", None),
                ("compiled_channels_last", None),  # what LTXVideo does on a GPU
                ("compiled_channels_last_cudnn_benchmark", None),
            ):
                torch.backends.cudnn.benchmark = variant.endswith("cudnn_benchmark")
                fmt = torch.channels_last_3d if "channels_last" in variant else torch.contiguous_format
                decoder.to(memory_format=fmt)
                recompile([decoder], mode)
                out = measure("decode", variant, decode, iters, ref)
                ref = out if ref is None else ref
            torch.backends.cudnn.benchmark = False


def tuning(stages: list[str], iters: int) -> None:
    """Prediction's compiled stages as LTXVideo runs them on a GPU, under each INDUCTOR setting."""
    ltx, (x, t_tok, coords, text, text_mask), grid = ltx_and_inputs(None if TINY else "fp8")
    latents = unpack(x, grid)
    if not TINY:
        ltx.vae.decoder.to(memory_format=torch.channels_last_3d)
    calls = {
        "dit": (ltx.transformer.transformer_blocks, lambda: ltx.velocity(x, t_tok, coords, text, text_mask)),
        "decode": (
            [ltx.vae.decoder],
            lambda: ltx.decode(latents, generator=torch.Generator(DEVICE).manual_seed(1)),
        ),
    }
    with torch.no_grad():
        for stage in stages:
            blocks, fn = calls[stage]
            ref = None
            for name, settings in INDUCTOR.items():
                with torch._inductor.config.patch(settings):
                    recompile(blocks, None)
                    out = measure(f"{stage}_tuning", name, fn, iters, ref)
                ref = out if ref is None else ref


def vlm_stage(iters: int) -> None:
    torch.manual_seed(0)
    vlm = random_vlm(
        "tiny" if TINY else "7b",
        DEVICE,
        DTYPE,
        max_pixels=56 * 56 if TINY else 448 * 448,
        preprocess="tensor",
    )
    context = torch.randint(0, 256, (1, 4, HEIGHT, WIDTH, 3), dtype=torch.uint8)
    forward = vlm.model.forward

    def with_cache(*args, **kwargs):  # transformers' default: a KV cache built in every layer
        return forward(*args, **(kwargs | {"use_cache": True}))

    ref = measure("vlm", "no_cache", lambda: vlm(context, [PROMPT]), iters, None)
    vlm.model.forward = with_cache
    measure("vlm", "cache", lambda: vlm(context, [PROMPT]), iters, ref)
    del vlm.model.forward  # back to the class's forward (no cache)
    for variant, mode in (("compiled", None), ("graphs", "reduce-overhead")):
        recompile([*vlm.model.visual.blocks, *vlm.model.language_model.layers], mode)
        measure("vlm", variant, lambda: vlm(context, [PROMPT]), iters, ref)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stages", nargs="+", default=["dit", "decode", "vlm"], choices=["dit", "decode", "vlm", "tuning"]
    )
    parser.add_argument("--tuning-stages", nargs="+", default=["dit", "decode"], choices=["dit", "decode"])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="tiny twins on the CPU (checks the script)")
    args = parser.parse_args()
    if {"dit", "decode"} & set(args.stages):
        dit_and_decode(args.stages, args.iters)  # its models are freed on return, before the VLM loads
    if "tuning" in args.stages:
        tuning(args.tuning_stages, args.iters)
    if "vlm" in args.stages:
        vlm_stage(args.iters)
