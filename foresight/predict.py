"""Predicting futures with a trained checkpoint: load once, then predict as often as needed.

    predictor = Predictor("logs/train/runs/<run>")          # a run directory or a .safetensors file
    frames, timings = predictor.predict(context, "the red ball rolls left")
    # context: uint8 (C, H, W, 3) (or (B, C, H, W, 3) with a list of texts); frames: (B, F, H, W, 3)
    run = predictor.rollout(context, ["the red ball rolls left"] * 3)  # 3 chunks, each from the last
    run.frames, run.joined(), run.timings  # (B, 3, F, ...), (B, 3F-2, ...), per chunk

The checkpoint describes itself: its metadata holds the resolved config that built the model, so
the same option, adapter, frozen models and window are rebuilt and only the trainable weights
are read from the file. Each option uses its own sampler; the decoder runs at t=0.05 after
blending 0.025 noise, as LTX does. Predictions run in the precision the run trained and validated in
(its trainer.precision: bf16 autocast for a GPU run). A seed makes outputs reproducible.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from foresight import checks
from foresight.background import BackgroundWriter, read_ahead
from foresight.data.loader import VIDEO_EXTS, ClipWindows, expand_shards
from foresight.data.video import VideoError, decode_window, encode_mp4, probe, side_by_side, to_bucket
from foresight.features import encode_batch, next_context, video_to_frames
from foresight.models.compiled import check_compile_mode, check_compile_options
from foresight.models.quantize import check as check_quantize
from foresight.models.quantize import check_dit, quantize_encoders
from foresight.throughput import Throughput, rate_text
from foresight.training.weights import find_weights, load_trainable, read_meta
from foresight.trusted import build

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHARD_PATTERN = re.compile(r"[{*?\[]|\.tar$")  # input= that names shards (brace patterns, globs, .tar)


def run_settings(cfg) -> dict:
    """What predict.py and evaluate.py set on top of a checkpoint's own config (conf/predict.yaml)."""
    return {
        key: cfg.get(key)
        for key in (
            "quantize",
            "dit_quantize",
            "compile",
            "compile_mode",
            "compile_options",
            "vlm_graphs",
            "dit_graphs",
            "merge_lora",
        )
    }


class Predictor:
    def __init__(
        self,
        ckpt: str | Path | None,
        device: str | None = None,
        config=None,
        quantize: str | None = None,
        dit_quantize: str | None = None,
        compile: bool | None = None,
        compile_mode: str | None = None,
        compile_options: Mapping | None = None,
        vlm_graphs: bool | None = None,
        dit_graphs: bool | None = None,
        merge_lora: bool = False,
    ) -> None:
        """ckpt: a run directory or a weights file written by train.py. ckpt=None with `config` (composed
        from conf/, never read from a file): a baseline with nothing to train (option=i2v).
        quantize: "int8" runs the frozen VLM and T5 with int8 weights (foresight.models.quantize).
        dit_quantize: "fp8" runs the DiT's block linears as fp8 matmuls (null: as the run trained).
        compile: torch.compile the DiT blocks and VAE decoder (model.compile; null: as the run trained).
        compile_mode: torch.compile's mode for the DiT blocks (model.compile_mode; "reduce-overhead"
        replays each as a CUDA graph, "default" is torch's own; null: as the run trained).
        compile_options: inductor options on top of the mode's (model.compile_options, e.g.
        {coordinate_descent_tuning: true}; null: as the run trained).
        vlm_graphs: on a GPU, the VLM's forward replayed as CUDA graphs (vlm.cuda_graphs; null: as the
        run trained). dit_graphs: the same for each DiT forward (model.cuda_graphs).
        merge_lora: the trained LoRA folded into the DiT's weights before any quantisation
        (LTXVideo.merge_lora): faster sampling steps, the velocity within one rounding of the weights."""
        check_quantize(quantize, "quantize")
        check_dit(dit_quantize, "dit_quantize")
        check_compile_mode(compile_mode, "compile_mode")
        check_compile_options(compile_options, "compile_options")
        if ckpt is None:
            option = build(config.option, "the composed config", "option")
            if option.trains:
                raise ValueError(
                    f"option={option.name} trains: give ckpt=RUN_DIR (only a baseline with nothing "
                    f"to train, such as option=i2v, is scored without a checkpoint)"
                )
            resolved = OmegaConf.to_container(config, resolve=True)
            self.path, self.meta = None, {"config": resolved, "option": option.name, "step": 0}
        else:
            self.path = find_weights(ckpt)
            self.meta = read_meta(
                self.path
            )  # config (checked: it names only what our configs build), step, option
        cfg = OmegaConf.create(self.meta["config"])
        if compile is not None:
            cfg.model.compile = compile
        if compile_mode is not None:
            cfg.model.compile_mode = compile_mode
        if compile_options is not None:
            cfg.model.compile_options = dict(compile_options)
        if vlm_graphs is not None:
            cfg.vlm.cuda_graphs = vlm_graphs
        if dit_graphs is not None:
            cfg.model.cuda_graphs = dit_graphs
        self.cfg = cfg
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        source = str(self.path or "the composed config")
        option = build(cfg.option, source, "option")
        module = build(cfg.module, source, "module")(
            vlm=build(cfg.vlm, source, "vlm") if option.uses_adapter else None,
            ltx=build(cfg.model, source, "model"),
            option=option,
            adapter=build(cfg.adapter, source, "adapter"),
        )
        if self.path is not None:
            load_trainable(module, self.path)
        if merge_lora:
            module.ltx.merge_lora()
        quantize_encoders(module.vlm, module.ltx.text_encoder, quantize, "quantize")
        module.ltx.quantize_dit(dit_quantize)  # after LoRA: its frozen base layers are the fp8 ones
        self.quantize, self.dit_quantize, self.merge_lora = quantize, dit_quantize, merge_lora
        self.module = module.eval().to(self.device)
        data = cfg.data
        self.context_frames, self.future_frames = data.context_frames, data.future_frames
        self.height, self.width = data.height, data.width
        self.prompt_template = data.get("prompt_template", "{caption}")

    def identity(self) -> dict:
        """What a score of this predictor says about it: the checkpoint, option and step, the config
        keys `foresight compare` groups by (a baseline's group is its name), the quantisation and the
        compilation it ran with."""
        trained = self.meta.get("config", {})
        options = self.cfg.model.get("compile_options")
        return {
            "checkpoint": str(self.path or "none (nothing trained)"),
            "option": self.meta.get("option"),
            "step": self.meta.get("step"),
            "config": {
                **{k: trained.get(k) for k in ("seed", "option")},
                "run_group": trained.get("run_group") if self.path else self.meta["option"],
            },
            "quantize": self.quantize,
            "dit_quantize": self.dit_quantize,
            "compile": bool(self.cfg.model.get("compile")),
            "compile_mode": self.cfg.model.get("compile_mode"),
            "compile_options": None if options is None else OmegaConf.to_container(options),
            "vlm_graphs": bool(self.cfg.vlm.get("cuda_graphs")),
            "dit_graphs": bool(self.cfg.model.get("cuda_graphs")),
            "merge_lora": self.merge_lora,
        }

    def precision(self) -> contextlib.AbstractContextManager:
        """The numeric context the run trained and validated in, Lightning's own for its
        trainer.precision (bf16-mixed: autocast to bf16), so that scores mean what its val/ keys meant
        and a GPU run's adapter and LoRA (fp32 weights) run in bf16 as they trained, not in fp32."""
        from lightning.pytorch.plugins.precision import MixedPrecision

        precision = str(self.cfg.trainer.get("precision", "32-true"))
        if not precision.endswith("-mixed"):
            return contextlib.nullcontext()
        return MixedPrecision(precision, self.device.type).forward_context()

    def held_out(
        self,
        shards: str | None = None,
        limit: int | None = None,
        batch_size: int = 4,
        field: str = "shards",
        future_frames: int | None = None,
    ) -> ClipWindows:
        """Windows of shards (default: the checkpoint's data.val_shards) cut as the checkpoint was
        trained (context and future frames, buckets, fps, prompt template), in order, bad clips counted.
        future_frames: a longer future than training's (the truth for a rollout's later chunks)."""
        data = self.cfg.data
        spec = shards or data.val_shards
        buckets = (
            [tuple(b) for b in data.buckets]
            if data.get("buckets")
            else [(data.height, data.width, data.future_frames)]
        )
        buckets = [(h, w, future_frames or f) for h, w, f in buckets]
        return ClipWindows(
            expand_shards(spec, field if shards else "data.val_shards"),
            data.context_frames,
            buckets,
            data.get("fps"),
            train=False,
            seed=0,
            strict=False,
            batch_size=batch_size,
            limit=limit,
            prompt_template=self.prompt_template,
            resize_filter=data.get("resize_filter", "area"),
        )

    def read_context(self, source: str | Path) -> tuple[np.ndarray, float]:
        """The last C frames of a video (or one image repeated), fitted to the trained bucket."""
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"input={source} does not exist")
        if source.suffix.lower() in IMAGE_EXTS:
            import av  # here: the rollout loop (benches on machines without PyAV) needs no video I/O

            frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(source).convert("RGB")), format="rgb24")
            image = to_bucket(frame, 0, self.height, self.width)
            return np.repeat(image[None], self.context_frames, axis=0), 24.0
        info = probe(source)
        total = info.frames_at(None)
        if total < self.context_frames:
            raise ValueError(
                f"input={source} has {total} frames; this checkpoint reads {self.context_frames} "
                f"context frames (pass a longer clip, or an image)"
            )
        start = total - self.context_frames
        return decode_window(source, start, self.context_frames, self.height, self.width, info=info), info.fps

    @torch.no_grad()
    def predict(
        self,
        context: np.ndarray | torch.Tensor,
        text: str | list[str],
        fps: float | list[float] = 24.0,
        seed: int = 0,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Context uint8 (C, H, W, 3) or (B, C, H, W, 3) + text(s) -> future frames (B, F, H, W, 3), timings
        (s).

        fps: the frame rate of the context (one, or one per clip): LTX places frames in time with it."""
        run = self.rollout(context, [text], fps=fps, seed=seed)
        return run.frames[:, 0], run.timings[0]

    def rollout(
        self,
        context: np.ndarray | torch.Tensor,
        texts: Sequence[str | list[str]],
        fps: float | list[float] = 24.0,
        seed: int = 0,
        latent_continuation: bool = False,
    ) -> Rollout:
        """K = len(texts) chunks predicted in turn (see `rollout`); texts: one entry per chunk, each a
        text for every clip or one per clip."""
        with self.precision():
            return rollout(
                self.module,
                context,
                texts,
                self.future_frames,
                fps=fps,
                seed=seed,
                prompt_template=self.prompt_template,
                latent_continuation=latent_continuation,
            )


@torch.no_grad()
def rollout(
    module,
    context: np.ndarray | torch.Tensor,
    texts: Sequence[str | list[str]],
    future_frames: int,
    fps: float | list[float] = 24.0,
    seed: int = 0,
    prompt_template: str = "{caption}",
    latent_continuation: bool = False,
) -> Rollout:
    """K = len(texts) chunks predicted in turn by `module` (vlm, ltx, option, adapter), each from the
    clip as it stands after the one before: chunk k+1 reads the last C frames of context + predictions
    (the VLM's frames and the current frame), so from chunk 2 on the model conditions on its own
    predictions. latent_continuation: the next current frame's latent is the previous chunk's last
    predicted latent frame, not its decoded frame encoded again (no VAE encode; the causal VAE's last
    latent frame summarises 8 frames, where an encoded current frame is that frame alone). One
    generator runs through all chunks."""
    device = next(module.ltx.parameters()).device
    ctx = torch.as_tensor(np.asarray(context))
    ctx = (ctx[None] if ctx.ndim == 4 else ctx).to(device)  # (B, C, H, W, 3) uint8
    b, c = ctx.shape[:2]
    rates = torch.as_tensor(fps, dtype=torch.float32).reshape(-1).expand(b).clone()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator(device).manual_seed(seed)
    first, frames, latents, contexts, timings = None, [], [], [], []
    for text in texts:
        captions = [text] * b if isinstance(text, str) else list(text)
        batch = {
            "context": ctx,
            "caption": captions,
            "fps": rates,
            "prompt": [prompt_template.format(caption=t) for t in captions],
        }
        start = time.perf_counter()
        feats = encode_batch(
            batch,
            module.vlm,
            module.ltx,
            future_frames=future_frames,
            context_latents=module.option.needs_context_latents,
            first_latent=first,
        )
        sync()
        encoded = time.perf_counter()
        z = module.option.sample(module.adapter, module.ltx, feats, generator=gen)  # (B, 128, f, h, w)
        sync()
        sampled = time.perf_counter()
        video = video_to_frames(module.ltx.decode(z, generator=gen))  # (B, F, H, W, 3) uint8
        sync()
        done = time.perf_counter()
        timings.append(
            {
                "encode_s": encoded - start,
                "sample_s": sampled - encoded,
                "decode_s": done - sampled,
                "total_s": done - start,
            }
        )
        contexts.append(ctx.cpu().numpy())
        frames.append(video.cpu().numpy())
        latents.append(z.float().cpu())
        ctx = next_context(ctx, video)
        first = z[:, :, -1:] if latent_continuation else None
    return Rollout(np.stack(frames, 1), torch.stack(latents, 1), np.stack(contexts, 1), timings)


@dataclass
class Rollout:
    """K chunks predicted in turn (Predictor.rollout); K = 1 is one prediction."""

    frames: np.ndarray  # (B, K, F, H, W, 3) uint8: chunk k's future, from the frame it started at
    latents: torch.Tensor  # (B, K, 128, f, h, w) on the CPU: chunk k's sampled latents, before decoding
    contexts: np.ndarray  # (B, K, C, H, W, 3) uint8: the context chunk k read (chunk 0's: the given one)
    timings: list[dict[str, float]]  # per chunk: encode_s, sample_s, decode_s, total_s (seconds)

    def joined(self) -> np.ndarray:
        """(B, F + (K-1)(F-1), H, W, 3): the chunks in turn; a later chunk's first frame is the frame the
        one before ended on, so it appears once."""
        return np.concatenate(
            [self.frames[:, 0], *(self.frames[:, k, 1:] for k in range(1, self.frames.shape[1]))], 1
        )

    def borders(self) -> tuple[int, ...]:
        """Indices in joined() of the first frame each later chunk predicted."""
        step = self.frames.shape[2] - 1
        return tuple(k * step + 1 for k in range(1, self.frames.shape[1]))


def mean_chunk_timings(runs: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per chunk, each timing (encode_s, sample_s, ...) averaged over several rollouts' timings."""
    return (
        [
            {key: float(np.mean([run[i][key] for run in runs])) for key in runs[0][i]}
            for i in range(len(runs[0]))
        ]
        if runs
        else []
    )


UNSAFE = re.compile(r"[^\w.-]+")  # what may not appear in a file name we write (path separators first)


class OutputNames:
    """File names for outputs named after input data (tar keys, file names). A key such as `../../x`
    or `/etc/x` must never write outside out_dir: characters other than letters, digits, `_`, `.` and
    `-` become `_` and leading dots go, so a name is never a path; names that collide get `_1`, `_2`, ...
    `renamed` maps each key that changed to its file name."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.renamed: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        base = UNSAFE.sub("_", key).lstrip(".")[:120] or "clip"
        name, n = base, 0
        while name in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add(name)
        if name != key:
            self.renamed[key] = name
        return name


def write_prediction(
    out: Path,
    name: str,
    context: np.ndarray,
    frames: np.ndarray,
    fps: float,
    borders: tuple[int, ...] = (),
    beside: bool = True,
    preset: str = "veryfast",
) -> None:
    """`<name>.mp4` (the future) and, with `beside`, `<name>_side_by_side.mp4` in out; name: from
    OutputNames; borders: where a rollout's chunks begin (outlined in the side-by-side); preset: x264's."""
    (out / f"{name}.mp4").write_bytes(encode_mp4(frames, fps, preset=preset))
    if beside:
        (out / f"{name}_side_by_side.mp4").write_bytes(
            encode_mp4(side_by_side(context, frames, borders=borders), fps, preset=preset)
        )


def chunk_prompts(prompt: str | Sequence[str] | None, rollout: int | None) -> tuple[int, list[str] | None]:
    """(chunks, one prompt per chunk or None for each clip's own caption) from predict.py's prompt=
    (a text, or a list: one per chunk) and rollout= (chunks; null: one, or one per listed prompt)."""
    listed = prompt is not None and not isinstance(prompt, str)
    chunks = rollout if rollout is not None else (len(prompt) if listed else 1)
    if listed and len(prompt) != chunks:
        raise ValueError(
            f"prompt= lists {len(prompt)} prompts for rollout={chunks} chunks: give one per chunk, "
            f"or one text for all"
        )
    if prompt is None:
        return chunks, None
    return chunks, list(prompt) if listed else [prompt] * chunks


def caption_beside(path: Path) -> str | None:
    """A clip's own instruction: `clip.txt` next to `clip.mp4`."""
    sidecar = path.with_suffix(".txt")
    return sidecar.read_text().strip() or None if sidecar.exists() else None


def directory_batches(
    predictor: Predictor, path: Path, prompts: list[str] | None, batch_size: int, skipped: dict[str, str]
):
    """Batches of the videos and images in a directory, read as they are needed (every clip is fitted
    to the checkpoint's window, so a batch stacks); unreadable ones land in `skipped` with the reason.
    Without prompts each clip needs its own caption (`<name>.txt`)."""
    files = sorted(
        p
        for p in path.iterdir()
        if p.suffix.lower().lstrip(".") in VIDEO_EXTS or p.suffix.lower() in IMAGE_EXTS
    )
    if not files:
        raise FileNotFoundError(
            f"input={path}: no video ({', '.join(VIDEO_EXTS)}) or image in this directory"
        )
    batch = []
    for file in files:
        text = None if prompts else caption_beside(file)
        try:
            if not prompts and text is None:
                raise ValueError(f"no prompt= and no {file.with_suffix('.txt').name}")
            context, fps = predictor.read_context(file)
        except (ValueError, VideoError, OSError) as e:
            skipped[file.name] = str(e)
            continue
        batch.append({"key": file.stem, "context": context, "fps": fps, "text": text})
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_inputs(
    predictor: Predictor,
    source: str,
    prompt: str | Sequence[str] | None,
    out: Path,
    batch_size: int = 4,
    seed: int = 0,
    rollout: int | None = None,
    latent_continuation: bool = False,
    writers: int = 2,
    beside: bool = True,
    preset: str = "veryfast",
) -> dict:
    """Predict for a video or image, every video and image in a directory, or every clip of shards
    (`*.tar`, brace patterns), in batches; each clip gives `<name>.mp4` (the future, starting at the
    current frame) and, with `beside`, `<name>_side_by_side.mp4` (context then prediction; it is the
    larger of the two to encode). A clip's instruction:
    `prompt` if given (one text, or a list with one per chunk), else its caption (`<name>.txt` beside a
    file, the shard's `.txt`). rollout: chunks predicted in turn, each from the last frames of the one
    before (Predictor.rollout); the videos join them. Batch i uses seed + i. The next batch is read
    while one is predicted; writers: threads encoding a batch's videos while the next is predicted;
    preset: x264's (faster ones write bigger files at the same quality).
    Returns what was written and skipped, the seconds spent predicting, the mean seconds per chunk,
    and clips a second end to end (reading and writing included; foresight.throughput: also after the
    first batch)."""
    chunks, prompts = chunk_prompts(prompt, rollout)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(source)
    names = OutputNames()
    written, skipped, timings, windows = [], {}, [], None
    throughput = Throughput()
    if path.is_file() and path.suffix != ".tar":
        text = caption_beside(path) if prompts is None else None
        if prompts is None and text is None:
            raise ValueError(
                f'input={path}: give prompt="..." (or a {path.with_suffix(".txt").name} beside it)'
            )
        context, fps = predictor.read_context(path)
        batches = iter([[{"key": path.stem, "context": context, "fps": fps, "text": text}]])
    elif path.is_dir():
        batches = directory_batches(predictor, path, prompts, batch_size, skipped)
    elif not path.exists() and not SHARD_PATTERN.search(source):
        raise FileNotFoundError(
            f"input={source} does not exist; pass a video, an image, a directory of them, "
            f"or shards (*.tar, brace patterns such as 'val-{{000000..000003}}.tar')"
        )
    else:  # shards: batches of one bucket each, cut with the checkpoint's window
        windows = predictor.held_out(source, batch_size=batch_size, field="input")
        batches = (
            [
                {"key": k, "context": c, "fps": float(f), "text": t}
                for k, c, f, t in zip(b["key"], b["context"].numpy(), b["fps"], b["caption"], strict=True)
            ]
            for b in torch.utils.data.DataLoader(windows, batch_size=None)
        )
    # batch i's videos are encoded while batch i+1 is predicted, and batch i+1 is decoded meanwhile too
    with BackgroundWriter(workers=writers) as writer:
        for index, batch in enumerate(read_ahead(batches)):
            texts = prompts or [[c["text"] for c in batch]] * chunks
            run = predictor.rollout(
                np.stack([c["context"] for c in batch]),
                texts,
                fps=[c["fps"] for c in batch],
                seed=seed + index,
                latent_continuation=latent_continuation,
            )
            timings.append(run.timings)
            writer.submit(
                [
                    partial(
                        write_prediction,
                        out,
                        names(clip["key"]),
                        clip["context"],
                        future,
                        clip["fps"],
                        run.borders(),
                        beside,
                        preset,
                    )
                    for clip, future in zip(batch, run.joined(), strict=True)
                ]
            )
            written.extend(clip["key"] for clip in batch)
            throughput.add(len(batch))
    if windows is not None:
        skipped |= dict(windows.skips)  # by reason
    return {
        "written": written,
        "skipped": skipped,
        "renamed": names.renamed,
        "chunks": chunks,
        "seconds": sum(c["total_s"] for t in timings for c in t),
        "per_chunk": mean_chunk_timings(timings),
        **{k: v for k, v in throughput.report().items() if k != "seconds"},
    }


def main(cfg) -> dict:
    """predict.py: refuse an out_dir that holds predictions (before any model loads), predict, report."""
    checks.check(cfg, checks.PREDICT)
    out = Path(cfg.out_dir)
    existing = sorted(str(p) for p in out.glob("*.mp4")) if out.is_dir() else []
    if existing and not cfg.overwrite:
        raise FileExistsError(
            f"{out} already holds predictions ({existing[0]}, ...); pass overwrite=true or another out_dir"
        )
    prompt = OmegaConf.to_container(cfg.prompt) if OmegaConf.is_config(cfg.prompt) else cfg.prompt
    report = predict_inputs(
        Predictor(cfg.ckpt, **run_settings(cfg)),
        str(cfg.input),
        prompt,
        out,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        rollout=cfg.get("rollout"),
        latent_continuation=cfg.get("latent_continuation", False),
        writers=cfg.writers,
        beside=cfg.side_by_side,
        preset=cfg.preset,
    )
    renamed = report["renamed"]
    chunks = (
        (
            f" ({report['chunks']} chunks each; seconds per chunk: "
            + ", ".join(f"{c['total_s']:.2f}" for c in report["per_chunk"])
            + ")"
        )
        if report["chunks"] > 1
        else ""
    )
    print(
        f"wrote {len(report['written'])} prediction(s)"
        + (" and side-by-side videos" if cfg.get("side_by_side", True) else "")
        + f" to {out} in "
        f"{report['seconds']:.2f} s of predicting{chunks}; end to end {rate_text(report)}"
        + (f"; skipped {report['skipped']}" if report["skipped"] else "")
        + (
            f"; {len(renamed)} named after their keys made safe, such as {next(iter(renamed.items()))}"
            if renamed
            else ""
        )
    )
    return report
