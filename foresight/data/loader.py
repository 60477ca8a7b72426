"""Webdataset shards of video-text pairs -> windowed training batches, bad samples skipped and counted.

A batch is a dict:
    context  uint8 (B, C, H, W, 3)   frames [s, s+C) for the VLM
    target   uint8 (B, F, H, W, 3)   frames [s+C-1, s+C-1+F): target[:, 0] == context[:, -1]
    continuation uint8 (B, (K-1)(F-1), H, W, 3)  training with data.train_chunks=K > 1 only: the true
                                     frames after the target (the truth of K-1 more windows in a row)
    caption  list[str]               the caption (what T5 reads)
    prompt   list[str]               the caption in `prompt_template` (what the VLM reads)
    fps      float32 (B,)            rate of the returned frames
    key      list[str]
    worker   int                     that worker's (logical) id (0 without workers)
    position dict                    training only: where that worker's stream stands, its skip counts
                                     by reason included (see stream.py)
`VideoDataModule.consumed(batch)` folds the per-worker counts into totals for logging and records
the position a checkpoint saves.

Buckets: several (height, width, future_frames) shapes may be configured; each clip goes to the
bucket nearest its aspect ratio among those it is long enough for, and every batch is drawn from
one bucket (the dataset batches, so the DataLoader runs with batch_size=None).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import random
import string
from pathlib import Path

import braceexpand
import numpy as np
import torch

from foresight.data.stream import BadSample, ResumableBatches, ResumableData
from foresight.data.video import (
    RESIZE_FILTERS,
    VIDEO_EXTS,
    TooShortError,
    VideoError,
    VideoInfo,
    decode_window,
    probe,  # VIDEO_EXTS: also imported from here by predict.py and shards.py
)
from foresight.data.window import MAX_UPSCALE, check_window, upscale, window_length

log = logging.getLogger(__name__)

PICKLE_EXTS = ("pth", "pyd", "pickle", "pkl", "pt")  # never decoded: unpickling runs code


def expand_shards(spec: str, field: str) -> list[str]:
    """Brace-expand and glob a shard spec into local tar files; a clear error when nothing matches."""
    if not str(spec or "").strip():
        raise ValueError(
            f"{field} is empty: give tar shards, a file or a pattern like "
            f"'shards/train-{{000000..000009}}.tar'"
        )
    urls = [u for part in braceexpand.braceexpand(spec) for u in (sorted(glob.glob(part)) or [part])]
    remote = [u for u in urls if "://" in u or u.startswith("pipe:")]
    if remote:
        raise ValueError(
            f"{field}: {remote[0]!r} is not a local file; shards are read with random access "
            f"(exact resume), so mount the bucket (s3fs, gcsfuse) or copy the shards locally"
        )
    missing = [u for u in urls if not Path(u).exists()]
    if urls == [spec] and missing and not glob.has_magic(spec):  # one file, no pattern
        raise FileNotFoundError(f"{field}={spec!r}: the file does not exist")
    if len(missing) == len(urls):
        raise FileNotFoundError(
            f"{field}={spec!r} matched no files; for the bundled sample run "
            f"`python -m foresight.data.sample_world --out data/sample`"
        )
    if missing:
        log.warning(
            "%s: %d of %d shards do not exist (first: %s); reading the other %d",
            field,
            len(missing),
            len(urls),
            missing[0],
            len(urls) - len(missing),
        )
    return [u for u in urls if u not in missing]


def decode_caption(data: bytes) -> tuple[str, bool]:
    """Caption bytes -> (stripped text, whether bytes that are not UTF-8 became U+FFFD)."""
    try:
        return data.decode("utf-8").strip(), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").strip(), True


def clip_meta(data: bytes) -> dict:
    """A clip's .json metadata (a JSON object; `fps`, where given, a positive number)."""
    try:
        meta = json.loads(data)
    except ValueError as e:  # not JSON, or not UTF-8
        raise BadSample("bad_metadata", f".json is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise BadSample("bad_metadata", f".json holds a {type(meta).__name__}, not an object")
    fps = meta.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
        raise BadSample("bad_metadata", f".json fps={fps!r} is not a positive number")
    return meta


class ClipWindows(ResumableBatches):
    """Batches of windows from shards, one bucket a batch; bad clips are skipped and counted."""

    def __init__(
        self,
        urls: list[str],
        context_frames: int,
        buckets: list[tuple[int, int, int]],
        fps: float | None,
        train: bool,
        seed: int,
        strict: bool,
        batch_size: int,
        open_shards: int = 4,
        limit: int | None = None,
        prompt_template: str = "{caption}",
        resize_filter: str = "area",
        max_upscale: float | None = MAX_UPSCALE,
        chunks: int = 1,
    ) -> None:
        """chunks: prediction windows each clip's window holds in a row; beyond the first, the frames
        come as `continuation` (training on the model's own previous chunk, module.own_chunk)."""
        super().__init__(
            urls,
            train=train,
            seed=seed,
            batch_size=batch_size,
            strict=strict,
            open_shards=open_shards,
            limit=limit,
        )
        self.c, self.buckets, self.fps, self.chunks = context_frames, [tuple(b) for b in buckets], fps, chunks
        self.prompt_template, self.resize_filter, self.max_upscale = (
            prompt_template,
            resize_filter,
            max_upscale,
        )
        self.longest = (
            0  # frames of the longest clip probed (at the sampled rate): named when none is long enough
        )

    def bucket(self, info: VideoInfo, rate: float) -> tuple[int, int, int]:
        """The (height, width, future_frames) bucket nearest the clip's aspect among those it is long
        enough and large enough for."""
        frames = info.frames_at(rate)
        self.longest = max(self.longest, frames)
        fits = [b for b in self.buckets if frames >= window_length(self.c, b[2], self.chunks)]
        if not fits:
            raise TooShortError(f"{frames} frames at {rate:g} fps; {self.needs()}")
        large = [
            b
            for b in fits
            if self.max_upscale is None or upscale(info.height, info.width, b[0], b[1]) <= self.max_upscale
        ]
        if not large:
            h, w, _ = min(fits, key=lambda b: upscale(info.height, info.width, b[0], b[1]))
            raise BadSample(
                "too_small",
                f"{info.width}x{info.height} would be enlarged "
                f"{upscale(info.height, info.width, h, w):.1f}x to cover the {w}x{h} bucket "
                f"(data.max_upscale={self.max_upscale:g})",
            )
        aspect = math.log(info.width / info.height)
        return min(large, key=lambda b: (abs(aspect - math.log(b[1] / b[0])), -b[2]))

    def needs(self) -> str:
        """What the shortest bucket's window asks of a clip, in words."""
        future = min(b[2] for b in self.buckets)
        rate = f"{self.fps:g} fps" if self.fps else "the clip's own rate"
        windows = f"{future} future - 1" if self.chunks == 1 else f"{self.chunks} x ({future} future - 1)"
        need = window_length(self.c, future, self.chunks)
        return f"the window needs {need} frames ({self.c} context + {windows}) at {rate}"

    def unusable(self, where: str, skips) -> str:
        message = super().unusable(where, skips)
        if "too_short" in skips:
            message += f"; {self.needs()}, the longest clip seen has {self.longest}"
        return message

    def make_item(self, sample: dict, rng: random.Random) -> dict:
        key = sample["__key__"]
        unsafe = [k for k in sample if k.rsplit(".", 1)[-1] in PICKLE_EXTS]
        if unsafe:
            raise BadSample("unsafe_member", f"refusing pickle member(s) {unsafe} (never unpickled)")
        video_key = next((k for k in sample if k.rsplit(".", 1)[-1].lower() in VIDEO_EXTS), None)
        if video_key is None:
            members = [k for k in sample if not k.startswith("__")]
            raise BadSample("unknown_format", f"no video member ({', '.join(VIDEO_EXTS)}) among {members}")
        caption, _ = decode_caption(sample.get("txt", b""))
        if not caption:
            raise BadSample("no_caption", "missing or empty .txt caption")
        meta = clip_meta(sample.get("json", b"{}"))
        data = sample[video_key]
        try:
            info = probe(data)
            rate = self.fps or meta.get("fps") or info.fps
            height, width, future = self.bucket(info, rate)
            need = window_length(self.c, future, self.chunks)
            last_start = info.frames_at(rate) - need
            start = rng.randint(0, last_start) if self.train and last_start > 0 else 0
            frames = decode_window(
                data,
                start,
                need,
                height,
                width,
                fps=rate,
                info=info,  # (C + K(F-1), H, W, 3)
                resize_filter=self.resize_filter,
                name=f"{sample['__url__']} key {key}",
            )
        except VideoError as e:
            raise BadSample(e.reason, str(e)) from None
        try:
            prompt = self.prompt_template.format(**{**meta, "caption": caption})
        except KeyError as e:
            raise BadSample(
                "no_prompt_field", f"data.prompt_template needs {e} from the clip's .json"
            ) from None
        end = window_length(self.c, future)
        return {
            "context": frames[: self.c],
            "target": frames[self.c - 1 : end],
            **({"continuation": frames[end:]} if self.chunks > 1 else {}),
            "caption": caption,
            "prompt": prompt,
            "fps": rate,
            "key": key,
            "bucket": (height, width, future),
        }

    def bucket_of(self, item: dict) -> tuple[int, int, int]:
        return item["bucket"]

    def collate(self, items: list[dict]) -> dict:
        return collate(items)


def collate(samples: list[dict]) -> dict:
    """Windows of one bucket -> a batch (see the module docstring for its keys)."""
    more = (
        {"continuation": torch.from_numpy(np.stack([s["continuation"] for s in samples]))}
        if "continuation" in samples[0]
        else {}
    )
    return {
        "context": torch.from_numpy(np.stack([s["context"] for s in samples])),
        "target": torch.from_numpy(np.stack([s["target"] for s in samples])),
        **more,
        "caption": [s["caption"] for s in samples],
        "prompt": [s["prompt"] for s in samples],
        "fps": torch.tensor([s["fps"] for s in samples], dtype=torch.float32),
        "key": [s["key"] for s in samples],
    }


class VideoDataModule(ResumableData):
    """Train (endless, shuffled) and held-out (fixed, in order) windows from webdataset shards."""

    def __init__(
        self,
        train_shards: str,
        val_shards: str,
        context_frames: int = 4,
        future_frames: int = 17,
        height: int = 64,
        width: int = 64,
        fps: float | None = None,
        batch_size: int = 4,
        val_batch_size: int = 4,
        num_workers: int = 0,
        open_shards: int = 4,
        seed: int = 0,
        strict: bool = False,
        val_samples: int | None = None,
        prompt_template: str = "{caption}",
        buckets: list[list[int]] | None = None,
        epoch_samples: int | None = None,
        resize_filter: str = "area",
        max_upscale: float | None = MAX_UPSCALE,
        train_chunks: int = 1,
    ) -> None:
        """buckets: [[height, width, future_frames], ...] to train several shapes (one a batch);
        None: the single bucket (height, width, future_frames). epoch_samples: training samples per
        epoch (split over workers); None streams without end (Lightning's max_steps stops it).
        open_shards: shards read at once by each worker (a batch mixes samples across them).
        max_upscale: clips that would be enlarged more than this to cover a bucket are skipped
        (too_small); None takes any size. train_chunks: prediction windows each training clip holds in
        a row (K > 1: the batches carry the K-1 later windows' truth as `continuation`, what
        module.own_chunk trains on; clips shorter than C + K(F-1) frames are skipped as too_short)."""
        super().__init__()
        if isinstance(train_chunks, bool) or not isinstance(train_chunks, int) or train_chunks < 1:
            raise ValueError(
                f"data.train_chunks={train_chunks!r} must be a whole number of windows, 1 or more"
            )
        if resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"data.resize_filter={resize_filter!r}: use one of {', '.join(RESIZE_FILTERS)}")
        if max_upscale is not None and not max_upscale >= 1:
            raise ValueError(
                f"data.max_upscale={max_upscale} must be at least 1 (no enlarging), or null (any size)"
            )
        buckets = [tuple(b) for b in buckets] if buckets else [(height, width, future_frames)]
        for h, w, f in buckets:
            check_window(context_frames, f, h, w)
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(prompt_template) if name is not None]
        except ValueError as e:
            raise ValueError(
                f"data.prompt_template={prompt_template!r} is not a format string ({e}); "
                f"use {{caption}} and fields of the clip's .json"
            ) from None
        if any(not f.isidentifier() for f in fields):
            raise ValueError(
                f"data.prompt_template={prompt_template!r}: use named fields only, like {{caption}}"
            )
        self.train_urls = expand_shards(train_shards, "data.train_shards")
        self.val_urls = expand_shards(val_shards, "data.val_shards")
        common = dict(
            context_frames=context_frames,
            buckets=buckets,
            fps=fps,
            seed=seed,
            open_shards=open_shards,
            strict=strict,
            prompt_template=prompt_template,
            resize_filter=resize_filter,
            max_upscale=max_upscale,
        )
        per_worker = None if epoch_samples is None else max(1, epoch_samples // max(1, num_workers))
        self.train_set = ClipWindows(
            self.train_urls,
            train=True,
            batch_size=batch_size,
            limit=per_worker,
            chunks=train_chunks,
            **common,
        )
        self.val_set = ClipWindows(
            self.val_urls, train=False, batch_size=val_batch_size, limit=val_samples, **common
        )
        self.val_set.require_items = True  # a held-out set that is all skips is an error, not an empty score
        self.num_workers = num_workers
