"""Small test clips written with PyAV: distinct content in every frame, any codec the build encodes."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

BAND, BITS = 8, 6  # the frame index: 6 bits as black or white cells in the top 8 rows


def pattern_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(count, H, W, 3) uint8: the frame index in binary in a top band (see `frame_index`), below it a
    square moving over a background whose colour changes every frame: no two frames look alike."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        frames[i, ..., 0] = (40 + 4 * i) % 256
        frames[i, ..., 1] = 60 + xx * 2
        frames[i, ..., 2] = 200 - yy * 3
        top, left = BAND + (2 * i) % max(1, height - BAND - 12), (3 * i) % max(1, width - 12)
        frames[i, top : top + 12, left : left + 12] = (255, 255, 40) if i % 2 else (250, 30, 250)
        for bit in range(BITS):
            frames[i, :BAND, bit * width // BITS : (bit + 1) * width // BITS] = 255 if i >> bit & 1 else 0
    return frames


def frame_index(frame: np.ndarray) -> int:
    """The index `pattern_frames` wrote into a (H, W, 3) frame, read back through any lossy codec."""
    width = frame.shape[1]
    cells = [
        frame[1 : BAND - 1, bit * width // BITS + 2 : (bit + 1) * width // BITS - 2].mean()
        for bit in range(BITS)
    ]
    return sum(1 << bit for bit, level in enumerate(cells) if level > 128)


def encode(
    frames: np.ndarray,
    codec: str,
    pix_fmt: str,
    fmt: str,
    fps: int = 24,
    options: dict[str, str] | None = None,
) -> bytes:
    """(F, H, W, 3) uint8 -> the bytes of a `fmt` container; skips the test where this PyAV build
    cannot encode `codec` (naming why)."""
    try:
        av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        pytest.skip(f"{codec}: this PyAV build ({av.__version__}) has no such encoder")
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format=fmt) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            stream.options = dict(options or {})
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
    except av.error.FFmpegError as e:
        pytest.skip(f"{codec} ({pix_fmt}, {fmt}) cannot encode on this machine: {e}")
    return buf.getvalue()
