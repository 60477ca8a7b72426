"""Pretraining the world's frozen parts: the VAE first, then the DiT on the shipped VAE's latents.

    foresight world pretrain --vae-minutes 7 --dit-minutes 6        # both stages, one GPU
    foresight world pretrain --stage dit --dit-steps 20000          # the DiT alone (reads the VAE from --out)

Sizes come from the model config (`--model world`: conf/model/world.yaml's `architecture`). Both
stages train in fp32 (TF32 matrix units on a GPU; bf16 autocast stalled the VAE in issue 14's probe)
on clips of the train split rendered on demand: step s trains on the seeds s*B .. (s+1)*B-1 and takes
every random draw from a generator seeded by (seed, stage, s), so a resumed stage takes exactly the
steps of one never stopped. `--*-minutes` times the first `calibrate` steps and fixes the step count
then (kept in the state); `--*-steps` fixes it up front. LR: linear warm-up, cosine to 5%; the
exported weights are an exponential moving average (EMA) of the trained ones.

State: `<work>/<stage>.safetensors` (weights, EMA, optimizer, step, the stage's settings; every
`save_every` seconds and at the end, atomically) is resumed on the next call; one written with other
settings is refused. Exports (fp16, at every save): `<out>/ltx/` with vae/, transformer/,
text_encoder/ and tokenizer/, the `Lightricks/LTX-Video` layout that LTXVideo loads like a hub
checkpoint, `<out>/vlm/` (the VLM twin), and `<out>/SHA256SUMS`.

VAE: the posterior mode goes through the denoising decoder's noise blend, z <- (1-n)·z + n·e with
n ~ U(0, 0.1) and decode timestep 2n (LTX decodes at n = 0.025, t = 0.05); loss = pixel MSE plus a
small penalty on the latents' scale (so the blend keeps its meaning); the exported VAE carries the
per-channel latent mean and std measured on `stats_clips` clips, as LTX's checkpoints do.
DiT: LTX's flow matching as foresight.flow implements it (shifted logit-normal t, x_t = (1-t)·z0 + t·e,
velocity target e - z0, the first latent frame clean at t=0 and out of the loss) from the current
frame and the caption (through the shipped T5), the caption dropped to "" for a tenth of
the clips (CAPTION_DROPOUT) so classifier-free guidance has a trained null.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foresight import flow
from foresight.eval.metrics import psnr
from foresight.features import Features, frames_to_video, video_to_frames
from foresight.models.ltx import LTXVideo
from foresight.training.resume import SafetensorsIO
from foresight.world import ship
from foresight.world.render import layout_arrays, rasterize, render_batch
from foresight.world.scene import CONTEXT, CURRENT, FPS, FUTURE

STAGES = ("vae", "dit")


@dataclass(frozen=True)
class Settings:
    """One stage's schedule. steps or minutes: the length (minutes: fixed after `calibrate` steps)."""

    batch: int
    lr: float
    warmup: int
    steps: int | None = None
    minutes: float | None = None
    min_lr: float = 0.05  # the cosine ends at this fraction of lr
    ema: float = 0.999
    calibrate: int = 40
    weight_decay: float = 0.0


VAE = Settings(batch=32, lr=5e-4, warmup=200)
DIT = Settings(batch=256, lr=5e-4, warmup=300, weight_decay=0.01)
NOISE_MAX = 0.1  # the VAE decoder is trained on blends n in [0, NOISE_MAX]
DECODE_TIMESTEP, DECODE_NOISE_SCALE = 0.05, 0.025  # what conf/model/world.yaml decodes with (LTX's settings)
LATENT_PENALTY = 1e-4
STATS_CLIPS = 2048
CAPTION_DROPOUT = 0.1


def log(msg: str) -> None:
    print(f"[world pretrain {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- clips, rendered on demand -------------------------------------------------------------------


class Layouts(torch.utils.data.IterableDataset):
    """Step s's scene layouts (numpy, CPU) from step `first` on; worker w of W takes s = first+w, +W, ...
    so the DataLoader's round-robin hands them out in step order."""

    def __init__(self, first: int, batch: int, offset: int, split: str = "train") -> None:
        self.first, self.batch, self.offset, self.split = first, batch, offset, split

    def __iter__(self) -> Iterator[tuple[int, dict, list[str]]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        step = self.first + worker
        while True:
            first_seed = self.offset + step * self.batch
            arrays, captions, _ = layout_arrays(list(range(first_seed, first_seed + self.batch)), self.split)
            yield step, arrays, captions
            step += workers


def clip_stream(
    first: int, batch: int, offset: int, device: torch.device, workers: int
) -> Iterator[tuple[int, Tensor, list[str]]]:
    """(step, frames uint8 (B, FRAMES, SIZE, SIZE, 3) on device, captions), from step `first` on."""
    loader = torch.utils.data.DataLoader(
        Layouts(first, batch, offset), batch_size=None, num_workers=workers, persistent_workers=workers > 0
    )
    for step, arrays, captions in loader:
        yield int(step), rasterize(**{k: torch.as_tensor(v).to(device) for k, v in arrays.items()}), captions


def step_generator(seed: int, stage: str, step: int, device: torch.device) -> torch.Generator:
    """Step s's random draws. The global RNG is seeded alike, for draws inside the models (the VAE
    decoder's noise injection, where enabled), so a resumed stage repeats them too."""
    step_seed = seed * 1_000_003 + STAGES.index(stage) * 100_003 + step
    torch.manual_seed(step_seed)
    return torch.Generator(device).manual_seed(step_seed)


# --- the two objectives ----------------------------------------------------------------------------


def vae_loss(vae: nn.Module, frames: Tensor, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
    """Reconstruction through the noise blend the denoising decoder sees at inference."""
    start = int(torch.randint(0, CONTEXT, (1,), generator=gen, device=gen.device))  # window start 0..3
    x = frames_to_video(frames[:, start : start + FUTURE])  # (B, 3, 17, H, W) in [-1, 1]
    z = vae.encode(x).latent_dist.mode()  # (B, 128, 3, h, w)
    n = torch.rand(x.shape[0], generator=gen, device=x.device) * NOISE_MAX  # (B,)
    noise = torch.randn(z.shape, generator=gen, device=z.device)
    blend = n.view(-1, 1, 1, 1, 1)
    y = vae.decode((1 - blend) * z + blend * noise, temb=2 * n).sample
    mse = F.mse_loss(y, x)
    scale = z.pow(2).mean()
    return mse + LATENT_PENALTY * scale, {
        "mse": mse.item(),
        "psnr": 10 * math.log10(4 / max(mse.item(), 1e-12)),
        "latent_rms": scale.sqrt().item(),
    }


def world_features(ltx: LTXVideo, frames: Tensor, captions: list[str]) -> Features:
    """Features of the DiT's task (no VLM): the future window's latents, the caption's T5 states."""
    z0 = ltx.encode(frames_to_video(frames[:, CURRENT:]))  # (B, 128, 3, h, w), frame 0 = the current frame
    text, mask = ltx.text_encoder(captions)
    fps = torch.full((len(captions),), FPS, device=z0.device)
    none = text.new_zeros(len(captions), 0, 1)  # no VLM states: the DiT's task reads none
    return Features(
        none, mask.new_zeros(len(captions), 0), text, mask, z0[:, :, :1], tuple(z0.shape[2:]), fps, z0
    )


def flow_loss(ltx: LTXVideo, feats: Features, gen: torch.Generator) -> Tensor:
    """LTX's objective on the future tokens, the first latent frame given (t=0, no loss)."""
    z0 = feats.target_tokens()  # (B, N, 128)
    cond = feats.first_frame_mask()  # (B, N)
    t = flow.sample_t(feats.batch_size, feats.num_tokens, generator=gen, device=z0.device)  # (B,)
    noise = torch.randn(z0.shape, generator=gen, device=z0.device)
    x_t, t_tok = flow.noisy_input(z0, noise, t, cond)
    v = ltx.velocity(x_t, t_tok, ltx.coords(feats.positions(), feats.fps), feats.text, feats.text_mask)
    return flow.masked_mse(v, flow.velocity(z0, noise), ~cond)


def dit_loss(
    ltx: LTXVideo, frames: Tensor, captions: list[str], gen: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    keep = (torch.rand(len(captions), generator=gen, device=gen.device) >= CAPTION_DROPOUT).tolist()
    feats = world_features(ltx, frames, [c if k else "" for c, k in zip(captions, keep, strict=True)])
    loss = flow_loss(ltx, feats, gen)
    return loss, {"flow": loss.item()}


# --- one stage: schedule, EMA, state, exports -------------------------------------------------------


class Stage:
    """AdamW + warm-up/cosine LR + EMA over `module`'s trainable parameters, resumable from `path`."""

    def __init__(self, name: str, module: nn.Module, settings: Settings, path: Path, identity: dict) -> None:
        self.name, self.module, self.settings, self.path = name, module, settings, path
        self.identity = {
            "stage": name,
            **identity,
            **{k: v for k, v in asdict(settings).items() if k not in ("steps", "minutes", "calibrate")},
        }
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(
            self.params, lr=settings.lr, betas=(0.9, 0.99), weight_decay=settings.weight_decay
        )
        self.ema = [p.detach().clone() for p in self.params]
        self.step, self.total = 0, settings.steps
        if path.exists():
            self.load()

    def lr(self, step: int) -> float:
        s = self.settings
        if step < s.warmup:
            return s.lr * (step + 1) / s.warmup
        progress = min((step - s.warmup) / max((self.total or step + 1) - s.warmup, 1), 1.0)
        return s.lr * (s.min_lr + (1 - s.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))

    @property
    def done(self) -> bool:
        return self.total is not None and self.step >= self.total

    def state(self) -> dict:
        return {
            "identity": self.identity,
            "step": self.step,
            "total": self.total,
            "model": self.module.state_dict(),
            "ema": list(self.ema),
            "optimizer": self.opt.state_dict(),
        }

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        SafetensorsIO().save_checkpoint(self.state(), self.path)

    def load(self) -> None:
        state = SafetensorsIO().load_checkpoint(self.path)
        if state["identity"] != self.identity:
            diff = sorted(
                k
                for k in set(state["identity"]) | set(self.identity)
                if state["identity"].get(k) != self.identity.get(k)
            )
            raise ValueError(
                f"{self.path} was written with other {self.name} settings ({', '.join(diff)}); "
                f"pass the same settings to continue it, or another --work directory to start anew"
            )
        self.module.load_state_dict(state["model"])
        for mine, saved in zip(self.ema, state["ema"], strict=True):
            mine.copy_(saved)
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.total = state["step"], state["total"]
        log(f"{self.name}: resuming {self.path} at step {self.step}/{self.total}")

    @contextlib.contextmanager
    def ema_weights(self):
        """The EMA in place of the trained weights for the duration (exports, evaluation)."""
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, e in zip(self.params, self.ema, strict=True):
                p.copy_(e)
        try:
            yield self.module
        finally:
            with torch.no_grad():
                for p, s in zip(self.params, saved, strict=True):
                    p.copy_(s)

    def run(
        self,
        batches: Iterator[tuple[int, Tensor, list[str]]],
        loss_fn: Callable,
        export: Callable,
        seed: int,
        device: torch.device,
        save_every: float,
        log_every: int,
    ) -> None:
        """Train until `total` steps (fixing it from `minutes` after `calibrate` steps), saving and
        exporting every `save_every` seconds and at the end."""
        s = self.settings
        started = last_save = time.monotonic()
        times: list[float] = []
        window: dict[str, list[float]] = {}
        for step, frames, captions in batches:
            assert step == self.step, f"data stream at step {step}, training at {self.step}"
            t0 = time.monotonic()
            for group in self.opt.param_groups:
                group["lr"] = self.lr(step)
            loss, parts = loss_fn(frames, captions, step_generator(seed, self.name, step, device))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            decay = min(s.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.params], 1 - decay)
            self.step += 1
            for k, v in parts.items():
                window.setdefault(k, []).append(v)
            times.append(time.monotonic() - t0)
            if self.total is None and len(times) == s.calibrate:
                per_step = sum(times[5:]) / len(times[5:])  # the first steps pay for autotuning
                left = s.minutes * 60 - (time.monotonic() - started)
                self.total = self.step + max(int(left / per_step), 0)
                log(f"{self.name}: {per_step * 1000:.1f} ms/step -> {self.total} steps in {s.minutes:g} min")
            if self.step % log_every == 0 or self.done:
                means = "  ".join(f"{k} {sum(v) / len(v):.4g}" for k, v in window.items())
                log(
                    f"{self.name} {self.step}/{self.total or '?'}  {means}  lr {self.lr(step):.2e}  "
                    f"{1 / max(sum(times[-log_every:]) / len(times[-log_every:]), 1e-9):.1f} steps/s"
                )
                window.clear()
            if self.done or time.monotonic() - last_save > save_every:
                self.save()
                with self.ema_weights() as model:
                    export(model)
                last_save = time.monotonic()
            if self.done:
                break
        log(f"{self.name}: step {self.step}/{self.total} after {(time.monotonic() - started) / 60:.1f} min")


# --- the command ----------------------------------------------------------------------------------


def ship_twins(out: Path) -> None:
    """The T5 encoder, its tokenizer and the VLM: small random twins, written once and then shipped."""
    from foresight.models.text import build_tiny_text_encoder
    from foresight.models.vlm import build_tiny_vlm

    if not (out / "ltx" / "text_encoder" / "config.json").exists():
        build_tiny_text_encoder(out / "ltx")
    if not (out / "vlm" / "config.json").exists():
        build_tiny_vlm(out / "vlm")


@torch.no_grad()
def latent_stats(vae: nn.Module, clips: int, device: torch.device, workers: int) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std (128,) of the posterior mode over future windows of `clips` train clips."""
    batch = min(clips, 128)
    total, total_sq, count = 0.0, 0.0, 0
    for _, frames, _ in itertools.islice(
        clip_stream(0, batch, 10**9, device, workers), max(clips // batch, 1)
    ):
        z = vae.encode(frames_to_video(frames[:, CURRENT:])).latent_dist.mode().double()  # (B, 128, f, h, w)
        z = z.transpose(0, 1).flatten(1)  # (128, samples)
        total, total_sq, count = total + z.sum(1), total_sq + z.pow(2).sum(1), count + z.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-3)


@torch.no_grad()
def heldout_psnr(vae: nn.Module, clips: int, device: torch.device) -> float:
    """Reconstruction PSNR of future windows of held-out clips at LTX's decode blend (a training
    monitor; `foresight world evaluate` measures the shipped files through LTXVideo)."""
    frames, _, _ = render_batch(list(range(clips)), "heldout", device)
    target = frames[:, CURRENT:]
    z = vae.encode(frames_to_video(target)).latent_dist.mode()
    noise = torch.randn(z.shape, generator=torch.Generator(device).manual_seed(0), device=device)
    temb = torch.full((clips,), DECODE_TIMESTEP, device=device)
    y = vae.decode((1 - DECODE_NOISE_SCALE) * z + DECODE_NOISE_SCALE * noise, temb=temb).sample
    return psnr(video_to_frames(y), target).mean().item()


def train_vae(
    architecture: dict,
    settings: Settings,
    out: Path,
    work: Path,
    seed: int,
    device: torch.device,
    workers: int,
    save_every: float,
    log_every: int,
    stats_clips: int,
    monitor_clips: int,
) -> None:
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(**architecture).to(device)
    stage = Stage(
        "vae", vae, settings, work / "vae.safetensors", {"architecture": architecture, "seed": seed}
    )
    if stage.done:
        log(f"vae: complete ({stage.step} steps), nothing to do")
        return

    def export(model: nn.Module) -> None:
        mean, std = latent_stats(model, stats_clips, device, workers)
        model.latents_mean.copy_(mean)
        model.latents_std.copy_(std)
        ship.export_fp16(model, out / "ltx" / "vae")
        ship.write_checksums(out)
        held_out = heldout_psnr(model, monitor_clips, device)
        log(
            f"vae: exported step {stage.step} to {out / 'ltx' / 'vae'} (latent std {std.min():.3g}.."
            f"{std.max():.3g}); held-out PSNR {held_out:.2f} dB on {monitor_clips} clips"
        )

    batches = clip_stream(stage.step, settings.batch, 0, device, workers)
    stage.run(
        batches,
        lambda frames, _, gen: vae_loss(vae, frames, gen),
        export,
        seed,
        device,
        save_every,
        log_every,
    )


def train_dit(
    model_cfg: dict,
    settings: Settings,
    out: Path,
    work: Path,
    seed: int,
    device: torch.device,
    workers: int,
    save_every: float,
    log_every: int,
) -> None:
    from diffusers import LTXVideoTransformer3DModel

    vae_file = out / "ltx" / "vae" / "diffusion_pytorch_model.safetensors"
    if not vae_file.exists():
        raise FileNotFoundError(
            f"{vae_file} not found: the DiT trains on the shipped VAE's latents; run the vae stage first"
        )
    torch.manual_seed(seed)
    fresh = LTXVideoTransformer3DModel(**model_cfg["architecture"]["transformer"])
    if not (out / "ltx" / "transformer" / "config.json").exists():  # the loader needs one to read
        fresh.save_pretrained(out / "ltx" / "transformer")
    ltx = LTXVideo(str(out / "ltx"), dtype="float32", text_max_tokens=model_cfg["text_max_tokens"])
    ltx.transformer = fresh.requires_grad_(True)  # LTXVideo froze the one it loaded
    ltx.to(device)
    identity = {
        "architecture": model_cfg["architecture"]["transformer"],
        "seed": seed,
        "vae": ship.sha256(vae_file),
    }
    stage = Stage("dit", ltx.transformer, settings, work / "dit.safetensors", identity)
    if stage.done:
        log(f"dit: complete ({stage.step} steps), nothing to do")
        return

    def export(model: nn.Module) -> None:
        ship.export_fp16(model, out / "ltx" / "transformer")
        ship.write_checksums(out)
        log(f"dit: exported step {stage.step} to {out / 'ltx' / 'transformer'}")

    batches = clip_stream(stage.step, settings.batch, 10**8, device, workers)
    stage.run(
        batches,
        lambda frames, captions, gen: dit_loss(ltx, frames, captions, gen),
        export,
        seed,
        device,
        save_every,
        log_every,
    )


def pretrain(
    model_cfg: dict,
    out: Path,
    work: Path,
    stages: tuple[str, ...] = STAGES,
    vae: Settings = VAE,
    dit: Settings = DIT,
    seed: int = 0,
    device: str | None = None,
    workers: int = 4,
    save_every: float = 120.0,
    log_every: int = 100,
    stats_clips: int = STATS_CLIPS,
    monitor_clips: int = 64,
) -> None:
    """Train the stages in order into `out` (see the module docstring)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out.mkdir(parents=True, exist_ok=True)
    ship_twins(out)
    common = dict(
        out=out, work=work, seed=seed, device=dev, workers=workers, save_every=save_every, log_every=log_every
    )
    if "vae" in stages:
        train_vae(
            model_cfg["architecture"]["vae"],
            vae,
            **common,
            stats_clips=stats_clips,
            monitor_clips=monitor_clips,
        )
    if "dit" in stages:
        train_dit(model_cfg, dit, **common)
    ship.write_checksums(out)


def settings_from(
    base: Settings, steps: int | None, minutes: float | None, batch: int | None, lr: float | None
) -> Settings:
    """`base` with a length (steps win over minutes) and optionally another batch size and LR."""
    return replace(
        base,
        steps=steps,
        minutes=None if steps is not None else minutes,
        batch=batch or base.batch,
        lr=lr or base.lr,
    )
