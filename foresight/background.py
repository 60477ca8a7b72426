"""Host work beside the GPU's: read the next batch and write the last one while the models run.

A held-out pass (evaluate.py, predict.py, preprocess.py) decodes clips, runs the models, then encodes
or packs what they made. Done in turn, the GPU waits for PyAV twice per batch (a 768x512 window of
121 frames took 0.6 s to decode on a 2-core CPU, its h264 encoding 2.5 s, more for noisy frames).
PyAV and x264 release the GIL while they work, so threads overlap them with the models (reading: one;
writing: predict.py's `writers`, as one x264 encode leaves cores idle); the held-out set stays in
this process (its skip counts are read after the pass), unlike DataLoader workers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of `items`, produced by a thread up to `depth` ahead of the consumer, in order. An
    error while producing is raised here, at the item it would have been; closing this generator early
    (a break, an error in the consumer) stops the thread after the item it is making."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((_DONE, None))
        except BaseException as e:  # handed to the consumer, raised where the item was expected
            slots.put((_DONE, e))

    thread = threading.Thread(target=produce, name="read_ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # free a producer blocked on a full queue, then let it finish
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


class BackgroundWriter:
    """Runs write jobs on `workers` threads, at most `pending` batches behind the caller: `submit` waits
    for the oldest batch's jobs first (bounding the frames held in memory) and raises their error;
    `close` (or leaving the `with` block) waits for all of them. Leaving the block on an error (or
    Ctrl-C) cancels the jobs not yet started instead, and raises that error, not a write's."""

    def __init__(self, workers: int = 1, pending: int = 1) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="writer")
        self.pending = pending
        self.batches: list[list[Future]] = []

    def submit(self, jobs: list[Callable[[], object]]) -> None:
        while len(self.batches) >= self.pending:
            self._finish(self.batches.pop(0))
        self.batches.append([self.pool.submit(job) for job in jobs])

    @staticmethod
    def _finish(futures: list[Future]) -> None:
        for future in futures:
            future.result()  # re-raises a write's error in the caller

    def close(self) -> None:
        try:
            while self.batches:
                self._finish(self.batches.pop(0))
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:  # the jobs running finish (a file is never left half written by us), the rest are dropped
            self.pool.shutdown(wait=True, cancel_futures=True)
