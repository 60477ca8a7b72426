"""Where the time of the bare DiT LoRA step goes with an fp8 DiT: wall time of 5 steps after 3, then
torch.profiler's kernel table of one more (one process; the table is written to $OUT/profile.txt).

    OUT=. python benchmarks/2026-12-02_profile_fp8_lora_step.py
"""

import os
import time

import torch
from torch.profiler import ProfilerActivity, profile

from foresight.bench.prediction import architecture, bare_lora_loss
from foresight.models.ltx import LTXVideo, latent_grid

device = torch.device("cuda")
ltx = LTXVideo(
    "",
    twin="random",
    text_encoder=False,  # no T5: captions are random states here
    architecture=architecture("ltx_2b"),
    dtype="bfloat16",
    device="cuda",
    compile=True,
    dit_quantize="fp8",
)
ltx.add_lora(rank=128, alpha=128, targets=["to_q", "to_k", "to_v", "to_out.0"])
opt = torch.optim.AdamW([p for p in ltx.parameters() if p.requires_grad], lr=1e-5)
text = torch.randn(1, 256, 4096, device=device)
mask = torch.ones(1, 256, dtype=torch.bool, device=device)
loss_fn = bare_lora_loss(ltx, latent_grid(121, 512, 768), text, mask, device)


def step() -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = loss_fn()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


for _ in range(3):  # compilation
    step()
times = []
for _ in range(5):
    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    times.append((time.perf_counter() - start) * 1e3)
print("step ms", sorted(times), flush=True)
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    step()
    torch.cuda.synchronize()
table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=90)
print(table)
open(os.path.join(os.environ["OUT"], "profile.txt"), "w").write(table)
