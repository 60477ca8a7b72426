"""Where a step makes the host wait for the device, found on any machine (a CPU in CI too).

A training step or a prediction at full size is host-bound: the GPU runs what Python has queued, and
Python must stay ahead. An op that needs a device value on the host stops it until the GPU has run
everything queued before: reading a value back (`.item()`, `int(t)`, `if t:`), or an op whose output
size depends on values (nonzero, a boolean mask, masked_select, unique, repeat_interleave by a
tensor). On a GPU, `torch.cuda.set_sync_debug_mode` flags them; this records the same kinds of op on
any device, with the line of our code that asked for each, so a CPU test can keep them out of the hot
paths. Not seen: `.tolist()` and `.numpy()`, which read memory without an op, and blocking copies to
the device (the GPU's sync debug mode finds those).

    python -m foresight.bench.host_reads --options A B C D     # tiny twins on the CPU
"""

from __future__ import annotations

import argparse
import traceback
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
READS = {  # ops that hand a device value to the host, or size their output by values
    aten._local_scalar_dense.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten.unique_consecutive.default,
    aten._unique2.default,
    aten.repeat_interleave.Tensor,
}
MASKED = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default}  # with a boolean index
PACKAGE = str(Path(__file__).resolve().parents[1])  # foresight/


def caller() -> str:
    """The innermost frame of our own code on the stack, as "foresight/x.py:123 (function)"."""
    for frame in reversed(traceback.extract_stack()):
        if frame.filename.startswith(PACKAGE) and frame.filename != __file__:
            return f"foresight/{Path(frame.filename).relative_to(PACKAGE)}:{frame.lineno} ({frame.name})"
    return "outside foresight"


class HostReads(TorchDispatchMode):
    """Records each host read as {(op, caller): count} while `recording` is set (default: always)."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = True
        self.reads: Counter[tuple[str, str]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        masked = func in MASKED and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        )
        if self.recording and (func in READS or masked):
            self.reads[(str(func), caller())] += 1
        return func(*args, **(kwargs or {}))


def option_reads(option: str, cache_dir: str | None = None) -> dict[str, Counter]:
    """The host reads of one option's training step (loss and backward) and of its prediction
    (sampling and decoding), on the tiny twins and a two-clip batch of the sample world."""
    from foresight.config import compose
    from foresight.data.sample_world import clip_batch
    from foresight.features import encode_batch
    from foresight.training.module import module_from_config

    cache = [f"paths.cache_dir={cache_dir}"] if cache_dir else []  # where the tiny twins are built
    torch.manual_seed(0)
    module = module_from_config(compose([*cache, f"option={option}", "logger=none"]))
    batch = clip_batch()
    feats = encode_batch(batch, module.vlm, module.ltx, context_latents=module.option.needs_context_latents)
    step, prediction = HostReads(), HostReads()
    with step:
        module.option.loss(module.adapter, module.ltx, feats)["loss"].backward()
    with prediction, torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        module.ltx.decode(
            module.option.sample(module.adapter, module.ltx, feats, generator=gen), generator=gen
        )
    return {"training step": step.reads, "prediction": prediction.reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", nargs="+", default=["A", "B", "C", "D"])
    parser.add_argument("--cache-dir", help="paths.cache_dir: where the tiny twins are built")
    args = parser.parse_args()
    for option in args.options:
        for part, reads in option_reads(option, args.cache_dir).items():
            print(f"option {option}, {part}: {sum(reads.values())} host read(s)")
            for (op, where), count in reads.most_common():
                print(f"  {count} x {op} at {where}")


if __name__ == "__main__":
    main()
