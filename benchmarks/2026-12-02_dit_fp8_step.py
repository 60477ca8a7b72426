"""One DiT step (no grad, 768x512x121 = 6144 tokens, compiled blocks) in bf16, then with
model.dit_quantize=fp8, in the same process: the fp8 lever's effect on the prediction-time DiT step.

    for i in 1 2 3; do python benchmarks/2026-12-02_dit_fp8_step.py >> dit_fp8_step.jsonl; done
"""

import json

import torch

from foresight.bench.prediction import architecture, timed
from foresight.models.ltx import LTXVideo, grid_positions, latent_grid, rope_coords

device = torch.device("cuda")
ltx = LTXVideo(
    "",
    twin="random",
    text_encoder=False,  # no T5: captions are random states here
    architecture=architecture("ltx_2b"),
    dtype="bfloat16",
    device="cuda",
    compile=True,
)
grid = latent_grid(121, 512, 768)
n = grid[0] * grid[1] * grid[2]
g = torch.Generator(device).manual_seed(0)
x = torch.randn(1, n, 128, device=device, generator=g)
t_tok = torch.full((1, n), 0.5, device=device)
coords = rope_coords(grid_positions(grid, device=device), torch.tensor([24.0], device=device))
text = torch.randn(1, 256, ltx.caption_dim, device=device, generator=g)
mask = torch.ones(1, 256, dtype=torch.bool, device=device)
row = {"tokens": n, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
with torch.no_grad():
    row["bf16_ms"], exact = timed(lambda: ltx.velocity(x, t_tok, coords, text, mask), device, 10)
    ltx.quantize_dit("fp8")
    row["fp8_ms"], approx = timed(lambda: ltx.velocity(x, t_tok, coords, text, mask), device, 10)
row["fp8_velocity_error"] = ((approx - exact).norm() / exact.norm()).item()
print(json.dumps(row), flush=True)
