"""Predicting futures with a trained checkpoint: load once, then predict as often as needed.

    predictor = Predictor("logs/train/runs/<run>")          # a run directory or a .safetensors file
    frames, timings = predictor.predict(context, "the red ball rolls left")
    # context: uint8 (C, H, W, 3) (or (B, C, H, W, 3) with a list of texts); frames: (B, F, H, W, 3)

The checkpoint describes itself: its metadata holds the resolved config that built the model, so
the same option, adapter, frozen models and window are rebuilt and only the trainable weights
are read from the file. Each option uses its own sampler; the decoder runs at t=0.05 after
blending 0.025 noise, as LTX does. A seed makes outputs reproducible.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import av
import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from foresight import checks
from foresight.data.loader import VIDEO_EXTS, ClipWindows, expand_shards
from foresight.data.video import VideoError, decode_window, encode_mp4, probe, side_by_side, to_bucket
from foresight.features import encode_batch, video_to_frames
from foresight.training.weights import find_weights, load_trainable, read_meta
from foresight.trusted import build

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SHARD_PATTERN = re.compile(r"[{*?\[]|\.tar$")  # input= that names shards (brace patterns, globs, .tar)


class Predictor:
    def __init__(self, ckpt: str | Path | None, device: str | None = None, config=None) -> None:
        """ckpt: a run directory or a weights file written by train.py. ckpt=None with `config` (composed
        from conf/, never read from a file): a baseline with nothing to train (option=i2v)."""
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
        self.module = module.eval().to(self.device)
        data = cfg.data
        self.context_frames, self.future_frames = data.context_frames, data.future_frames
        self.height, self.width = data.height, data.width
        self.prompt_template = data.get("prompt_template", "{caption}")

    def held_out(
        self, shards: str | None = None, limit: int | None = None, batch_size: int = 4, field: str = "shards"
    ) -> ClipWindows:
        """Windows of shards (default: the checkpoint's data.val_shards) cut as the checkpoint was
        trained (context and future frames, buckets, fps, prompt template), in order, bad clips counted."""
        data = self.cfg.data
        spec = shards or data.val_shards
        buckets = (
            [tuple(b) for b in data.buckets]
            if data.get("buckets")
            else [(data.height, data.width, data.future_frames)]
        )
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
        ctx = torch.as_tensor(np.asarray(context))
        if ctx.ndim == 4:
            ctx = ctx[None]
        texts = [text] * ctx.shape[0] if isinstance(text, str) else list(text)
        rates = torch.as_tensor(fps, dtype=torch.float32).reshape(-1).expand(len(texts)).clone()
        batch = {
            "context": ctx.to(self.device),
            "caption": texts,
            "fps": rates,
            "prompt": [self.prompt_template.format(caption=t) for t in texts],
        }
        m, timings = self.module, {}
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        start = time.perf_counter()
        feats = encode_batch(batch, m.vlm, m.ltx, future_frames=self.future_frames)
        sync()
        timings["encode_s"] = time.perf_counter() - start
        gen = torch.Generator(self.device).manual_seed(seed)
        latents = m.option.sample(m.adapter, m.ltx, feats, generator=gen)
        sync()
        timings["sample_s"] = time.perf_counter() - start - timings["encode_s"]
        frames = video_to_frames(m.ltx.decode(latents, generator=gen)).cpu().numpy()
        sync()
        timings["total_s"] = time.perf_counter() - start
        timings["decode_s"] = timings["total_s"] - timings["encode_s"] - timings["sample_s"]
        return frames, timings


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


def write_prediction(out: Path, name: str, context: np.ndarray, frames: np.ndarray, fps: float) -> None:
    """`<name>.mp4` (the future) and `<name>_side_by_side.mp4` in out; name: from OutputNames."""
    (out / f"{name}.mp4").write_bytes(encode_mp4(frames, fps))
    (out / f"{name}_side_by_side.mp4").write_bytes(encode_mp4(side_by_side(context, frames), fps))


def caption_beside(path: Path) -> str | None:
    """A clip's own instruction: `clip.txt` next to `clip.mp4`."""
    sidecar = path.with_suffix(".txt")
    return sidecar.read_text().strip() or None if sidecar.exists() else None


def directory_batches(
    predictor: Predictor, path: Path, prompt: str | None, batch_size: int, skipped: dict[str, str]
):
    """Batches of the videos and images in a directory, read as they are needed (every clip is fitted
    to the checkpoint's window, so a batch stacks); unreadable ones land in `skipped` with the reason."""
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
        text = prompt or caption_beside(file)
        try:
            if text is None:
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
    predictor: Predictor, source: str, prompt: str | None, out: Path, batch_size: int = 4, seed: int = 0
) -> dict:
    """Predict for a video or image, every video and image in a directory, or every clip of shards
    (`*.tar`, brace patterns), in batches; each clip gives `<name>.mp4` (the future, starting at the
    current frame) and `<name>_side_by_side.mp4` (context then prediction). A clip's instruction:
    `prompt` if given, else its caption (`<name>.txt` beside a file, the shard's `.txt`). Batch i uses
    seed + i. Returns what was written and skipped, and the seconds spent predicting."""
    out.mkdir(parents=True, exist_ok=True)
    path = Path(source)
    names = OutputNames()
    written, skipped, seconds, windows = [], {}, 0.0, None
    if path.is_file() and path.suffix != ".tar":
        text = prompt or caption_beside(path)
        if text is None:
            raise ValueError(
                f'input={path}: give prompt="..." (or a {path.with_suffix(".txt").name} beside it)'
            )
        context, fps = predictor.read_context(path)
        frames, timings = predictor.predict(context, text, fps=fps, seed=seed)
        write_prediction(out, names(path.stem), context, frames[0], fps)
        return {
            "written": [path.stem],
            "skipped": {},
            "renamed": names.renamed,
            "seconds": timings["total_s"],
            "timings": timings,
        }
    if path.is_dir():
        batches = directory_batches(predictor, path, prompt, batch_size, skipped)
    elif not path.exists() and not SHARD_PATTERN.search(source):
        raise FileNotFoundError(
            f"input={source} does not exist; pass a video, an image, a directory of them, "
            f"or shards (*.tar, brace patterns such as 'val-{{000000..000003}}.tar')"
        )
    else:  # shards: batches of one bucket each, cut with the checkpoint's window
        windows = predictor.held_out(source, batch_size=batch_size, field="input")
        batches = (
            [
                {"key": k, "context": c, "fps": float(f), "text": prompt or t}
                for k, c, f, t in zip(b["key"], b["context"].numpy(), b["fps"], b["caption"], strict=True)
            ]
            for b in torch.utils.data.DataLoader(windows, batch_size=None)
        )
    for index, batch in enumerate(batches):
        frames, timings = predictor.predict(
            np.stack([c["context"] for c in batch]),
            [c["text"] for c in batch],
            fps=[c["fps"] for c in batch],
            seed=seed + index,
        )
        seconds += timings["total_s"]
        for clip, future in zip(batch, frames, strict=True):
            write_prediction(out, names(clip["key"]), clip["context"], future, clip["fps"])
            written.append(clip["key"])
    if windows is not None:
        skipped |= dict(windows.skips)  # by reason
    return {"written": written, "skipped": skipped, "renamed": names.renamed, "seconds": seconds}


def main(cfg) -> dict:
    """predict.py: refuse an out_dir that holds predictions (before any model loads), predict, report."""
    checks.check(cfg, checks.PREDICT)
    out = Path(cfg.out_dir)
    existing = sorted(str(p) for p in out.glob("*.mp4")) if out.is_dir() else []
    if existing and not cfg.overwrite:
        raise FileExistsError(
            f"{out} already holds predictions ({existing[0]}, ...); pass overwrite=true or another out_dir"
        )
    report = predict_inputs(
        Predictor(cfg.ckpt), str(cfg.input), cfg.prompt, out, batch_size=cfg.batch_size, seed=cfg.seed
    )
    renamed = report["renamed"]
    print(
        f"wrote {len(report['written'])} prediction(s) and side-by-side videos to {out} in "
        f"{report['seconds']:.2f} s"
        + (f"; skipped {report['skipped']}" if report["skipped"] else "")
        + (
            f"; {len(renamed)} named after their keys made safe, such as {next(iter(renamed.items()))}"
            if renamed
            else ""
        )
    )
    return report
