"""Where the trainer's step goes: torch.profiler over a few steps of train.py's own loop after its
warm-up, per lever, in one process (a lead, not a figure). For each lever it writes
$OUT/profile_<lever>.txt: wall time of the profiled steps, how long the GPU was busy in them (the
union of kernel intervals: the rest is the GPU waiting for the host), the kernel table and the host
table. Host-device synchronisations: the rows' `host_syncs_per_step` (perf/host_syncs, counted by
foresight.training.progress.HostSyncs; the first runs of this script, before that existed, recorded
them here with the Python stack that made them).

    OUT=. python benchmarks/2026-12-02_profile_trainer_step.py --model ltx_2b --vlm 7b --options B \
        --checkpointing off --compile --warmup 8 --steps 20 \
        --lever bf16 +callbacks.profile.name=bf16 \
        --lever fp8 model.dit_quantize=fp8 +callbacks.profile.name=fp8 \
        --set '+callbacks.profile._target_=__main__.ProfileSteps'

Every argument is foresight.bench.training's; the callback below rides in through its --set.
"""

import os

import lightning as L
import torch
from torch.profiler import ProfilerActivity, profile

from foresight.bench.profiling import busy_ms, wall_ms
from foresight.bench.training import main


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class ProfileSteps(L.Callback):
    """Profiles steps [start, start + count) of the run and writes the report at the last of them."""

    def __init__(self, name: str, start: int = 10, count: int = 3) -> None:
        self.name, self.start, self.count = name, start, count
        self.prof = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.start:
            sync()
            self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            self.prof.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.prof is None or trainer.global_step != self.start + self.count:
            return
        sync()
        self.prof.__exit__(None, None, None)
        events = self.prof.events()
        wall = wall_ms(events)
        averages = self.prof.key_averages()
        lines = [
            f"lever {self.name}: steps {self.start}..{self.start + self.count - 1}",
            f"wall {wall:.1f} ms ({wall / self.count:.1f} a step), GPU busy {busy_ms(events):.1f} ms "
            f"({busy_ms(events) / self.count:.1f} a step)",
            "",
            averages.table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=90),
            averages.table(sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=90),
        ]
        report = "\n".join(lines)
        print(report.split("\n\n")[0], flush=True)
        path = os.path.join(os.environ.get("OUT", "."), f"profile_{self.name}.txt")
        with open(path, "w") as f:
            f.write(report)
        self.prof = None


if __name__ == "__main__":
    main()
