"""Video with PyAV: probe a clip, decode one window of frames, upright and in the bucket; encode frames
to mp4 (encode_mp4) and lay prediction beside context and truth (side_by_side) for writing.

A window decoded after a seek must hold exactly the frames a decode from the start gives. Seeking
is only as good as the container's index and timestamps, and several common files break it: an
MPEG-TS seek can land after the target, an intra-refresh H.264 stream has no keyframe to land on,
AVI holds no presentation timestamps (with B-frames PyAV reports decode-order ones). So `probe`
reads every packet header once (no decoding) to learn whether timestamps name frames, and
`decode_window` checks every seek (it must land on a keyframe at or before the window, timestamps
rising) and decodes from the start when a check fails. A frame that decodes to one flat colour
between frames that do not is the signature of a decoder that lost its reference: after a seek
the window is decoded again from the start; in a decode from the start the clip is skipped.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if (
    TYPE_CHECKING
):  # imported where a video is opened or written (training from the feature cache needs no PyAV)
    import av

log = logging.getLogger(__name__)

# The one list of file types read as video: shard members, make-shards' folders, predict's directories.
VIDEO_EXTS = ("mp4", "webm", "mkv", "mov", "avi", "gif")
SEEK_AFTER = 1.0  # seconds: windows starting earlier are decoded from the start (a seek saves little)
FLAT_SPREAD = 2  # a frame whose every channel spans at most this many levels is one flat colour


class VideoError(Exception):
    """A clip that cannot give the window asked for; `reason` names the skip counter."""

    reason = "undecodable"


class TooShortError(VideoError):
    reason = "too_short"


class FlatFrameError(VideoError):
    reason = "flat_frame"


@dataclass
class VideoInfo:
    fps: float
    duration: float  # seconds
    width: int  # as displayed, after rotation
    height: int
    rotation: int  # degrees counter-clockwise the stored frames must turn to display upright
    start: float = 0.0  # time of the first decoded frame (s): window times count from it
    exact_times: bool = True  # timestamps name frames (seeking can work); else frames are counted at fps

    def frames_at(self, fps: float | None) -> int:
        """How many frames the clip holds when sampled at fps (its own rate if None)."""
        return int(math.floor(self.duration * (fps or self.fps) + 1e-6))


def _open(src: str | Path | bytes) -> av.container.InputContainer:
    import av  # PyAV is imported where a video is opened: training from the feature cache needs no decoder

    try:
        return av.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else str(src))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"cannot open video ({e})") from None


def probe(src: str | Path | bytes) -> VideoInfo:
    """Rate, frame count, displayed size and rotation from the first decodable frame and the packet headers.

    Every packet header is read (cheap: nothing is decoded) to count frames where the header has no
    count and to learn whether presentation timestamps identify frames: they must all be present and
    distinct, and where the codec reorders frames (B-frames) they cannot rise in decode order (AVI
    stores none; what PyAV reports there are decode times, which name the wrong frames).
    """
    import av

    with _open(src) as container:
        if not container.streams.video:
            raise VideoError("no video stream")
        stream = container.streams.video[0]
        first, pts = None, []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the end-of-stream marker
                    continue
                pts.append(packet.pts)
                if first is None:
                    first = next(iter(packet.decode()), None)
            if first is None:  # a decoder that holds frames back gives them up at the end
                first = next(iter(stream.codec_context.decode(None)), None)
        except av.error.FFmpegError as e:
            if first is None:
                raise VideoError(f"no decodable frame ({e})") from None
            log.debug("packet headers end early (%s): counting %d", e, len(pts))
        if first is None:
            raise VideoError("no decodable frame")
        frames = stream.frames or len(pts)
        seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        # frames over the stream's duration is the true mean rate; the headers' average can be an
        # estimate from the first packets (a GIF of 4-4-5 centisecond delays claims 25 fps, not 24)
        fps = (
            frames / seconds
            if frames and seconds
            else float(stream.average_rate or stream.guessed_rate or 0) or 24.0
        )
        known = None not in pts and len(set(pts)) == len(pts) and first.time is not None
        exact = known and (not stream.codec_context.has_b_frames or pts != sorted(pts))
        rotation = int(first.rotation or 0) % 360
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            fps, frames / fps, w, h, rotation, start=first.time if exact else 0.0, exact_times=exact
        )


# libswscale filters by name: area is the cleanest for downscaling, fast_bilinear the cheapest
RESIZE_FILTERS = {
    "area": "AREA",
    "bilinear": "BILINEAR",
    "fast_bilinear": "FAST_BILINEAR",
    "bicubic": "BICUBIC",
}


class _SeekMissed(Exception):
    """A seek that cannot be trusted to give the frames a decode from the start gives."""


def _decode_span(
    src: str | Path | bytes, info: VideoInfo, since: float, until: float, seek: bool
) -> tuple[list[float], list[av.VideoFrame], bool]:
    """Decoded frames from about `since` to `until` (seconds after the clip's first frame), their
    times, and whether a seek got there. Raises _SeekMissed where a seek lands wrong."""
    import av

    half = 0.5 / info.fps
    times: list[float] = []
    frames: list[av.VideoFrame] = []
    previous = -math.inf  # the time of the frame decoded before
    with _open(src) as container:
        stream = container.streams.video[0]
        seeked = seek and info.exact_times and since > SEEK_AFTER and stream.time_base is not None
        if seeked:
            container.seek(int((since + info.start - half) / stream.time_base), stream=stream, backward=True)
        try:
            for index, frame in enumerate(container.decode(stream)):
                if not info.exact_times:
                    t = index / info.fps
                elif frame.time is None:
                    if seeked:
                        raise _SeekMissed
                    raise VideoError("a frame without a timestamp in a clip whose timestamps were complete")
                else:
                    t = frame.time - info.start
                if seeked and index == 0 and (not frame.key_frame or t > since + 1e-6):
                    raise _SeekMissed  # landed on a frame that needs earlier ones, or after the window
                if seeked and t <= previous:
                    raise _SeekMissed  # timestamps out of order: they do not name frames here
                previous = t
                if t < since - half:
                    continue
                times.append(t)
                frames.append(frame)
                if t >= until - half:
                    break
        except av.error.FFmpegError as e:
            raise VideoError(f"decoding failed ({e})") from None
    if seeked and (not times or times[-1] < until - half):
        raise _SeekMissed  # the decoder dropped what it could not rebuild after the seek
    return times, frames, seeked


def _is_flat(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) bool: every channel of the frame spans at most FLAT_SPREAD levels.

    Every 8th pixel rules out almost every frame at 1/64 of the cost; the few left are checked whole."""

    def spread_ok(x: np.ndarray) -> np.ndarray:  # (n, h, w, 3) -> (n,)
        x = x.reshape(len(x), -1, 3)
        return ((x.max(axis=1).astype(int) - x.min(axis=1)) <= FLAT_SPREAD).all(axis=1)

    flat = spread_ok(frames[:, ::8, ::8])
    if flat.any():
        flat[flat] = spread_ok(frames[flat])
    return flat


def _suspect_frame(window: np.ndarray, seeked: bool) -> int | None:
    """Index of a frame of (N, H, W, 3) uint8 that is one flat colour while a neighbour is not, or
    (after a seek only) 0 when every frame is flat; None when the window looks decoded right."""
    flat = _is_flat(window)  # (N,)
    for i in np.flatnonzero(flat):
        if (i > 0 and not flat[i - 1]) or (i + 1 < len(flat) and not flat[i + 1]):
            return int(i)
    return 0 if seeked and flat.all() else None


def decode_window(
    src: str | Path | bytes,
    start: int,
    count: int,
    height: int,
    width: int,
    fps: float | None = None,
    info: VideoInfo | None = None,
    resize_filter: str = "area",
    name: str = "video",
) -> np.ndarray:
    """Frames start .. start+count-1 (counted at `fps`, the clip's own rate if None) as (count, H, W, 3)
    uint8.

    Seeks to the keyframe before the window where the clip's timestamps allow it (see the module
    docstring), else decodes from the start; each wanted time takes the nearest decoded frame, which
    also resamples to `fps`. Rotation metadata is honoured. `name` labels log lines.
    """
    info = info or probe(src)
    rate = fps or info.fps
    if start < 0 or count < 1 or start + count > info.frames_at(rate):
        raise TooShortError(
            f"needs frames {start}..{start + count - 1} at {rate:g} fps, clip has {info.frames_at(rate)}"
        )
    wanted = (start + np.arange(count)) / rate  # (count,) seconds after the first frame
    try:
        times, frames, seeked = _decode_span(src, info, wanted[0], wanted[-1], seek=True)
    except _SeekMissed:
        times, frames, seeked = _decode_span(src, info, wanted[0], wanted[-1], seek=False)
    window = _fit(times, frames, wanted, info, height, width, resize_filter)
    suspect = _suspect_frame(window, seeked)
    if suspect is not None and seeked:
        log.warning(
            "%s: frame %d of the window decoded after a seek is one flat colour; decoding from the "
            "start instead",
            name,
            start + suspect,
        )
        times, frames, _ = _decode_span(src, info, wanted[0], wanted[-1], seek=False)
        window = _fit(times, frames, wanted, info, height, width, resize_filter)
        suspect = _suspect_frame(window, seeked=False)
    if suspect is not None:
        colour = tuple(int(c) for c in window[suspect, 0, 0])
        raise FlatFrameError(
            f"frame {start + suspect} at {rate:g} fps decodes to one flat colour {colour} "
            f"between frames that are not flat"
        )
    return window


def _fit(
    times: list[float],
    frames: list[av.VideoFrame],
    wanted: np.ndarray,
    info: VideoInfo,
    height: int,
    width: int,
    resize_filter: str,
) -> np.ndarray:
    """The nearest decoded frame to each wanted time, in the bucket: (len(wanted), H, W, 3) uint8."""
    if not frames or times[-1] < wanted[-1] - 1.0 / info.fps:
        raise TooShortError(
            f"decoded frames end at {times[-1] if times else 0:.2f}s, window needs {wanted[-1]:.2f}s"
        )
    times_arr = np.asarray(times)
    out = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
    for i, t in enumerate(wanted):
        out[i] = to_bucket(
            frames[int(np.abs(times_arr - t).argmin())], info.rotation, height, width, resize_filter
        )
    return out


def to_bucket(
    frame: av.VideoFrame, rotation: int, height: int, width: int, resize_filter: str = "area"
) -> np.ndarray:
    """One decoded frame -> (height, width, 3) uint8, upright, covering the bucket, centre-cropped.

    libswscale scales in YUV (half the chroma samples of RGB), then converts to RGB: about 3x
    cheaper than scaling RGB, and far cheaper than PIL. Crop and display rotation follow in numpy.
    """
    turned = rotation in (90, 270)
    th, tw = (width, height) if turned else (height, width)  # the bucket in stored orientation
    scale = max(tw / frame.width, th / frame.height)
    sw, sh = max(tw, round(frame.width * scale)), max(th, round(frame.height * scale))
    rgb = frame.reformat(width=sw, height=sh, interpolation=RESIZE_FILTERS[resize_filter]).to_ndarray(
        format="rgb24"
    )
    top, left = (sh - th) // 2, (sw - tw) // 2
    rgb = rgb[top : top + th, left : left + tw]
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB (H, W even) -> (3H/2, W) uint8 planar 4:2:0 as PyAV lays it out: BT.601
    limited range in integer arithmetic, chroma from the mean colour of each 2x2 block. Unlike
    libswscale, whose SIMD paths round differently from CPU to CPU, it gives the same bytes everywhere."""
    h, w, _ = rgb.shape
    x = rgb.astype(np.int32)
    y = ((66 * x[..., 0] + 129 * x[..., 1] + 25 * x[..., 2] + 128) >> 8) + 16  # (H, W)
    q = x.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))  # (H/2, W/2, 3): four times the block mean
    u = ((-38 * q[..., 0] - 74 * q[..., 1] + 112 * q[..., 2] + 512) >> 10) + 128
    v = ((112 * q[..., 0] - 94 * q[..., 1] - 18 * q[..., 2] + 512) >> 10) + 128
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()]).astype(np.uint8).reshape(h * 3 // 2, w)


X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def encode_mp4(
    frames: np.ndarray, fps: float, reproducible: bool = False, lossless: bool = False, preset: str = "medium"
) -> bytes:
    """(F, H, W, 3) uint8 -> h264 mp4 bytes (H and W even): yuv420p, or with lossless RGB h264 at qp 0,
    which decodes to exactly these frames. preset: x264's speed against size at the same quality
    (crf 20): faster presets write bigger files (X264_PRESETS; BENCHMARKS.md measures them).

    reproducible: the same bytes on any machine with the same x264 build -- our own colour
    conversion, one encoder thread and x264's plain C code (its SIMD kernels make other choices
    on other CPUs: asm=0 changes the stream even on one machine). Slower; used for data/sample."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=int(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24" if lossless else "yuv420p"
        stream.options = {"qp": "0", "preset": preset} if lossless else {"crf": "20", "preset": preset}
        if reproducible:
            stream.options = {**stream.options, "x264-params": "asm=0"}
            stream.codec_context.thread_count = 1
        for frame in frames:
            image = (
                av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
                if reproducible and not lossless
                else av.VideoFrame.from_ndarray(frame, format="rgb24")
            )
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    return buf.getvalue()


CHUNK_BORDER = np.array([255, 200, 0], np.uint8)  # the outline on a rollout's frames where a new chunk begins


def side_by_side(
    context: np.ndarray,
    prediction: np.ndarray,
    truth: np.ndarray | None = None,
    borders: tuple[int, ...] = (),
) -> np.ndarray:
    """(C, H, W, 3) context, (F, H, W, 3) prediction [and truth], both starting at the current frame ->
    (C + F - 1, H, 2W or 3W, 3): on the left the context, then the current frame held; beside it the
    prediction [and the truth], each holding its first frame while the context plays. borders: indices
    of prediction frames where a rollout's next chunk begins; the prediction is outlined there."""
    hold = len(context) - 1
    prediction = prediction.copy() if borders else prediction
    for index in borders:
        frame = prediction[index]  # (H, W, 3), a view: a 2-pixel outline drawn in place
        frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = (
            CHUNK_BORDER,
            CHUNK_BORDER,
            CHUNK_BORDER,
            CHUNK_BORDER,
        )
    left = np.concatenate([context, np.repeat(context[-1:], len(prediction) - 1, axis=0)])
    right = [
        np.concatenate([np.repeat(v[:1], hold, axis=0), v]) for v in (prediction, truth) if v is not None
    ]
    return np.concatenate([left, *right], axis=2)
