"""Video decoding with PyAV: probe a clip, decode one window of frames, upright and in the bucket."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


class VideoError(Exception):
    """A clip that cannot give the window asked for; `reason` names the skip counter."""

    reason = "undecodable"


class TooShortError(VideoError):
    reason = "too_short"


@dataclass
class VideoInfo:
    fps: float
    duration: float  # seconds
    width: int  # as displayed, after rotation
    height: int
    rotation: int  # degrees counter-clockwise the stored frames must turn to display upright

    def frames_at(self, fps: float | None) -> int:
        """How many frames the clip holds when sampled at fps (its own rate if None)."""
        return int(math.floor(self.duration * (fps or self.fps) + 1e-6))


def _open(src: str | Path | bytes) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else str(src))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"cannot open video ({e})") from None


def probe(src: str | Path | bytes) -> VideoInfo:
    """Rate, duration, displayed size and rotation, from the first decodable frame and the headers."""
    with _open(src) as container:
        if not container.streams.video:
            raise VideoError("no video stream")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream))
        except (av.error.FFmpegError, StopIteration) as e:
            raise VideoError(f"no decodable frame ({e})") from None
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = (stream.frames or 0) / fps
        if stream.frames:  # the frame count is the better measure where the header has one
            duration = stream.frames / fps
        rotation = int(first.rotation or 0) % 360
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(fps, duration, w, h, rotation)


# libswscale filters by name: area is the cleanest for downscaling, fast_bilinear the cheapest
RESIZE_FILTERS = {"area": "AREA", "bilinear": "BILINEAR", "fast_bilinear": "FAST_BILINEAR", "bicubic": "BICUBIC"}


def decode_window(src: str | Path | bytes, start: int, count: int, height: int, width: int,
                  fps: float | None = None, info: VideoInfo | None = None, resize_filter: str = "area") -> np.ndarray:
    """Frames start .. start+count-1 (counted at `fps`, the clip's own rate if None) as (count, H, W, 3) uint8.

    Seeks to the keyframe before the window instead of decoding from the start; each wanted time
    takes the nearest decoded frame, which also resamples to `fps`. Rotation metadata is honoured.
    """
    info = info or probe(src)
    rate = fps or info.fps
    if start < 0 or start + count > info.frames_at(rate):
        raise TooShortError(f"needs frames {start}..{start + count - 1} at {rate:g} fps, "
                            f"clip has {info.frames_at(rate)}")
    wanted = (start + np.arange(count)) / rate  # (count,) seconds
    half = 0.5 / info.fps
    times, frames = [], []
    with _open(src) as container:
        stream = container.streams.video[0]
        t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if wanted[0] > 1.0 and stream.time_base is not None:
            container.seek(int((wanted[0] + t0 - half) / stream.time_base), stream=stream, backward=True)
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = (frame.time - t0) if frame.time is not None else index / info.fps
                if t < wanted[0] - half:
                    continue
                times.append(t)
                frames.append(frame)
                if t >= wanted[-1] - half:
                    break
        except av.error.FFmpegError as e:
            raise VideoError(f"decoding failed ({e})") from None
    if not frames or times[-1] < wanted[-1] - 2 * half:
        raise TooShortError(f"decoded frames end at {times[-1] if times else 0:.2f}s, window needs {wanted[-1]:.2f}s")
    times_arr = np.asarray(times)
    out = np.empty((count, height, width, 3), dtype=np.uint8)
    for i, t in enumerate(wanted):
        out[i] = to_bucket(frames[int(np.abs(times_arr - t).argmin())], info.rotation, height, width, resize_filter)
    return out


def to_bucket(frame: av.VideoFrame, rotation: int, height: int, width: int, resize_filter: str = "area") -> np.ndarray:
    """One decoded frame -> (height, width, 3) uint8, upright, covering the bucket, centre-cropped.

    libswscale scales in YUV (half the chroma samples of RGB), then converts to RGB: about 3x
    cheaper than scaling RGB, and far cheaper than PIL. Crop and display rotation follow in numpy.
    """
    turned = rotation in (90, 270)
    th, tw = (width, height) if turned else (height, width)  # the bucket in stored orientation
    scale = max(tw / frame.width, th / frame.height)
    sw, sh = max(tw, round(frame.width * scale)), max(th, round(frame.height * scale))
    rgb = frame.reformat(width=sw, height=sh, interpolation=RESIZE_FILTERS[resize_filter]).to_ndarray(format="rgb24")
    top, left = (sh - th) // 2, (sw - tw) // 2
    rgb = rgb[top: top + th, left: left + tw]
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb
