"""Training progress in optimizer steps: a rich bar on a terminal, a log line per interval elsewhere.

Lightning's bars count epochs and batches per epoch; our training stream is endless, so the unit
that means something is the step out of `trainer.max_steps` (a resumed run starts where it stopped).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import traceback
import warnings
from collections import deque

import lightning as L
import torch
from lightning.pytorch.callbacks.progress import ProgressBar
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger(__name__)


class StepsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} steps/s" if task.speed else "- steps/s", style="cyan")


class StepProgress(ProgressBar):
    """Loss, steps/s and ETA for the run; validation as a passing second bar. `log_every`: steps
    between loss updates (and log lines when stdout is not a terminal: SLURM, CI); 0 uses
    trainer.log_every_n_steps."""

    def __init__(self, log_every: int = 0) -> None:
        super().__init__()
        self.log_every = log_every
        self.enabled = True
        self.progress: Progress | None = None
        self.train_task = self.val_task = None
        self.started = self.start_step = 0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        self.started, self.start_step = time.monotonic(), trainer.global_step
        console = Console(stderr=True)
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                StepsPerSecond(),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=console,
                speed_estimate_period=60,
            )
            self.progress.start()
            self.train_task = self.progress.add_task(
                "train", total=trainer.max_steps, completed=trainer.global_step, loss="-"
            )

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        every = self.log_every or trainer.log_every_n_steps
        shown = trainer.global_step % every == 0 or trainer.global_step == trainer.max_steps
        # reading the loss waits for the GPU to finish the step: only when it is shown, not every step
        loss = (
            f"{float(outputs['loss']):.4f}"
            if shown and isinstance(outputs, dict) and "loss" in outputs
            else None
        )
        if self.progress is not None:
            self.progress.update(
                self.train_task, completed=trainer.global_step, **({"loss": loss} if loss else {})
            )
            return
        if shown:
            done = trainer.global_step - self.start_step
            rate = done / max(time.monotonic() - self.started, 1e-9)
            eta = (trainer.max_steps - trainer.global_step) / rate if rate else float("nan")
            log.info(
                "step %d/%d  loss %s  %.2f steps/s  ETA %s",
                trainer.global_step,
                trainer.max_steps,
                loss,
                rate,
                time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "-",
            )

    def on_validation_start(self, trainer, module) -> None:
        if self.progress is not None and not trainer.sanity_checking:
            total = trainer.num_val_batches[0] if trainer.num_val_batches else None
            self.val_task = self.progress.add_task(
                "validate", total=None if total == float("inf") else total, loss="-"
            )

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.progress is not None and self.val_task is not None:
            self.progress.advance(self.val_task)

    def on_validation_end(self, trainer, module) -> None:
        if self.progress is not None and self.val_task is not None:
            self.progress.remove_task(self.val_task)
            self.val_task = None

    def on_train_end(self, trainer, module) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_exception(self, trainer, module, exception) -> None:
        self.on_train_end(trainer, module)  # give the terminal back before the error is printed


class StepTimes(L.Callback):
    """Logs `perf/step_ms`, the median time between the last `window` step ends, and on a GPU
    `perf/peak_gib`, the peak memory allocated since training started.

    Time between step ends is the step as the run pays for it: data wait, forward, backward,
    optimizer and every callback. On a GPU it is read from CUDA events recorded on the stream at
    each step end, once they have completed, so measuring never makes the host wait for the GPU (a
    host sync per step would leave the GPU idle while the next step is prepared). The median shrugs
    off the compile of the first steps and the rare slow step, so a sweep can compare runs on it."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.times: deque[float] = deque(maxlen=window)  # ms
        self.marks: deque = deque()  # step ends not yet measured: CUDA events, or host times on a CPU

    def on_train_start(self, trainer, module) -> None:
        self.times.clear()
        self.marks.clear()
        if module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if module.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
            while len(self.marks) >= 2 and self.marks[1].query():  # events complete in stream order
                start = self.marks.popleft()
                self.times.append(start.elapsed_time(self.marks[0]))
            if self.times:  # CPU tensors: logging a float would copy it to the GPU, a sync
                module.log(
                    "perf/peak_gib",
                    torch.tensor(torch.cuda.max_memory_allocated(module.device) / 2**30),
                    batch_size=1,
                    rank_zero_only=True,
                )
        else:
            self.marks.append(time.perf_counter())
            if len(self.marks) == 2:
                self.times.append((self.marks[1] - self.marks.popleft()) * 1e3)
        if self.times:
            module.log(
                "perf/step_ms", torch.tensor(statistics.median(self.times)), batch_size=1, rank_zero_only=True
            )


SYNC_WARNING = "called a synchronizing CUDA operation"  # torch.cuda's sync debug mode, "warn"


class HostSyncs(L.Callback):
    """Logs `perf/host_syncs`, how many times a training step made the host wait for the GPU, on
    average over the steps from `after` on (compilation and warm-up excluded), and at the end of
    training says where the first one came from.

    A sync in the step (a `.item()`, a blocking copy to or from the device) makes the host wait
    until the GPU has finished everything queued, so nothing of what follows is queued meanwhile. On a
    GPU, torch.cuda's sync debug mode is on from each step's start to its end (this callback's end
    of step: put it before callbacks whose end-of-step work may sync, such as checkpoint saving), and
    warns at each synchronising call; those warnings are counted, every other one passes through."""

    def __init__(self, after: int = 8) -> None:
        self.after = after
        self.count = 0
        self.steps = 0
        self.first: str | None = None
        self.saved: warnings.catch_warnings | None = None  # the warning settings to restore at the end
        self.show = warnings.showwarning

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step < self.after:
            return
        if self.saved is None:
            self.saved = warnings.catch_warnings()
            self.saved.__enter__()
            self.show = warnings.showwarning
            warnings.filterwarnings("always", message=SYNC_WARNING)  # each one, not once per line
            warnings.showwarning = self.record
        if module.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")

    def record(self, message, category, filename, lineno, file=None, line=None) -> None:
        if SYNC_WARNING not in str(message):
            return self.show(message, category, filename, lineno, file, line)
        self.count += 1
        if self.first is None:  # the innermost frame outside torch, warnings and this file
            skip = (os.path.dirname(torch.__file__) + os.sep, warnings.__file__, __file__)
            self.first = next(
                (
                    f"{f.filename}:{f.lineno} ({f.line})"
                    for f in reversed(traceback.extract_stack())
                    if not f.filename.startswith(skip)
                ),
                "an unknown place",
            )
        return None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.saved is None:
            return
        if module.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
        self.steps += 1
        module.log(
            "perf/host_syncs", torch.tensor(self.count / self.steps), batch_size=1, rank_zero_only=True
        )

    def on_train_end(self, trainer, module) -> None:
        self.restore()
        if self.count:
            log.warning(
                "the training step made the host wait for the GPU %.1f times a step (the first at %s): "
                "copy to the device with non_blocking=True and keep values there",
                self.count / max(self.steps, 1),
                self.first,
            )

    def on_exception(self, trainer, module, exception) -> None:
        self.restore()

    def restore(self) -> None:
        if self.saved is None:
            return
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
        self.saved.__exit__(None, None, None)  # filters and showwarning as they were
        self.saved = None
