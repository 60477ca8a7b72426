"""The world's image-to-video baseline through Predictor, with and without `dit_graphs` (one process).

The world's DiT is tiny (4.0M parameters, 64x64 clips): every sampling step is host-bound, the case
CUDA graphs are for. Three Predictors each way, alternated; each: 2 warm-up predictions, then the
median of N over 4 clips at once (the world's 20-step schedule, guidance 1), synchronised. Reports
the medians and whether the graphed and eager predictions are the same frames, bit for bit.

    python benchmarks/2026-12-02_world_dit_graphs.py 9 > world_i2v_dit_graphs.json   # a GPU
"""

import json
import sys
import time

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from foresight.config import compose
from foresight.predict import Predictor

cfg = compose(["option=i2v", "model=world", "vlm=world", "data=world"])
HydraConfig.instance().set_config(cfg)
cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # as evaluate.py scores a baseline
ctx = np.random.default_rng(0).integers(0, 256, (4, cfg.data.context_frames, 64, 64, 3), dtype=np.uint8)
res, outs = {}, {}
for graphs in (False, True, False, True, False, True):
    p = Predictor(None, device="cuda", config=cfg, dit_graphs=graphs, compile=False)
    for _ in range(2):
        p.predict(ctx, "a red circle moves right", seed=1)
    ts = []
    for _ in range(int(sys.argv[1])):
        torch.cuda.synchronize()
        t = time.perf_counter()
        f, _ = p.predict(ctx, "a red circle moves right", seed=1)
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    res.setdefault(f"dit_graphs={graphs}", []).append(round(sorted(ts)[len(ts) // 2] * 1e3, 2))
    outs.setdefault(graphs, f)
print(
    json.dumps(
        {
            "device": torch.cuda.get_device_name(),
            "batch": 4,
            "steps": cfg.model.schedule.steps,
            "median_ms_per_predictor": res,
            "identical": bool(np.array_equal(outs[False], outs[True])),
        }
    )
)
