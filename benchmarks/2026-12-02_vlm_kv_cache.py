"""The VLM's forward with and without the KV cache transformers builds by default (use_cache), on the
tiny twin on a CPU, where the time is the host's: median of 25 calls after 5, outputs compared.

    python benchmarks/2026-12-02_vlm_kv_cache.py --cache-dir /tmp/twins     # prints one JSON line
"""

import argparse
import json
import statistics
import time

import torch
from hydra.utils import instantiate

from foresight.config import compose

parser = argparse.ArgumentParser()
parser.add_argument("--cache-dir", required=True, help="where the tiny twins are (built if absent)")
args = parser.parse_args()
vlm = instantiate(compose([f"paths.cache_dir={args.cache_dir}"]).vlm)
context = torch.randint(
    0, 256, (2, 4, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
)
prompts = ["a red circle moves right", "the square turns"]
forward = vlm.model.forward


def timed(use_cache: bool) -> tuple[torch.Tensor, float]:
    vlm.model.forward = lambda *a, **k: forward(*a, **{**k, "use_cache": use_cache})
    times = []
    for _ in range(30):
        start = time.perf_counter()
        states, _ = vlm(context, prompts)
        times.append((time.perf_counter() - start) * 1e3)
    return states, statistics.median(times[5:])


cached, cached_ms = timed(True)
uncached, uncached_ms = timed(False)
print(
    json.dumps({"use_cache_ms": cached_ms, "no_cache_ms": uncached_ms, "same": torch.equal(cached, uncached)})
)
