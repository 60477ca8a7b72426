"""Resumable batches from webdataset shards: the exact data position survives a killed run.

A webdataset shard is a tar whose members group into samples by key (a member's path up to the
first dot of its file name; the rest is the member's extension). Training reads an endless random
stream: `open_shards` shards are open at once, each next sample comes from a randomly chosen open
shard, and a shard that ends is replaced by the next of a random order of all shards (a new order
each cycle, so no rank or worker ever runs dry). Every random choice is seeded by (seed, stream,
counter) rather than by a running generator, so a position is a small JSON-able dict:

    {"epoch": e, "produced": n windows this epoch, "draws": shards drawn, "samples": samples read,
     "slots": [[url, next sample index] | None, ...],   # the open shards
     "pending": [[url, index, sample number], ...],     # read but still waiting in a bucket
     "skips": {reason: count}}

and restoring one reads tar headers up to the open positions (never decodes skipped video) and
re-reads only the few pending samples. Every batch carries the position after it
(`batch["position"]`); `ResumableData.consumed(batch)` records it and the DataModule's
`state_dict()` -- saved in every training-state checkpoint -- holds the positions of all workers
(and, under DDP, all ranks).
"""

from __future__ import annotations

import itertools
import logging
import random
import tarfile
from collections import Counter
from typing import Any, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

log = logging.getLogger(__name__)


class BadSample(Exception):
    """A sample that cannot be used; `reason` is the key it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NoUsableSamples(ValueError):
    """Every sample of every shard was skipped: training would spin forever, validation has nothing."""


SHARD_ERRORS = (tarfile.TarError, OSError, EOFError)  # a truncated, unreadable or non-tar shard


def counted(skips: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(skips.items())) or "nothing"


def shard_samples(url: str, start: int = 0) -> Iterator[tuple[int, dict]]:
    """(index, sample) for each sample of a tar shard from `start` on; earlier ones cost a header read.

    A sample is {"__key__", "__url__", "__index__", ext: bytes, ...}, members grouped by key as
    webdataset groups them (consecutive members of one key).
    """
    index, key, sample = -1, None, {}
    try:
        tar = tarfile.open(url, "r:*")
    except tarfile.ReadError:  # its own message lists every compression it tried, over five lines
        raise tarfile.ReadError("not a tar archive") from None
    with tar:
        try:
            for member in tar:  # reads headers only; data is read below for wanted samples
                if not member.isfile():
                    continue
                directory, _, name = member.name.rpartition("/")
                if name.startswith(".") or "." not in name:
                    continue
                stem, ext = name.split(".", 1)
                member_key = f"{directory}/{stem}" if directory else stem
                if member_key != key:
                    if sample:
                        yield index, sample
                    index, key, sample = index + 1, member_key, {}
                    if index >= start:
                        sample = {"__key__": key, "__url__": url, "__index__": index}
                if index >= start:
                    sample[ext] = tar.extractfile(member).read()
        except (tarfile.TarError, EOFError) as e:
            raise tarfile.ReadError(f"cut short in sample {max(index, 0)} ({e})") from None
    if sample:
        yield index, sample


def read_sample(url: str, index: int) -> dict:
    for _, sample in shard_samples(url, index):
        return sample
    raise BadSample("bad_shard", f"{url} has no sample {index} any more (was the shard rewritten?)")


def seeded(*parts: Any) -> random.Random:
    """A generator for one decision, named by its parts (string seeds hash the same in every process)."""
    return random.Random("/".join(map(str, parts)))


class TrainStream:
    """The endless random sample stream of one (rank, worker, epoch); `position` resumes it."""

    def __init__(self, urls: list[str], name: str, open_shards: int, position: dict, skips: Counter) -> None:
        self.urls, self.name, self.skips = urls, name, skips
        self.draws = position.get("draws", 0)
        self.samples = position.get("samples", 0)
        self.slots: list[list | None] = position.get("slots") or [None] * open_shards
        self.readers: dict[int, Iterator] = {}
        # sample number at which each slot's shard was opened (-1: restored mid-shard), and for each
        # shard the opening sample of its last read from start to end: the proof, when every shard
        # was read whole after a point, that nothing after that point was usable
        self.opened = [-1] * len(self.slots)
        self.read_whole: dict[str, int] = {}
        self.damaged: set[str] = set()  # shards that could not be read to the end

    def position(self) -> dict:
        return {"draws": self.draws, "samples": self.samples, "slots": [s and list(s) for s in self.slots]}

    def __iter__(self) -> Iterator[dict]:
        while True:
            slot = seeded(self.name, "slot", self.samples).randrange(len(self.slots))
            sample = self.next_from(slot)
            sample["__n__"] = self.samples
            self.samples += 1
            yield sample

    def next_from(self, slot: int) -> dict:
        for _ in range(2 * len(self.urls) + 8):  # enough draws to meet a readable shard if one exists
            if self.slots[slot] is None:
                # shards in a fresh random order each cycle: open shards differ while there are enough
                cycle, turn = divmod(self.draws, len(self.urls))
                order = list(self.urls)
                seeded(self.name, "cycle", cycle).shuffle(order)
                url = order[turn]
                self.draws += 1
                self.slots[slot] = [url, 0]
                self.opened[slot] = self.samples
                self.readers.pop(slot, None)
            url, start = self.slots[slot]
            try:
                reader = self.readers.setdefault(slot, shard_samples(url, start))
                index, sample = next(reader)
            except StopIteration:
                self.shard_done(slot, url)
                continue
            except SHARD_ERRORS as e:
                if url not in self.damaged:  # once per shard: the stream meets it again every cycle
                    log.warning("skipping the rest of shard %s: %s", url, e)
                    self.damaged.add(url)
                self.skips["bad_shard"] += 1
                self.shard_done(slot, url)
                continue
            self.slots[slot] = [url, index + 1]
            return sample
        raise NoUsableSamples(
            f"no readable sample in {len(self.urls)} shard(s) such as {self.urls[0]}; check data.train_shards"
        )

    def shard_done(self, slot: int, url: str) -> None:
        if self.opened[slot] >= 0:
            self.read_whole[url] = self.opened[slot]
        self.slots[slot] = None

    def all_read_since(self, sample: int) -> bool:
        """Whether every shard was read from start to end after stream sample number `sample`."""
        return all(self.read_whole.get(url, -1) >= sample for url in self.urls)


class ResumableBatches(IterableDataset):
    """Raw samples -> items (`make_item`, which may raise BadSample) -> batches of one bucket each.

    train: the endless TrainStream, split by rank and worker, resumable; otherwise (held-out): every
    shard once, in order, with leftovers flushed. `limit`: items per worker per epoch (None: no end).
    Subclasses define make_item(sample, rng), bucket_of(item) and collate(items).
    """

    def __init__(
        self,
        urls: list[str],
        train: bool,
        seed: int,
        batch_size: int,
        strict: bool = False,
        open_shards: int = 4,
        limit: int | None = None,
    ) -> None:
        self.urls, self.train, self.seed, self.batch_size, self.strict = urls, train, seed, batch_size, strict
        self.open_shards, self.limit = open_shards, limit
        self.rank = 0  # set by the DataModule from the trainer (workers cannot ask torch.distributed)
        self.epoch = 0  # advances per pass in this process (workers persist), so epochs differ
        self.resume: dict | None = None  # {"epoch", "offset", "workers": {logical id: position}}
        self.skips: Counter[str] = Counter()
        self.require_items = False  # held-out: a pass that yields nothing is an error (not an empty set)

    def make_item(self, sample: dict, rng: random.Random) -> dict:
        raise NotImplementedError

    def bucket_of(self, item: dict):
        raise NotImplementedError

    def collate(self, items: list[dict]) -> dict:
        raise NotImplementedError

    def unusable(self, where: str, skips: Counter) -> str:
        """The one-line error when no sample of `where` could be used (subclasses add what they know)."""
        return f"no usable sample in {where}: skipped {counted(skips)}"

    def items(
        self, samples: Iterator[dict], name: str, skips: Counter, stream: TrainStream | None = None
    ) -> Iterator[dict]:
        """Items of the samples, bad ones skipped and counted. With the training `stream`, a run of
        skips that spans a whole read of every shard ends the stream (it would never yield again)."""
        run_from: int | None = None  # stream number of the first sample of the current run of skips
        for sample in samples:
            try:
                item = self.make_item(sample, seeded(name, "item", sample.get("__n__", sample["__index__"])))
            except BadSample as e:
                where = f"{sample['__url__']} key {sample['__key__']}"
                if self.strict:
                    raise ValueError(f"bad sample in {where}: {e} (data.strict=true)") from None
                skips[e.reason] += 1
                log.debug("skipped %s: %s", where, e)
                if stream is not None:
                    run_from = sample["__n__"] if run_from is None else run_from
                    if stream.all_read_since(run_from):
                        raise NoUsableSamples(
                            self.unusable(
                                f"the {len(self.urls)} training shard(s) such as {self.urls[0]}", skips
                            )
                        ) from None
                continue
            run_from = None
            item["ref"] = [sample["__url__"], sample["__index__"], sample.get("__n__", 0)]
            yield item

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        yield from self.train_batches(worker, workers) if self.train else self.held_out_batches()
        self.epoch += 1

    def held_out_batches(self) -> Iterator[dict]:
        skips: Counter[str] = Counter()
        self.skips = skips  # readable after the pass (the held-out set is read in the main process)
        items = self.items(self.readable_samples(skips), f"{self.seed}/heldout", skips)
        if self.limit is not None:
            items = itertools.islice(items, self.limit)
        buffers: dict[Any, list[dict]] = {}
        produced = 0
        for item in items:
            produced += 1
            buf = buffers.setdefault(self.bucket_of(item), [])
            buf.append(item)
            if len(buf) == self.batch_size:
                yield self.collate(buffers.pop(self.bucket_of(item)))
        for buf in buffers.values():
            yield self.collate(buf)
        if not produced and self.require_items:
            raise NoUsableSamples(
                self.unusable(f"the {len(self.urls)} held-out shard(s) such as {self.urls[0]}", skips)
            )
        if skips:
            log.warning("held-out set: skipped %s", dict(skips))

    def readable_samples(self, skips: Counter) -> Iterator[dict]:
        """Every sample of every shard in order; a shard that is not a tar, or ends mid-member, gives
        the samples before the damage and counts one bad_shard (data.strict=true: an error naming it)."""
        for url in self.urls:
            try:
                for _, sample in shard_samples(url):
                    yield sample
            except SHARD_ERRORS as e:
                if self.strict:
                    raise ValueError(f"unreadable shard {url}: {e} (data.strict=true)") from None
                log.warning("skipping the rest of shard %s: %s", url, e)
                skips["bad_shard"] += 1

    def train_batches(self, worker: int, workers: int) -> Iterator[dict]:
        # After a resume the worker that runs first must continue the stream of the worker that was
        # next in line, so physical worker i plays logical worker (offset + i) for that epoch.
        resume = self.resume if self.resume and self.resume["epoch"] == self.epoch else None
        logical = (worker + resume["offset"]) % workers if resume else worker
        position = (resume or {}).get("workers", {}).get(str(logical), {})
        position = position if position.get("epoch") == self.epoch else {}  # stale: from an earlier epoch
        skips = Counter(position.get("skips", {}))
        name = f"{self.seed}/{self.rank}.{logical}.{self.epoch}"
        stream = TrainStream(self.urls, name, self.open_shards, position, skips)
        buffers: dict[Any, list[dict]] = {}
        for url, index, n in position.get("pending", []):  # read before the position, not yet batched
            for item in self.items([{**read_sample(url, index), "__n__": n}], name, skips):
                buffers.setdefault(self.bucket_of(item), []).append(item)
        produced = position.get("produced", 0)
        items = self.items(iter(stream), name, skips, stream)
        while self.limit is None or produced < self.limit:
            item = next(items)
            produced += 1
            buf = buffers.setdefault(self.bucket_of(item), [])
            buf.append(item)
            if len(buf) < self.batch_size:
                continue
            batch = self.collate(buffers.pop(self.bucket_of(item)))
            batch["worker"] = logical
            batch["position"] = {
                "epoch": self.epoch,
                "produced": produced,
                **stream.position(),
                "pending": [i["ref"] for buf in buffers.values() for i in buf],
                "skips": dict(skips),
            }
            yield batch


class ResumableData(L.LightningDataModule):
    """What the video and feature DataModules share: loaders, skip totals, the saved data position."""

    train_set: ResumableBatches
    val_set: ResumableBatches
    num_workers: int

    def __init__(self) -> None:
        super().__init__()
        self.positions: dict[str, dict] = {}  # logical worker -> position after its last consumed batch
        self.last_worker: int | None = None

    def train_dataloader(self) -> DataLoader:
        self.train_set.rank = self.trainer.global_rank if self.trainer is not None else 0
        # page-locked batches on a GPU: the copy to the device then overlaps the previous step
        on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(
            self.train_set,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=on_gpu,
        )

    def val_dataloader(self) -> DataLoader:
        # one process: the held-out order must not depend on how many workers there are
        return DataLoader(self.val_set, batch_size=None, num_workers=0)

    def consumed(self, batch: dict) -> dict[str, int]:
        """Record a training batch as used; returns skip totals by reason over all workers."""
        worker = batch["worker"]
        self.positions[str(worker)] = batch["position"]
        self.last_worker = worker
        totals: Counter[str] = Counter()
        for position in self.positions.values():
            totals.update(position.get("skips", {}))
        return dict(totals)

    def val_skip_counts(self) -> dict[str, int]:
        """What the last pass over the held-out set skipped, by reason."""
        return dict(self.val_set.skips)

    def local_state(self) -> dict:
        workers = max(self.num_workers, 1)
        epoch = max((p.get("epoch", 0) for p in self.positions.values()), default=0)
        offset = 0 if self.last_worker is None else (self.last_worker + 1) % workers
        return {"epoch": epoch, "offset": offset, "num_workers": self.num_workers, "workers": self.positions}

    def state_dict(self) -> dict:
        state = self.local_state()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(ranks, state)  # every rank dumps the checkpoint
            return {"ranks": ranks}
        return {"ranks": [state]}

    def load_state_dict(self, state: dict) -> None:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        ranks = state.get("ranks", [])
        if len(ranks) <= rank:
            log.warning(
                "the checkpoint holds data positions for %d rank(s), this is rank %d: its data "
                "stream starts fresh",
                len(ranks),
                rank,
            )
            return
        mine = ranks[rank]
        if mine["num_workers"] != self.num_workers:
            log.warning(
                "data.num_workers was %d, now %d: the data streams start fresh (the position is "
                "kept only with the same number of workers)",
                mine["num_workers"],
                self.num_workers,
            )
            return
        self.positions = dict(mine["workers"])
        self.last_worker = None if not self.positions else (mine["offset"] - 1) % max(self.num_workers, 1)
        self.train_set.resume = mine
        self.train_set.epoch = mine["epoch"]
