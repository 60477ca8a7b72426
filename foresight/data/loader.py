"""Webdataset shards of video-text pairs -> windowed training batches, bad samples skipped and counted.

A batch is a dict:
    context  uint8 (B, C, H, W, 3)   frames [s, s+C) for the VLM
    target   uint8 (B, F, H, W, 3)   frames [s+C-1, s+C-1+F): target[:, 0] == context[:, -1]
    caption  list[str]               the caption (what T5 reads)
    prompt   list[str]               the caption in `prompt_template` (what the VLM reads)
    fps      float32 (B,)            rate of the returned frames
    key      list[str]
    skips    dict[str, int]          cumulative skips by reason in the worker that made the batch
    worker   int                     that worker's id (0 without workers)
`VideoDataModule.skip_counts(batch)` folds the per-worker counts into totals for logging.

Buckets: several (height, width, future_frames) shapes may be configured; each clip goes to the
bucket nearest its aspect ratio among those it is long enough for, and every batch is drawn from
one bucket (the dataset batches, so the DataLoader runs with batch_size=None).
"""

from __future__ import annotations

import glob
import string
import json
import logging
import math
import random
from collections import Counter
from pathlib import Path

import braceexpand
import lightning as L
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from foresight.data.video import RESIZE_FILTERS, TooShortError, VideoError, VideoInfo, decode_window, probe
from foresight.data.window import check_window, window_length

log = logging.getLogger(__name__)

VIDEO_EXTS = ("mp4", "webm", "mkv", "mov", "avi")
PICKLE_EXTS = ("pth", "pyd", "pickle", "pkl", "pt")  # never decoded: unpickling runs code


class BadSample(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def expand_shards(spec: str, field: str) -> list[str]:
    """Brace-expand and glob a shard spec; a clear error when nothing matches."""
    urls = [u for part in braceexpand.braceexpand(spec) for u in (sorted(glob.glob(part)) or [part])]
    missing = [u for u in urls if "://" not in u and not Path(u).exists()]
    if not urls or len(missing) == len(urls):
        raise FileNotFoundError(f"{field}={spec!r} matched no files; for the bundled sample run "
                                f"`python -m foresight.data.sample_world --out data/sample`")
    return [u for u in urls if u not in missing]


def batched_by(samples, key, batch_size: int, collate_fn, flush: bool):
    """Group an iterable of samples into batches of one key each; flush: also yield the leftovers."""
    buffers: dict = {}
    for sample in samples:
        buf = buffers.setdefault(key(sample), [])
        buf.append(sample)
        if len(buf) == batch_size:
            yield collate_fn(buf)
            buffers[key(sample)] = []
    if flush:
        for buf in buffers.values():
            if buf:
                yield collate_fn(buf)


class ClipWindows(IterableDataset):
    """Batches of windows from shards, one bucket a batch; each worker counts what it had to skip."""

    def __init__(self, urls: list[str], context_frames: int, buckets: list[tuple[int, int, int]],
                 fps: float | None, train: bool, seed: int, shuffle_buffer: int, strict: bool, batch_size: int,
                 limit: int | None = None, prompt_template: str = "{caption}", resize_filter: str = "area") -> None:
        self.resize_filter = resize_filter
        self.urls, self.train, self.seed, self.strict, self.limit = urls, train, seed, strict, limit
        self.c, self.buckets, self.fps, self.batch_size = context_frames, [tuple(b) for b in buckets], fps, batch_size
        self.shuffle_buffer = shuffle_buffer
        self.prompt_template = prompt_template
        self.skips: Counter[str] = Counter()
        self.epoch = 0  # advances per pass in this process (workers persist), so epochs differ

    def raw_samples(self):
        if self.train:  # shards drawn at random with replacement: no worker or rank ever runs dry
            seed = self.seed + 7919 * self.epoch
            ds = wds.WebDataset(self.urls, resampled=True, shardshuffle=False, seed=seed,
                                nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, empty_check=False)
            return ds.shuffle(self.shuffle_buffer, rng=random.Random(seed))
        # held-out: every shard once, in order, in the main process's order of keys
        return wds.WebDataset(self.urls, shardshuffle=False, nodesplitter=None, workersplitter=None,
                              empty_check=False)

    def bucket(self, info: VideoInfo, rate: float) -> tuple[int, int, int]:
        """The (height, width, future_frames) bucket nearest the clip's aspect among those it fills."""
        fits = [b for b in self.buckets if info.frames_at(rate) >= window_length(self.c, b[2])]
        if not fits:
            shortest = min(window_length(self.c, b[2]) for b in self.buckets)
            raise TooShortError(f"{info.frames_at(rate)} frames at {rate:g} fps; the shortest bucket needs {shortest}")
        aspect = math.log(info.width / info.height)
        return min(fits, key=lambda b: (abs(aspect - math.log(b[1] / b[0])), -b[2]))

    def window(self, sample: dict, rng: random.Random) -> dict:
        key = sample.get("__key__", "?")
        unsafe = [k for k in sample if k.rsplit(".", 1)[-1] in PICKLE_EXTS]
        if unsafe:
            raise BadSample("unsafe_member", f"refusing pickle member(s) {unsafe} (never unpickled)")
        video_key = next((k for k in sample if k.rsplit(".", 1)[-1].lower() in VIDEO_EXTS), None)
        if video_key is None:
            members = [k for k in sample if not k.startswith("__")]
            raise BadSample("unknown_format", f"no video member ({', '.join(VIDEO_EXTS)}) among {members}")
        caption = sample.get("txt", b"").decode("utf-8", errors="replace").strip()
        if not caption:
            raise BadSample("no_caption", "missing or empty .txt caption")
        meta = json.loads(sample["json"]) if "json" in sample else {}
        data = sample[video_key]
        try:
            info = probe(data)
            rate = self.fps or float(meta.get("fps") or info.fps)
            height, width, future = self.bucket(info, rate)
            need = window_length(self.c, future)
            last_start = info.frames_at(rate) - need
            start = rng.randint(0, last_start) if self.train and last_start > 0 else 0
            frames = decode_window(data, start, need, height, width, fps=rate, info=info,
                                   resize_filter=self.resize_filter)  # (C+F-1, H, W, 3)
        except VideoError as e:
            raise BadSample(e.reason, str(e)) from None
        try:
            prompt = self.prompt_template.format(**{**meta, "caption": caption})
        except KeyError as e:
            raise BadSample("no_prompt_field", f"data.prompt_template needs {e} from the clip's .json") from None
        return {"context": frames[: self.c], "target": frames[self.c - 1:], "caption": caption,
                "prompt": prompt, "fps": rate, "key": key, "bucket": (height, width, future)}

    def windows(self, worker: int, skips: Counter):
        rng = random.Random((self.seed * 1009 + worker) * 1_000_003 + self.epoch)  # window starts, per worker and epoch
        produced = 0
        for sample in self.raw_samples():
            try:
                out = self.window(sample, rng)
            except BadSample as e:
                where = f"{sample.get('__url__', '?')} key {sample.get('__key__', '?')}"
                if self.strict:
                    raise ValueError(f"bad sample in {where}: {e} (data.strict=true)") from None
                skips[e.reason] += 1
                log.debug("skipped %s: %s", where, e)
                continue
            yield out
            produced += 1
            if self.limit is not None and produced >= self.limit:
                break

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info else 0
        skips: Counter[str] = Counter()
        self.skips = skips  # readable after iterating in this process (held-out set: no workers)

        def stamped(samples: list[dict]) -> dict:
            batch = collate(samples)
            batch["skips"], batch["worker"] = dict(skips), worker
            return batch

        yield from batched_by(self.windows(worker, skips), lambda s: s["bucket"], self.batch_size, stamped,
                              flush=not self.train)
        self.epoch += 1
        if not self.train and skips:
            log.warning("held-out set: skipped %s", dict(skips))


def collate(samples: list[dict]) -> dict:
    """Windows of one bucket -> a batch (see the module docstring for its keys)."""
    return {
        "context": torch.from_numpy(np.stack([s["context"] for s in samples])),
        "target": torch.from_numpy(np.stack([s["target"] for s in samples])),
        "caption": [s["caption"] for s in samples],
        "prompt": [s["prompt"] for s in samples],
        "fps": torch.tensor([s["fps"] for s in samples], dtype=torch.float32),
        "key": [s["key"] for s in samples],
    }


class VideoDataModule(L.LightningDataModule):
    """Train (endless, shuffled) and held-out (fixed, in order) windows from webdataset shards."""

    def __init__(self, train_shards: str, val_shards: str, context_frames: int = 4, future_frames: int = 17,
                 height: int = 64, width: int = 64, fps: float | None = None, batch_size: int = 4,
                 val_batch_size: int = 4, num_workers: int = 0, shuffle_buffer: int = 64, seed: int = 0,
                 strict: bool = False, val_samples: int | None = None, prompt_template: str = "{caption}",
                 buckets: list[list[int]] | None = None, epoch_samples: int | None = None,
                 resize_filter: str = "area") -> None:
        """buckets: [[height, width, future_frames], ...] to train several shapes (one a batch);
        None: the single bucket (height, width, future_frames). epoch_samples: training samples per
        epoch (split over workers); None streams without end (Lightning's max_steps stops it)."""
        super().__init__()
        if resize_filter not in RESIZE_FILTERS:
            raise ValueError(f"data.resize_filter={resize_filter!r}: use one of {', '.join(RESIZE_FILTERS)}")
        buckets = [tuple(b) for b in buckets] if buckets else [(height, width, future_frames)]
        for h, w, f in buckets:
            check_window(context_frames, f, h, w)
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(prompt_template) if name is not None]
        except ValueError as e:
            raise ValueError(f"data.prompt_template={prompt_template!r} is not a format string ({e}); "
                             f"use {{caption}} and fields of the clip's .json") from None
        if any(not f.isidentifier() for f in fields):
            raise ValueError(f"data.prompt_template={prompt_template!r}: use named fields only, like {{caption}}")
        self.train_urls = expand_shards(train_shards, "data.train_shards")
        self.val_urls = expand_shards(val_shards, "data.val_shards")
        common = dict(context_frames=context_frames, buckets=buckets, fps=fps, seed=seed,
                      shuffle_buffer=shuffle_buffer, strict=strict, prompt_template=prompt_template,
                      resize_filter=resize_filter)
        per_worker = None if epoch_samples is None else max(1, epoch_samples // max(1, num_workers))
        self.train_set = ClipWindows(self.train_urls, train=True, batch_size=batch_size, limit=per_worker, **common)
        self.val_set = ClipWindows(self.val_urls, train=False, batch_size=val_batch_size, limit=val_samples, **common)
        self.num_workers = num_workers
        self._skips: dict[int, dict[str, int]] = {}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        # one process: the held-out order must not depend on how many workers there are
        return DataLoader(self.val_set, batch_size=None, num_workers=0)

    def val_skip_counts(self) -> dict[str, int]:
        """What the last pass over the held-out set skipped, by reason."""
        return dict(self.val_set.skips)

    def skip_counts(self, batch: dict) -> dict[str, int]:
        """Totals by reason over all train workers, updated with this batch's worker counts."""
        self._skips[batch["worker"]] = batch["skips"]
        totals: Counter[str] = Counter()
        for counts in self._skips.values():
            totals.update(counts)
        return dict(totals)
