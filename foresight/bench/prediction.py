"""Stage timings of prediction and training with random full-size models (GPU), or tiny ones (CPU).

    python -m foresight.bench --model ltx_2b --vlm 7b --sizes 768x512x121 768x512x49 --out bench.json
    python -m foresight.bench --tiny --out bench.json      # the same code path on CPU, as CI runs it

Speed does not depend on weight values, so nothing is downloaded: the frozen models are built
with random weights at their published sizes (conf/model/*.yaml, foresight.models.vlm.SIZES).
Per size it times, each as the median of `--iters` runs after warm-up: the VLM on the context
clip, the adapter, one DiT step, the denoising decode, end-to-end prediction per option (the
options' own samplers), and LoRA training steps (the bare DiT, and option C's adapter + LoRA, each
with and without gradient checkpointing; a configuration that does not fit is reported as out of
memory) with their model FLOPs utilisation. `--compile` compiles the DiT blocks first.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import diffusers
import torch
import transformers
import yaml
from torch import Tensor

from foresight import flow
from foresight.config import CONF_DIR
from foresight.features import Features
from foresight.models.adapter import QueryAdapter
from foresight.models.graphs import CudaGraphs
from foresight.models.ltx import LTXVideo, grid_positions, latent_grid, rope_coords, unpack
from foresight.models.quantize import Fp8Linear
from foresight.models.vlm import FrozenVLM
from foresight.options.clean_latents import CleanLatents
from foresight.options.image_path import ImagePath
from foresight.options.partial_diffusion import PartialDiffusion
from foresight.options.text_path import TextPath
from foresight.predict import rollout

PROMPT = "what happens next if the red ball rolls to the left while the camera moves slowly to the right " * 3


def architecture(model: str) -> dict:
    """conf/model/<model>.yaml's architecture, with its `defaults` parent merged underneath."""
    cfg = yaml.safe_load((CONF_DIR / "model" / f"{model}.yaml").read_text())
    arch: dict = {}
    for parent in cfg.get("defaults", []):
        if isinstance(parent, str) and parent != "_self_":
            arch = architecture(parent)
    for part, values in (cfg.get("architecture") or {}).items():
        arch[part] = {**arch.get(part, {}), **values}
    return arch


def random_ltx(model: str, device: torch.device, dtype: str, **levers) -> LTXVideo:
    """conf/model/<model>.yaml's DiT and VAE with random weights, built on `device` (speed does not
    depend on weight values; nothing is downloaded): what every bench times. levers: LTXVideo's own
    (text_encoder, compile, gradient_checkpointing, attention_backend, ...)."""
    arch = architecture(model)
    return LTXVideo("", twin="random", architecture=arch, dtype=dtype, device=str(device), **levers)


def random_vlm(size: str, device: torch.device, dtype: str, **levers) -> FrozenVLM:
    """Qwen2.5-VL of the published `size` ("7b", "3b"; "tiny") with random weights on `device`, reading
    frames at conf/vlm's 448 x 448 pixels unless levers say otherwise (max_pixels, preprocess, ...)."""
    return FrozenVLM(
        "", twin="random", size=size, dtype=dtype, device=str(device), **{"max_pixels": 448 * 448, **levers}
    )


def trained_lora(ltx: LTXVideo, rank: int, generator: torch.Generator) -> None:
    """The IC-LoRA a trained B, C or D checkpoint carries into its predictions (conf/option/lora/
    ic_lora.yaml's targets, alpha = rank), with a trained LoRA's nonzero B (peft starts it at 0): B drawn
    so that the update's RMS is ~10% of a weight's (A's rows and a random DiT's weights have the same
    RMS at peft's and torch's default inits). Speed does not depend on the values; the merge's error does."""
    targets = yaml.safe_load((CONF_DIR / "option" / "lora" / "ic_lora.yaml").read_text())["targets"]
    ltx.add_lora(rank=rank, alpha=rank, targets=targets)
    for name, p in ltx.transformer.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1 / rank**0.5, generator=generator)


def relative_error(approx: Tensor, exact: Tensor) -> float:
    """|approx - exact| / |exact| over all elements, in fp32."""
    return float((approx.float() - exact.float()).norm() / exact.float().norm())


def timed(fn, device: torch.device, iters: int, warmup: int = 2) -> tuple[float, object]:
    """Median wall time in ms of fn() (synchronised on GPU), and its last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


# dense bf16 peak of the GPUs we measure on (datasheet, SXM parts), for model FLOPs utilisation
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4}


def lora_step_flops(transformer, tokens: int, text_tokens: int) -> float:
    """Model FLOPs of one LoRA training step of the DiT: the frozen weights need the forward (2 per
    weight and token) and the input gradients (2 more), but no weight gradients; attention adds
    4·N²·d per layer forward for self- and 4·N·T·d for cross-attention, three times over with backward."""
    cfg = transformer.config
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    linear = sum(p.numel() for n, p in transformer.named_parameters() if p.dim() == 2 and "lora_" not in n)
    attention = cfg.num_layers * 4 * dim * (tokens * tokens + tokens * text_tokens)
    return 4 * linear * tokens + 3 * attention


def mfu(flops: float, ms: float | None, device: torch.device) -> float | None:
    name = torch.cuda.get_device_name() if device.type == "cuda" else ""
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return None if peak is None or not ms else flops / (ms / 1e3) / (peak * 1e12)


def bench_size(
    ltx: LTXVideo,
    vlm: FrozenVLM,
    adapter_width: int,
    size: tuple[int, int, int],
    device,
    dtype,
    iters: int,
    lora_rank: int,
    context_frames: int,
    train: bool = True,
    batch: int = 1,
    rollouts: bool = True,
    dit_quantize: str | None = None,
    vlm_graphs: bool = False,
    dit_graphs: bool = False,
    merge_lora: bool = False,
) -> dict:
    """One row of stage and prediction times at `size`; batch > 1 also times each option's prediction
    of `batch` clips at once and its throughput (clips per second). dit_quantize: the DiT's linears
    are quantised here (ltx.quantize_dit), after one velocity in its own dtype to measure the error.
    vlm_graphs: the predictions' VLM replays its forward as CUDA graphs (vlm.cuda_graphs; on a GPU the
    graphed stage is timed and its error against the eager forward measured either way). dit_graphs:
    the same for the DiT's forward (model.cuda_graphs). merge_lora: the DiT's LoRA (trained_lora) is
    folded into its weights before they are quantised (predict.py's merge_lora), the error measured."""
    width, height, frames = size
    grid = latent_grid(frames, height, width)
    n = grid[0] * grid[1] * grid[2]
    g = torch.Generator(device).manual_seed(0)
    row = {"size": f"{width}x{height}x{frames}", "tokens": n}

    context = torch.randint(0, 256, (1, context_frames, height, width, 3), dtype=torch.uint8)
    vlm.graphs = ltx.graphs = None  # the stages eager first (a size before this one may have set them)
    vlm.batch_windows(False)  # transformers' own vision attention (a call per window), for comparison
    row["vlm_per_window_attention_ms"], _ = timed(lambda: vlm(context, [PROMPT]), device, iters)
    vlm.batch_windows(True)
    chosen, vlm.preprocess = vlm.preprocess, "pil"
    row["vlm_ms"], (states, mask) = timed(lambda: vlm(context, [PROMPT]), device, iters)
    # the part of it spent on the CPU resizing and patching the frames (the image processor's PIL path)
    row["vlm_preprocess_ms"], _ = timed(lambda: vlm.video_patches(context[0].numpy()), device, iters)
    vlm.preprocess = "tensor"  # the same steps as tensor ops on the device (vlm.preprocess=tensor)
    row["vlm_tensor_ms"], (eager, real) = timed(lambda: vlm(context, [PROMPT]), device, iters)
    if device.type == "cuda":  # the same forward replayed as CUDA graphs (vlm.cuda_graphs), its tokens
        vlm.graphs = CudaGraphs(vlm.states)  # padded to a multiple of GRAPH_TOKENS
        row["vlm_tensor_graphs_ms"], (graphed, _) = timed(lambda: vlm(context, [PROMPT]), device, iters)
        padded = vlm.states(vlm.inputs(context, [PROMPT], None))  # the same padded inputs, eager
        row["vlm_graphs_error"] = relative_error(graphed, padded)
        # what the padding changes in the real tokens' states: in fp32 nothing (tests/test_encoders.py,
        # tiny twin); in bf16 the rounding of kernels tiling a longer sequence, amplified by the layers
        row["vlm_padding_error"] = relative_error(padded[:, : eager.shape[1]][real], eager[real])
    vlm.graphs = CudaGraphs(vlm.states) if vlm_graphs else None
    row["vlm_tensor_preprocess_ms"], _ = timed(
        lambda: vlm.video_patches_tensor(context.to(device)), device, iters
    )
    vlm.preprocess = chosen  # what the predictions below use (--vlm-preprocess)
    row["vlm_tokens"] = int(mask.sum())
    text = torch.randn(1, 256, ltx.caption_dim, device=device, dtype=dtype, generator=g)
    text_mask = torch.ones(1, 256, dtype=torch.bool, device=device)
    first = torch.randn(1, ltx.latent_channels, 1, grid[1], grid[2], device=device, generator=g)
    feats = Features(states, mask, text, text_mask, first, grid, torch.tensor([24.0], device=device))

    x = torch.randn(1, n, ltx.latent_channels, device=device, generator=g)
    t_tok = torch.full((1, n), 0.5, device=device)
    coords = rope_coords(grid_positions(grid, device=device), feats.fps)
    # the DiT as predictions run it: bf16 autocast on a GPU (a LoRA's fp32 weights then run in bf16)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
        if merge_lora and any("lora_" in n for n, _ in ltx.transformer.named_parameters()):
            wrapped = ltx.velocity(x, t_tok, coords, text, text_mask)
            ltx.merge_lora()
            merged = ltx.velocity(x, t_tok, coords, text, text_mask)
            row["dit_merge_lora_error"] = relative_error(merged, wrapped)
        if dit_quantize and not any(isinstance(m, Fp8Linear) for m in ltx.transformer.modules()):
            exact = ltx.velocity(x, t_tok, coords, text, text_mask)
            ltx.quantize_dit(dit_quantize)
            approx = ltx.velocity(x, t_tok, coords, text, text_mask)
            row[f"dit_{dit_quantize}_velocity_error"] = relative_error(approx, exact)
        row["dit_step_ms"], eager = timed(
            lambda: ltx.velocity(x, t_tok, coords, text, text_mask), device, iters
        )
        if device.type == "cuda":  # the same forward replayed as a CUDA graph (model.cuda_graphs)
            ltx.graphs = CudaGraphs(ltx.dit)
            row["dit_step_graphs_ms"], graphed = timed(
                lambda: ltx.velocity(x, t_tok, coords, text, text_mask), device, iters
            )
            row["dit_graphs_error"] = relative_error(graphed, eager)
    with torch.no_grad():
        ltx.graphs = CudaGraphs(ltx.dit) if dit_graphs else None
        row["decode_ms"], _ = timed(lambda: ltx.decode(unpack(x, grid), generator=g), device, iters)

    options = {
        "A": CleanLatents(),
        "B": PartialDiffusion(t_star=0.6, sample_steps=4),
        "C": ImagePath(sample_steps=8),
        "D": TextPath(sample_steps=8),
    }
    for name, option in options.items():
        adapter = QueryAdapter(
            vlm.out_dim,
            option.adapter_out_dim(ltx),
            width=adapter_width,
            depth=2,
            heads=max(1, adapter_width // 64),
        ).to(device)
        if name == "A":  # as predictions run it: no autograd, bf16 autocast on a GPU
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
                row["adapter_ms"], _ = timed(
                    lambda a=adapter: a(states, mask, feats.positions()[None]), device, iters
                )

        def predict(
            option=option, adapter=adapter
        ):  # all after the frames are in memory: VLM, adapter, sampler, decode
            s, m = vlm(context, [PROMPT])
            f = Features(s, m, text, text_mask, first, grid, feats.fps)
            return ltx.decode(option.sample(adapter, ltx, f, generator=g), generator=g)

        def predict_batch(option=option, adapter=adapter):  # `batch` clips in one forward
            s, m = vlm(context.expand(batch, -1, -1, -1, -1), [PROMPT] * batch)
            f = Features(
                s,
                m,
                text.expand(batch, -1, -1),
                text_mask.expand(batch, -1),
                first.expand(batch, -1, -1, -1, -1),
                grid,
                feats.fps.expand(batch),
            )
            return ltx.decode(option.sample(adapter, ltx, f, generator=g), generator=g)

        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            row[f"predict_{name}_ms"], _ = timed(predict, device, iters)
            if dit_graphs and device.type == "cuda":  # the same prediction with the eager DiT, here
                ltx.graphs, graphs = None, ltx.graphs
                row[f"predict_{name}_dit_eager_ms"], _ = timed(predict, device, iters)
                ltx.graphs = graphs
            if batch > 1:
                ms, _ = timed(predict_batch, device, iters)
                row[f"predict_{name}_batch{batch}_ms"] = ms
                row[f"predict_{name}_batch{batch}_clips_per_s"] = batch * 1e3 / ms
            if not rollouts:
                continue
            # a 3-chunk rollout through predict's own loop (T5's states precomputed, as above), re-encoding
            # each chunk's decoded current frame, then handing its latent over (latent continuation)
            parts = SimpleNamespace(vlm=vlm, ltx=ltx, option=option, adapter=adapter)
            ltx.text_encoder = lambda captions: (
                text.expand(len(captions), -1, -1),
                text_mask.expand(len(captions), -1),
            )
            for mode, latent in (("", False), ("_latent", True)):
                ms, run = timed(
                    lambda parts=parts, latent=latent: rollout(
                        parts, context, [PROMPT] * 3, frames, fps=24.0, latent_continuation=latent
                    ),
                    device,
                    iters,
                )
                row[f"rollout3_{name}{mode}_ms"] = ms
                row[f"rollout3_{name}{mode}_chunk_ms"] = [round(t["total_s"] * 1e3, 2) for t in run.timings]
            ltx.text_encoder = None

    if train:
        row |= train_steps(ltx, vlm, feats, adapter_width, device, dtype, iters, lora_rank)
    return row


def bare_lora_loss(ltx: LTXVideo, grid: tuple[int, int, int], text: Tensor, text_mask: Tensor, device):
    """The bare DiT LoRA objective on random in-memory latents of `grid` (B=1, no adapter, no
    conditioning): the reference an option's training step is compared with. Returns a loss closure."""
    tokens = grid[0] * grid[1] * grid[2]
    z0 = torch.randn(1, tokens, ltx.latent_channels, device=device)
    coords = rope_coords(
        grid_positions(grid, device=device), torch.tensor([24.0], device=device)
    )  # (1, 3, N)

    def loss() -> Tensor:
        noise = torch.randn_like(z0)
        t = flow.sample_t(1, tokens, device=device)
        x_t, t_tok = flow.noisy_input(z0, noise, t, None)
        v = ltx.velocity(x_t, t_tok, coords, text, text_mask)
        return flow.masked_mse(v, flow.velocity(z0, noise))

    return loss


def time_train_step(
    loss_fn, params: list, device, dtype, iters: int
) -> tuple[float | None, float | str | None]:
    """(median ms, peak GiB) of forward + backward + AdamW on `params`; (None, "out of memory") when it
    does not fit: a row that does not fit is a result, not a crash."""
    opt = torch.optim.AdamW(params, lr=1e-5)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        ms, _ = timed(step, device, iters)
        return ms, peak_gib(device)
    except torch.OutOfMemoryError:
        opt.zero_grad(set_to_none=True)
        return None, "out of memory"


def train_steps(
    ltx: LTXVideo,
    vlm: FrozenVLM,
    feats: Features,
    adapter_width: int,
    device,
    dtype,
    iters: int,
    lora_rank: int,
) -> dict:
    """LoRA training step time and peak memory: bare DiT vs option C's adapter + LoRA, +/- checkpointing."""
    out = {}
    z0 = torch.randn(1, feats.num_tokens, ltx.latent_channels, device=device)
    target = Features(
        feats.vlm_states,
        feats.vlm_mask,
        feats.text,
        feats.text_mask,
        feats.first_latent,
        feats.grid,
        feats.fps,
        target=unpack(z0, feats.grid),
    )
    if not any("lora_" in n for n, _ in ltx.transformer.named_parameters()):
        ltx.add_lora(rank=lora_rank, alpha=lora_rank, targets=["to_q", "to_k", "to_v", "to_out.0"])
    option = ImagePath()
    adapter = QueryAdapter(
        vlm.out_dim, ltx.latent_channels, width=adapter_width, depth=2, heads=max(1, adapter_width // 64)
    ).to(device)
    lora = [p for p in ltx.parameters() if p.requires_grad]
    bare_loss = bare_lora_loss(ltx, feats.grid, feats.text, feats.text_mask, device)

    def option_loss():
        return option.loss(adapter, ltx, target)["loss"]

    for checkpointing in (False, True):
        if checkpointing:
            ltx.transformer.enable_gradient_checkpointing()
        else:
            ltx.transformer.disable_gradient_checkpointing()
        suffix = "_ckpt" if checkpointing else ""
        for name, loss_fn, params in (
            ("bare_lora", bare_loss, lora),
            ("option_c", option_loss, lora + list(adapter.parameters())),
        ):
            out[f"train_{name}{suffix}_ms"], out[f"train_{name}{suffix}_peak_gib"] = time_train_step(
                loss_fn, params, device, dtype, iters
            )
    ltx.transformer.disable_gradient_checkpointing()
    flops = lora_step_flops(ltx.transformer, feats.num_tokens, feats.text.shape[1])
    out["train_step_tflop"] = flops / 1e12
    for key in [k for k in out if k.endswith("_ms") and k.startswith("train_")]:
        out[key.replace("_ms", "_mfu")] = mfu(flops, out[key], device)
    return out


def run_meta(
    device, model: str, vlm: str, dtype: str, lora_rank: int, adapter_width: int, compile: bool
) -> dict:
    """What a benchmark's JSON says about where and with what it ran."""
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "model": model,
        "vlm": vlm,
        "dtype": dtype,
        "lora_rank": lora_rank,
        "adapter_width": adapter_width,
        "compile": compile,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def summarise(runs: list[list[dict]]) -> list[dict]:
    """One row per benchmark row across runs: a number is the median of the runs with `<key>_range`
    [min, max] beside it; a value every run agrees on is kept; a value they disagree on (a run that
    ran out of memory, say) becomes the list of the runs' values."""
    rows = []
    for same in zip(*runs, strict=True):
        row = {}
        for key in same[0]:
            values = [r.get(key) for r in same]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                row[key], row[f"{key}_range"] = statistics.median(values), [min(values), max(values)]
            else:
                row[key] = values[0] if all(v == values[0] for v in values) else values
        rows.append(row)
    return rows


def add_run_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """What both benches take besides their own sizes: the DiT's attention backend, repeats in separate
    processes (repeat_in_processes) and the report's path."""
    parser.add_argument(
        "--attention", default=None, help="model.attention_backend of the DiT (e.g. _native_cudnn)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="separate processes; the report gives median and range"
    )
    parser.add_argument("--out", type=Path, default=Path(default_out))


def repeat_in_processes(module: str, argv: list[str], repeats: int, out: Path) -> list[dict]:
    """`python -m module argv` `repeats` times, each in a fresh process, since a training step moves
    from process to process (compilation, allocator, host threads). Each run's report is kept beside
    `out` (`<name>.run<i>.json`: what finished survives an interrupted series); `out` gets every
    run's rows and their summary (median and range per number). Returns the summary."""
    runs, meta = [], None
    for i in range(repeats):
        path = out.with_name(f"{out.stem}.run{i}{out.suffix}")
        subprocess.run(
            [sys.executable, "-m", module, *argv, "--repeats", "1", "--out", str(path)], check=True
        )
        report = json.loads(path.read_text())
        runs.append(report["rows"])
        meta = meta or report["meta"]
    rows = summarise(runs)
    meta |= {
        "repeats": repeats,
        "separate_processes": True,
        "statistic": "median of the runs, range [min, max]",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs}, indent=2))
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ltx_2b")
    parser.add_argument("--vlm", default="7b")
    parser.add_argument("--sizes", nargs="+", default=["768x512x121", "768x512x49"])
    parser.add_argument("--tiny", action="store_true", help="tiny random twins on CPU (the CI mode)")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--lora-rank", type=int, default=128)
    parser.add_argument("--adapter-width", type=int, default=1024)
    parser.add_argument("--context-frames", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks (model.compile)")
    parser.add_argument(
        "--compile-mode",
        default=None,
        help="model.compile_mode of the DiT blocks (reduce-overhead: CUDA graphs)",
    )
    parser.add_argument(
        "--compile-options",
        type=json.loads,
        default=None,
        help="model.compile_options as JSON, e.g. '{\"coordinate_descent_tuning\": true}'",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="also time each option's prediction of this many clips at once (throughput, clips/s)",
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="torch.backends.cudnn.benchmark: cuDNN times its conv algorithms per shape (the VAE's conv3d)",
    )
    parser.add_argument(
        "--vlm-preprocess",
        choices=["pil", "tensor"],
        default="pil",
        help="how the predictions' VLM prepares frames (vlm.preprocess; both are timed as stages)",
    )
    parser.add_argument(
        "--vlm-graphs",
        action="store_true",
        help="the predictions' VLM replays its forward as CUDA graphs (vlm.cuda_graphs; both are timed)",
    )
    parser.add_argument(
        "--dit-graphs",
        action="store_true",
        help="the predictions' DiT replays each forward as a CUDA graph (model.cuda_graphs; both are timed)",
    )
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="prediction stages only (training steps through the trainer: foresight.bench.training)",
    )
    parser.add_argument(
        "--no-rollouts", action="store_true", help="skip the 3-chunk rollouts (a shorter run)"
    )
    parser.add_argument(
        "--dit-quantize",
        choices=["fp8"],
        default=None,
        help="model.dit_quantize: the DiT's linears as fp8 matmuls (the error against bf16 is reported)",
    )
    parser.add_argument(
        "--prediction-lora",
        type=int,
        default=0,
        metavar="RANK",
        help="predictions run with the IC-LoRA of this rank that trained B, C and D checkpoints carry "
        "(conf/option/lora/ic_lora.yaml: 16); 0: the bare DiT, as series before 2026-12-03",
    )
    parser.add_argument(
        "--merge-lora",
        action="store_true",
        help="that LoRA folded into the DiT's weights first (predict.py's merge_lora; the error is reported)",
    )
    add_run_arguments(parser, default_out="bench.json")
    args = parser.parse_args(argv)
    if args.prediction_lora and not args.no_train:
        parser.error(
            "--prediction-lora times predictions only: add --no-train (training: foresight.bench.training)"
        )
    if args.merge_lora and not args.prediction_lora:
        parser.error("--merge-lora folds the predictions' LoRA: give --prediction-lora RANK too")
    if args.repeats > 1:
        return repeat_in_processes(
            "foresight.bench", sys.argv[1:] if argv is None else argv, args.repeats, args.out
        )

    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dt_name = "bfloat16" if dtype == torch.bfloat16 else "float32"
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    model, vlm_size = ("tiny", "tiny") if args.tiny else (args.model, args.vlm)
    torch.manual_seed(0)
    ltx = random_ltx(
        model,
        device,
        dt_name,
        text_encoder=False,  # no T5: captions are random states here
        compile=args.compile,
        compile_mode=args.compile_mode,
        compile_options=args.compile_options,
        attention_backend=args.attention,
    )
    vlm = random_vlm(
        vlm_size,
        device,
        dt_name,
        max_pixels=448 * 448 if not args.tiny else 56 * 56,
        preprocess=args.vlm_preprocess,
    )
    if args.prediction_lora:
        trained_lora(ltx, args.prediction_lora, torch.Generator(device).manual_seed(1))
    sizes = [tuple(int(v) for v in s.split("x")) for s in (["64x64x17"] if args.tiny else args.sizes)]
    rows = []
    for size in sizes:
        row = bench_size(
            ltx,
            vlm,
            64 if args.tiny else args.adapter_width,
            size,
            device,
            dtype,
            1 if args.tiny else args.iters,
            4 if args.tiny else args.lora_rank,
            args.context_frames,
            train=not args.no_train,
            batch=args.batch,
            rollouts=not args.no_rollouts,
            dit_quantize=args.dit_quantize,
            vlm_graphs=args.vlm_graphs,
            dit_graphs=args.dit_graphs,
            merge_lora=args.merge_lora,
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = run_meta(device, model, vlm_size, dt_name, args.lora_rank, args.adapter_width, args.compile)
    meta["attention_backend"] = args.attention
    meta["vlm_preprocess"] = args.vlm_preprocess
    meta["cudnn_benchmark"] = args.cudnn_benchmark
    meta["batch"] = args.batch
    meta["dit_quantize"] = args.dit_quantize
    meta["vlm_graphs"] = args.vlm_graphs
    meta["dit_graphs"] = args.dit_graphs
    meta["compile_mode"] = args.compile_mode
    meta["compile_options"] = args.compile_options
    meta["prediction_lora"] = args.prediction_lora
    meta["merge_lora"] = args.merge_lora
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
