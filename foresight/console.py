"""What the entry points print: each line once, no third-party tips, and user errors in one line.

Every entry point (train.py, predict.py, evaluate.py, preprocess.py, the `foresight` command) runs its
work inside `one_line_errors(prog)`. Our checks raise ValueError or OSError (FileNotFoundError, ...)
with a message naming the key or file and the fix; those, and a required config value left unset,
end the program with `<prog>: error: <message>` on one line of stderr and exit status 2. Anything
else is a bug and keeps its traceback. FORESIGHT_DEBUG=1 shows the traceback of user errors too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from typing import Iterator

from omegaconf.errors import MissingMandatoryValue

DEBUG_ENV = "FORESIGHT_DEBUG"
USER_ERROR_EXIT = 2

# Lightning's messages that say nothing about this run (hardware it does not have, its own products,
# what the config already says); its useful ones (GPU use, ranks) still print
LIGHTNING_NOISE = re.compile(
    r"TPU available|HPU available|💡 Tip|was configured so \d+ batch|`Trainer.fit` stopped"
)


class Reported(Exception):
    """An error whose message is the whole story (what failed, what was kept, what to do): one line."""


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def one_line(error: BaseException) -> str:
    if isinstance(error, MissingMandatoryValue):
        key = error.full_key or str(error).split(":")[-1].strip()
        return f"{key} is required: pass {key}=..."
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    try:
        yield
    except (ValueError, OSError, MissingMandatoryValue, Reported) as e:
        if debug():
            raise
        print(f"{prog}: error: {one_line(e)}  [{DEBUG_ENV}=1 shows the traceback]", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not LIGHTNING_NOISE.search(record.getMessage())


def quiet() -> None:
    """Each line once and no third-party noise. Lightning adds its own console handler at import and
    also propagates to the root logger (Hydra's console and the run's log file): drop its handler."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)  # where Lightning's messages are logged (filters do not inherit)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    # the frozen VLM and LTX stay in eval mode by design; Lightning warns about it every run
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # Lightning 2.6 on torch 2.13 warns about its own use of a torch API at every step
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    os.environ.setdefault("WANDB_QUIET", "true")  # no run history tables at exit: the summary has the metrics
