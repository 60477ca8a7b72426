"""Clips a second over a loop of batches (evaluate.py, its rollouts, predict.py, preprocess.py).

The first batch pays for what later ones reuse (torch.compile's compilation, cuDNN's algorithm search,
the allocator's first blocks), so beside the rate over the whole loop the rate after the first batch
is kept: what a long run gets per second, and what to compare between settings.
"""

from __future__ import annotations

import time


class Throughput:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.clips = 0
        self.after_first: tuple[int, float] | None = None  # (clips, time) when the first batch ended

    def add(self, clips: int) -> None:
        """A batch of `clips` is done (its results on the host, so the GPU's work is counted)."""
        self.clips += clips
        if self.after_first is None:
            self.after_first = (self.clips, time.perf_counter())

    def report(self) -> dict[str, float | None]:
        """seconds and clips_per_second over the whole loop; steady_clips_per_second after the first
        batch (None with one batch or none)."""
        now = time.perf_counter()
        seconds = now - self.started
        steady = None
        if self.after_first is not None and self.clips > self.after_first[0]:
            first_clips, first_end = self.after_first
            steady = (self.clips - first_clips) / (now - first_end)
        return {
            "seconds": round(seconds, 2),
            "clips_per_second": self.clips / seconds if seconds > 0 else 0.0,
            "steady_clips_per_second": steady,
        }


def rate_text(report: dict) -> str:
    """A report's rates as the entry points print them: "3.20 clips/s, 4.10 after the first batch"."""
    steady = report["steady_clips_per_second"]
    return f"{report['clips_per_second']:.2f} clips/s" + (
        f", {steady:.2f} after the first batch" if steady else ""
    )
