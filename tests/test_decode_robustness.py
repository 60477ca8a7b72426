"""Seek-then-decode equals decode-from-start, for every codec and pixel format this PyAV build encodes.

Each clip is generated here (48 frames at 24 fps, 64x48, a keyframe every 12 frames where the codec
has keyframes) with different content in every frame. A decode from the start must give the source
frames in order; windows at several starts -- the later ones after a seek -- must equal the same
frames of that decode exactly (decoding from a keyframe is deterministic, so no tolerance is needed
for any codec here), and so must a window resampled to half the rate.
"""

import logging

import av
import numpy as np
import pytest

from foresight.data import video
from foresight.data.video import FlatFrameError, VideoError, decode_window, probe
from tests.conftest import REAL
from tests.videos import encode, frame_index, pattern_frames

FRAMES, HEIGHT, WIDTH = 48, 48, 64
GOP = {"g": "12"}

# id -> (encoder, pixel format, container, encoder options, whether timestamps name frames)
CLIPS = {
    "h264-yuv420p-mp4": ("libx264", "yuv420p", "mp4", GOP, True),
    "h264-yuv422p-mp4": ("libx264", "yuv422p", "mp4", GOP, True),
    "h264-yuv444p-mp4": ("libx264", "yuv444p", "mp4", GOP, True),  # High 4:4:4 Predictive
    "h264-yuv420p10le-mp4": ("libx264", "yuv420p10le", "mp4", GOP, True),
    "h264-yuv444p10le-mkv": ("libx264", "yuv444p10le", "matroska", GOP, True),
    "h264-yuv444p-mov": ("libx264", "yuv444p", "mov", GOP, True),
    "h264-open-gop-mp4": ("libx264", "yuv444p", "mp4", {"x264-params": "keyint=12:open-gop=1"}, True),
    # no keyframe after the first: every seek lands where the decoder cannot start
    "h264-intra-refresh-mp4": (
        "libx264",
        "yuv420p",
        "mp4",
        {"x264-params": "keyint=12:intra-refresh=1"},
        True,
    ),
    # MPEG-TS seeks by timestamp search and can land after the target
    "h264-yuv420p-mpegts": ("libx264", "yuv420p", "mpegts", GOP, True),
    # AVI has no presentation timestamps: with B-frames PyAV's are decode times (frames are counted instead)
    "h264-yuv420p-avi": ("libx264", "yuv420p", "avi", GOP, False),
    "vp9-yuv420p-webm": ("libvpx-vp9", "yuv420p", "webm", GOP, True),
    "vp9-yuv444p-webm": ("libvpx-vp9", "yuv444p", "webm", GOP, True),
    "vp8-yuv420p-webm": ("libvpx", "yuv420p", "webm", GOP, True),
    "mpeg4-yuv420p-mp4": ("mpeg4", "yuv420p", "mp4", {**GOP, "bf": "2"}, True),
    "mpeg4-yuv420p-avi": ("mpeg4", "yuv420p", "avi", {**GOP, "bf": "2"}, True),  # its parser restores them
    "mjpeg-yuvj420p-avi": ("mjpeg", "yuvj420p", "avi", {}, True),
    "mjpeg-yuvj444p-mkv": ("mjpeg", "yuvj444p", "matroska", {}, True),
    "gif-rgb8": ("gif", "rgb8", "gif", {}, True),
    "hevc-yuv420p-mp4": ("libx265", "yuv420p", "mp4", {"x265-params": "keyint=12:log-level=error"}, True),
    "hevc-yuv420p10le-mkv": (
        "libx265",
        "yuv420p10le",
        "matroska",
        {"x265-params": "keyint=12:log-level=error"},
        True,
    ),
    "av1-yuv420p-mp4": ("libsvtav1", "yuv420p", "mp4", GOP, True),
    "av1-yuv420p10le-mkv": ("libsvtav1", "yuv420p10le", "matroska", GOP, True),
    "ffv1-yuv444p-mkv": ("ffv1", "yuv444p", "matroska", GOP, True),
    "prores-yuv422p10le-mov": ("prores_ks", "yuv422p10le", "mov", {}, True),
    # encoders named in the robustness brief that this build may lack (skipped with the reason)
    "av1-libaom-mkv": ("libaom-av1", "yuv420p", "matroska", GOP, True),
    "mpeg4-xvid-avi": ("libxvid", "yuv420p", "avi", GOP, False),
    "h264-nvenc-mp4": ("h264_nvenc", "yuv444p", "mp4", GOP, True),
}
STARTS = (0, 7, 13, 25, 30, 39)  # 9-frame windows; from 25 on (after 1 s) the decoder seeks


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return pattern_frames(FRAMES, HEIGHT, WIDTH)


@pytest.mark.parametrize("case", list(CLIPS))
def test_windows_after_a_seek_equal_the_decode_from_the_start(case, source):
    codec, pix_fmt, fmt, options, exact_times = CLIPS[case]
    data = encode(source, codec, pix_fmt, fmt, options=options)
    info = probe(data)
    assert (info.width, info.height, info.frames_at(None)) == (WIDTH, HEIGHT, FRAMES)
    assert info.exact_times == exact_times
    full = decode_window(data, 0, FRAMES, HEIGHT, WIDTH)  # (48, H, W, 3), decoded from the start
    assert [frame_index(f) for f in full] == list(range(FRAMES))  # nothing shifted, repeated or lost
    for start in STARTS:
        window = decode_window(data, start, 9, HEIGHT, WIDTH)
        assert np.array_equal(window, full[start : start + 9]), f"{case}: window at frame {start} differs"
    half_rate = decode_window(data, 13, 5, HEIGHT, WIDTH, fps=12)  # frames 26, 28, ..., 34
    assert np.array_equal(half_rate, full[26:36:2])


def test_the_checked_seek_is_taken_where_it_is_safe(source, monkeypatch):
    """The fallback must not hide a seek that never happens: an ordinary mp4 window after 1 s seeks
    (and is equal, above); an intra-refresh one falls back to the decode from the start."""
    calls = []
    real = video._decode_span

    def spy(*args, **kw):
        try:
            result = real(*args, **kw)
        except video._SeekMissed:
            calls.append("missed")
            raise
        calls.append("seeked" if result[2] else "from start")
        return result

    monkeypatch.setattr(video, "_decode_span", spy)
    decode_window(encode(source, "libx264", "yuv444p", "mp4", options=GOP), 30, 9, HEIGHT, WIDTH)
    assert calls == ["seeked"]
    calls.clear()
    refresh = encode(
        source, "libx264", "yuv420p", "mp4", options={"x264-params": "keyint=12:intra-refresh=1"}
    )
    decode_window(refresh, 30, 9, HEIGHT, WIDTH)
    assert calls == ["missed", "from start"]


def _green_after_seek(monkeypatch, which):
    """Fault injection: after a seek, the decoder hands back solid green frames (the symptom of a
    decoder that lost its reference frames) at the window positions `which` picks."""
    real = video._decode_span

    def faulty(src, info, first, last, seek):
        times, frames, seeked = real(src, info, first, last, seek)
        if seeked:
            rgb = np.zeros((frames[0].height, frames[0].width, 3), np.uint8)
            rgb[..., 1] = 135  # what all-zero YUV planes convert to
            green = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frames = [green if i in which(len(frames)) else f for i, f in enumerate(frames)]
        return times, frames, seeked

    monkeypatch.setattr(video, "_decode_span", faulty)


@pytest.mark.parametrize(
    "which", [lambda n: {n // 2}, lambda n: set(range(n))], ids=["one frame", "every frame"]
)
def test_green_frames_after_a_seek_are_decoded_again_from_the_start(source, monkeypatch, caplog, which):
    data = encode(source, "libx264", "yuv444p", "mp4", options=GOP)
    expected = decode_window(data, 0, FRAMES, HEIGHT, WIDTH)[30:39]
    _green_after_seek(monkeypatch, which)
    with caplog.at_level(logging.WARNING, logger="foresight.data.video"):
        window = decode_window(data, 30, 9, HEIGHT, WIDTH, name="clip-7")
    assert np.array_equal(window, expected)
    assert "clip-7: frame" in caplog.text and "decoding from the start" in caplog.text


def test_a_flat_frame_between_textured_ones_skips_the_clip(source):
    """Decoded from the start too, one flat frame between textured ones is no frame to learn from:
    the window is refused (counted as flat_frame by the loader); windows around it are fine, and so
    is a clip that is flat throughout (a blank screen is content)."""
    frames = source.copy()
    frames[20] = (0, 135, 0)
    data = encode(frames, "libx264", "yuv444p", "mp4", options={"qp": "0", **GOP})  # lossless
    with pytest.raises(FlatFrameError, match=r"frame 20 at 24 fps decodes to one flat colour \(0, 135, \d\)"):
        decode_window(data, 16, 9, HEIGHT, WIDTH)
    with pytest.raises(FlatFrameError):
        decode_window(data, 20, 9, HEIGHT, WIDTH)  # first in the window: its right neighbour is textured
    assert decode_window(data, 21, 9, HEIGHT, WIDTH).shape == (9, HEIGHT, WIDTH, 3)
    blank = encode(np.full_like(source, 90), "libx264", "yuv420p", "mp4", options=GOP)
    assert decode_window(blank, 30, 9, HEIGHT, WIDTH).std() == 0  # flat after a seek, flat from the start


@pytest.mark.skipif(not REAL.exists(), reason=f"real sample clips not found at {REAL}")
@pytest.mark.parametrize("name", ["realshort.mp4", "flipping_a_pancake.mkv", "corrupted.mp4"])
def test_real_clips_give_the_same_window_whatever_its_start(name):
    """The same on video nobody here encoded; the corrupt clip stops decoding at frame 28 (after
    its seek too), which must surface as an error, never as other frames."""
    path = REAL / name
    info = probe(path)
    total = info.frames_at(None)
    try:
        full = decode_window(path, 0, total, 64, 64)
    except VideoError:
        assert name == "corrupted.mp4"
        full = decode_window(path, 0, 28, 64, 64)  # the frames before the damage
        total = 28
        with pytest.raises(VideoError, match="decoding failed"):
            decode_window(path, 20, 20, 64, 64)  # a window after a seek that reaches the damage
    for start in sorted({0, total // 3, total // 2, total - 9}):
        assert np.array_equal(decode_window(path, start, 9, 64, 64), full[start : start + 9]), (
            f"{name} at {start}"
        )
