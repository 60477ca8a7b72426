"""Building and fitting the tiny module in tests, and running the entry-point scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

from foresight.config import ROOT, compose
from foresight.training.module import module_from_config


def tiny_run(out: Path, twin_dir: Path, experiment: str, steps: int, *overrides: str) -> Path:
    """A run of train.py's own code on the tiny twins, validating at its last step, into `out`
    (a run directory that Predictor, predict.py and evaluate.py read)."""
    from foresight.training.train import train

    train(
        compose(
            [
                f"paths.cache_dir={twin_dir}",
                f"paths.output_dir={out}",
                "logger=none",
                f"+experiment={experiment}",
                f"trainer.max_steps={steps}",
                f"trainer.val_check_interval={steps}",
                *overrides,
            ]
        )
    )
    return out


def build(option: str, twin_dir, overrides=()):
    cfg = compose([f"paths.cache_dir={twin_dir}", f"option={option}", "logger=none", *overrides])
    torch.manual_seed(0)
    return module_from_config(cfg)


# A random frozen DiT is no pretrained one: its frozen output projection cannot reach arbitrary
# velocity magnitudes, so LoRA on attention alone cannot fit a batch. Learning tests give the
# tiny twin's LoRA the MLPs and the output projection too (a pretrained LTX needs neither).
TWIN_LORA = "option.lora.targets=[to_q,to_k,to_v,to_out.0,ff.net.0.proj,ff.net.2,proj_out]"


def fit(module, feats, steps: int, lr: float = 3e-3, fixed_draws: bool = True) -> list[float]:
    """Adam on the trainable parameters. fixed_draws: the same noise and flow times every step.

    "One fixed batch" includes its noise and time draws: with fresh draws a flow-matching loss has
    a floor (the noise cannot be recovered as t -> 0), which says nothing about the wiring.
    """
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        torch.manual_seed(0 if fixed_draws else step)
        loss = module.option.loss(module.adapter, module.ltx, feats)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


class BreakFileAtStep(L.Callback):
    """Overwrites `path` with bytes that are no tar after training step `step`: a shard rewritten or a
    disk failing under a running job, which only the end of the run reads again."""

    def __init__(self, path: str, step: int) -> None:
        self.path, self.step = path, step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with open(self.path, "wb") as f:
                f.write(b"this shard was overwritten mid-run\n" * 64)


def offline_wandb() -> dict[str, str]:
    """This process's environment (as it is now) for a train.py that logs to wandb offline."""
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": ""}


def run_script(
    script: str, *args, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS...` from the repository root, as a user runs it; stdout and stderr captured."""
    command = [sys.executable, script, *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def stand_in_capture(forward, captured: list):
    """A CudaGraphs.capture for the CPU (a real capture needs a GPU): its "graph" replays `forward` on
    the captured inputs, as a CUDA graph replays its kernels on its own input buffers, so the
    bookkeeping around a capture can be checked; each capture's inputs.key() is appended to `captured`."""
    from dataclasses import replace

    class StandIn:
        def __init__(self, static):
            self.static, self.out = static, forward(static)

        def replay(self):
            self.out.copy_(forward(self.static))

    def capture(inputs):
        static = replace(inputs, **{k: v.clone() for k, v in inputs.tensors().items()})
        captured.append(inputs.key())
        graph = StandIn(static)
        return graph, static, graph.out

    return capture
