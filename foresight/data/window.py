"""The clip window every option trains on, checked before anything loads.

Context frames [s, s+C) go to the VLM; the future window [s+C-1, s+C-1+F) goes to the VAE: it
starts at the last context frame, which LTX's causal VAE encodes alone into latent frame 0 (the
frame first-frame conditioning gives). F must be 8k+1 and H, W multiples of 32.
"""

from __future__ import annotations

# A clip needing more than this upscaling to cover its bucket is skipped (data.max_upscale: a 1x1
# video blown up to 64x64 is no training data).
MAX_UPSCALE = 4.0
MIN_SIDE = int(32 / MAX_UPSCALE)  # pixels: what the smallest bucket (32) allows; make-shards' default


def _nearest(value: int, valid) -> str:
    below = max((v for v in valid if v <= value), default=None)
    above = min(v for v in valid if v >= value)
    return " or ".join(str(v) for v in dict.fromkeys(x for x in (below, above) if x is not None and x > 0))


def check_window(context_frames: int, future_frames: int, height: int, width: int) -> None:
    """Raise ValueError naming the field and the nearest valid values."""
    if context_frames < 1:
        raise ValueError(f"data.context_frames={context_frames} must be at least 1 (the current frame)")
    if future_frames < 9 or (future_frames - 1) % 8:
        raise ValueError(
            f"data.future_frames={future_frames} is not 8k+1 (the VAE compresses time 8x after the first "
            f"frame); nearest valid: {_nearest(future_frames, range(9, future_frames + 9, 8))}"
        )
    for name, size in (("height", height), ("width", width)):
        if size < 32 or size % 32:
            raise ValueError(
                f"data.{name}={size} is not a positive multiple of 32 (the VAE's spatial "
                f"compression); nearest valid: {_nearest(size, range(32, size + 33, 32))}"
            )


def window_length(context_frames: int, future_frames: int, chunks: int = 1) -> int:
    """Frames a clip must hold: the windows overlap by one frame. chunks: prediction windows in a row,
    each starting on the frame the one before ended on (a rollout's truth)."""
    return context_frames + chunks * (future_frames - 1)


MIN_FRAMES = window_length(1, 9)  # the shortest window any configuration reads; make-shards' default


def upscale(clip_height: int, clip_width: int, height: int, width: int) -> float:
    """How much a clip is enlarged to cover a (height, width) bucket (below 1: it is reduced)."""
    return max(height / clip_height, width / clip_width)
