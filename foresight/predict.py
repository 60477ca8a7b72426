"""Predicting futures with a trained checkpoint: load once, then predict as often as needed.

    predictor = Predictor("logs/train/runs/<run>")          # a run directory or a .safetensors file
    frames, timings = predictor.predict(context, "the red ball rolls left")
    # context: uint8 (C, H, W, 3) (or (B, C, H, W, 3) with a list of texts); frames: (B, F, H, W, 3)

The checkpoint describes itself: its metadata holds the resolved config that built the model, so
the same option, adapter, frozen models and window are rebuilt and only the trainable weights
are read from the file. Each option uses its own sampler; the decoder runs at t=0.05 after
blending 0.025 noise, as LTX does. A seed makes outputs reproducible.
"""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from foresight.checkpoint import load_trainable, read_meta
from foresight.data.video import decode_window, probe, to_bucket
from foresight.features import encode_batch, video_to_frames

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def find_checkpoint(ckpt: str | Path) -> Path:
    path = Path(ckpt)
    if path.is_dir():
        found = sorted(path.rglob("last.safetensors"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"ckpt={path}: no checkpoints/last.safetensors inside; pass a run directory "
                                    f"written by train.py or the .safetensors file itself")
        return found[-1]
    if not path.exists():
        raise FileNotFoundError(f"ckpt={path} does not exist; pass a run directory from logs/train/runs/ or a .safetensors file")
    return path


class Predictor:
    def __init__(self, ckpt: str | Path, device: str | None = None) -> None:
        from foresight.train import instantiate

        self.path = find_checkpoint(ckpt)
        self.meta = read_meta(self.path)  # config, step, option
        cfg = OmegaConf.create(self.meta["config"])
        self.cfg = cfg
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        module = instantiate(cfg.module)(vlm=instantiate(cfg.vlm), ltx=instantiate(cfg.model),
                                         option=instantiate(cfg.option), adapter=instantiate(cfg.adapter))
        load_trainable(module, self.path)
        self.module = module.eval().to(self.device)
        data = cfg.data
        self.context_frames, self.future_frames = data.context_frames, data.future_frames
        self.height, self.width = data.height, data.width
        self.prompt_template = data.get("prompt_template", "{caption}")

    def read_context(self, source: str | Path) -> tuple[np.ndarray, float]:
        """The last C frames of a video (or one image repeated), fitted to the trained bucket."""
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"input={source} does not exist")
        if source.suffix.lower() in IMAGE_EXTS:
            frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(source).convert("RGB")), format="rgb24")
            image = to_bucket(frame, 0, self.height, self.width)
            return np.repeat(image[None], self.context_frames, axis=0), 24.0
        info = probe(source)
        total = info.frames_at(None)
        if total < self.context_frames:
            raise ValueError(f"input={source} has {total} frames; this checkpoint reads {self.context_frames} "
                             f"context frames (pass a longer clip, or an image)")
        start = total - self.context_frames
        return decode_window(source, start, self.context_frames, self.height, self.width, info=info), info.fps

    @torch.no_grad()
    def predict(self, context: np.ndarray | torch.Tensor, text: str | list[str], fps: float = 24.0,
                seed: int = 0) -> tuple[np.ndarray, dict[str, float]]:
        """Context uint8 (C, H, W, 3) or (B, C, H, W, 3) + text(s) -> future frames (B, F, H, W, 3), timings (s)."""
        ctx = torch.as_tensor(np.asarray(context))
        if ctx.ndim == 4:
            ctx = ctx[None]
        texts = [text] * ctx.shape[0] if isinstance(text, str) else list(text)
        batch = {"context": ctx.to(self.device), "caption": texts, "fps": torch.full((len(texts),), float(fps)),
                 "prompt": [self.prompt_template.format(caption=t) for t in texts]}
        m, timings = self.module, {}
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        start = time.perf_counter()
        feats = encode_batch(batch, m.vlm, m.ltx, future_frames=self.future_frames)
        sync()
        timings["encode_s"] = time.perf_counter() - start
        gen = torch.Generator(self.device).manual_seed(seed)
        latents = m.option.sample(m.adapter, m.ltx, feats, generator=gen)
        sync()
        timings["sample_s"] = time.perf_counter() - start - timings["encode_s"]
        frames = video_to_frames(m.ltx.decode(latents, generator=gen)).cpu().numpy()
        sync()
        timings["total_s"] = time.perf_counter() - start
        timings["decode_s"] = timings["total_s"] - timings["encode_s"] - timings["sample_s"]
        return frames, timings


def side_by_side(context: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(C, H, W, 3) context and (F, H, W, 3) prediction -> (C + F - 1, H, 2W, 3): context then the
    held last frame on the left, the prediction (starting at the current frame) on the right."""
    left = np.concatenate([context, np.repeat(context[-1:], len(frames) - 1, axis=0)])
    right = np.concatenate([np.repeat(frames[:1], len(context) - 1, axis=0), frames])
    return np.concatenate([left, right], axis=2)
