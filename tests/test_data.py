"""Sample world, PyAV windows, the webdataset loader, and bad samples counted rather than fatal."""

import io
import itertools
import json
import tarfile
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from foresight.config import ROOT
from foresight.data.loader import VideoDataModule
from foresight.data.sample_world import main, render_clip
from foresight.data.video import TooShortError, VideoError, decode_window, encode_mp4, probe
from tests.conftest import REAL

SAMPLE = ROOT / "data" / "sample"
needs_real = pytest.mark.skipif(not REAL.exists(), reason=f"real sample clips not found at {REAL}")


def module(train: str, val: str | None = None, **kw) -> VideoDataModule:
    args = dict(context_frames=4, future_frames=9, height=64, width=64, batch_size=2, val_batch_size=8)
    return VideoDataModule(train, val or train, **{**args, **kw})


def test_sample_world_is_deterministic_and_captioned():
    a, b = render_clip(seed=7), render_clip(seed=7)
    assert np.array_equal(a.frames, b.frames) and a.caption == b.caption
    assert a.frames.shape == (40, 72, 96, 3) and a.frames.dtype == np.uint8
    assert not np.array_equal(a.frames[0], a.frames[-1])  # something moves
    assert "moves" in a.caption and any(s in a.caption for s in ("circle", "square", "triangle"))
    assert render_clip(seed=8).caption != a.caption or not np.array_equal(
        render_clip(seed=8).frames, a.frames
    )


def test_bundled_shards_have_the_documented_members():
    shards = sorted(SAMPLE.glob("*.tar"))
    assert [p.name for p in shards] == [f"train-00000{i}.tar" for i in range(4)] + ["val-000000.tar"]
    with tarfile.open(shards[-1]) as tar:
        names = tar.getnames()
    keys = {n.rsplit(".", 1)[0] for n in names}
    assert len(keys) == 16 and all("." not in k for k in keys)
    assert {n.rsplit(".", 1)[1] for n in names} == {"mp4", "txt", "json"}


def test_sample_data_regenerates_bit_exactly(tmp_path):
    """`make sample-data` must leave the tracked shards unchanged: with the same x264 build the clips
    are the same bytes on any CPU (own colour conversion, one thread, x264's C code) and tar headers
    carry no wall-clock time. Another x264 build makes other (valid) choices: that is a skip."""

    def x264(mp4: bytes) -> bytes:  # the encoder's own description in the stream: version and options
        start = mp4.find(b"x264 - core")
        return mp4[start : mp4.index(b"\0", start)]

    with tarfile.open(SAMPLE / "val-000000.tar") as tar:
        committed = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith(".mp4"))).read()
    clip = render_clip(seed=0, num_frames=2)
    installed = x264(encode_mp4(clip.frames, clip.fps, reproducible=True))
    if installed.split(b" - ")[1] != x264(committed).split(b" - ")[1]:
        pytest.skip(
            f"data/sample was written by x264 {x264(committed).split(b' - ')[1].decode()}, this is "
            f"{installed.split(b' - ')[1].decode()}: its bytes may differ"
        )
    assert installed == x264(committed)  # same version and options
    main(["--out", str(tmp_path), "--train", "0", "--val", "16"])
    assert (tmp_path / "val-000000.tar").read_bytes() == (SAMPLE / "val-000000.tar").read_bytes()


def test_decode_window_resizes_and_crops_to_bucket():
    clip = render_clip(seed=1)
    data = encode_mp4(clip.frames, clip.fps)
    info = probe(data)
    assert (info.width, info.height, round(info.fps)) == (96, 72, 24) and info.frames_at(None) == 40
    window = decode_window(data, start=5, count=9, height=64, width=64)
    assert window.shape == (9, 64, 64, 3) and window.dtype == np.uint8
    # cover-resize 96x72 -> 85x64, centre crop 64 wide: compare with the same on the source frame
    expected = np.asarray(
        Image.fromarray(clip.frames[5]).resize((85, 64), Image.BICUBIC).crop((10, 0, 74, 64))
    )
    assert np.abs(window[0].astype(int) - expected.astype(int)).mean() < 6  # h264 is lossy
    half_rate = decode_window(data, start=2, count=5, height=64, width=64, fps=12)
    assert np.array_equal(half_rate[1], decode_window(data, start=6, count=1, height=64, width=64)[0])
    with pytest.raises(TooShortError):
        decode_window(data, start=35, count=9, height=64, width=64)


def test_loader_windows_overlap_on_the_current_frame():
    dm = VideoDataModule(
        str(SAMPLE / "train-{000000..000003}.tar"),
        str(SAMPLE / "val-000000.tar"),
        context_frames=4,
        future_frames=17,
        batch_size=3,
        val_samples=8,
        val_batch_size=8,
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["context"].shape == (3, 4, 64, 64, 3) and batch["target"].shape == (3, 17, 64, 64, 3)
    assert (batch["target"][:, 0] == batch["context"][:, -1]).all()
    assert batch["fps"].tolist() == [24.0] * 3 and all(batch["caption"])
    first, second = list(dm.val_dataloader()), list(dm.val_dataloader())
    assert len(first) == 1 and first[0]["key"] == [f"val_{1_000_000 + i:06d}" for i in range(8)]
    assert (first[0]["target"] == second[0]["target"]).all()  # the held-out set is fixed


@pytest.fixture
def bad_shard(tmp_path) -> Path:
    good = render_clip(seed=3)
    mp4 = encode_mp4(good.frames, good.fps)
    short = encode_mp4(good.frames[:6], good.fps)
    path = tmp_path / "mixed-000000.tar"
    with wds.TarWriter(str(path)) as sink:
        sink.write({"__key__": "good", "mp4": mp4, "txt": good.caption})
        sink.write({"__key__": "corrupt", "mp4": mp4[:200] + b"\0" * 3000, "txt": "x"})
        sink.write({"__key__": "short", "mp4": short, "txt": "a red ball"})
        sink.write({"__key__": "nocaption", "mp4": mp4, "txt": "  "})
        sink.write({"__key__": "pickled", "mp4": mp4, "txt": "a", "pth": b"\x80\x04K\x01."})
        sink.write({"__key__": "notvideo", "bin": b"\x00\x01", "txt": "a"})
        sink.write({"__key__": "good2", "mkv": mp4, "txt": good.caption, "json": json.dumps({"fps": 24})})
    return path


def test_bad_samples_are_skipped_and_counted(bad_shard):
    reasons = {"undecodable": 1, "too_short": 1, "no_caption": 1, "unsafe_member": 1, "unknown_format": 1}
    dm = module(str(bad_shard))
    (batch,) = list(dm.val_dataloader())
    assert batch["key"] == ["good", "good2"]
    assert dm.val_skip_counts() == reasons
    # training reads the shard over and over: each pass through it skips the same five, counted
    it = iter(dm.train_dataloader())
    for _ in range(6):
        batch = next(it)
        assert set(batch["key"]) <= {"good", "good2"}
        totals = dm.consumed(batch)
    assert set(totals) == set(reasons) and min(totals.values()) >= 2
    assert (
        dm.consumed({**batch, "worker": 1, "position": {"skips": {"too_short": 2}}})["too_short"]
        == totals["too_short"] + 2
    )  # totals add up across workers


def test_strict_mode_names_shard_and_key(bad_shard):
    with pytest.raises(ValueError, match=r"mixed-000000.tar key corrupt.*data.strict=true"):
        list(module(str(bad_shard), strict=True).val_dataloader())


def test_missing_shards_fail_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="matched no files.*sample_world"):
        module(str(tmp_path / "none-{000000..000003}.tar"))


@needs_real
def test_real_clips(tmp_path):
    path = tmp_path / "real-000000.tar"
    with wds.TarWriter(str(path)) as sink:
        for f in ("realshort.mp4", "flipping_a_pancake.mkv", "video_0.mov", "video_90.mov", "corrupted.mp4"):
            sink.write(
                {"__key__": f.split(".")[0], f.rsplit(".", 1)[1]: (REAL / f).read_bytes(), "txt": "a clip"}
            )
    # a 36-frame window reaches past the frame where corrupted.mp4 stops decoding (28)
    dm = module(str(path), context_frames=4, future_frames=33)
    (batch,) = list(dm.val_dataloader())
    # realshort has exactly 36 frames; the pancake is 426x240 Matroska, cropped to the 64x64 bucket
    assert batch["key"] == ["realshort", "flipping_a_pancake"]
    assert batch["target"].shape == (2, 33, 64, 64, 3)
    # the 3-frame QuickTime clips are too short; the corrupt one is undecodable
    assert dm.val_set.skips == {"too_short": 2, "undecodable": 1}  # all counted, the last one after the batch


@needs_real
def test_rotation_metadata_is_honoured():
    flat, rotated = probe(REAL / "video_0.mov"), probe(REAL / "video_90.mov")
    assert (flat.width, flat.height, flat.rotation) == (568, 320, 0)
    assert (rotated.width, rotated.height, rotated.rotation) == (320, 568, 270)  # displayed portrait
    frame = decode_window(REAL / "video_90.mov", 0, 1, height=568, width=320)[0]
    with av.open(str(REAL / "video_90.mov")) as c:
        stored = next(c.decode(video=0)).to_ndarray(format="rgb24")  # (320, 568, 3) as stored
    upright = np.rot90(stored, k=-1)  # the display matrix says: turn 90 degrees clockwise
    assert frame.shape == upright.shape and np.abs(frame.astype(int) - upright.astype(int)).mean() < 2


def test_corrupt_bytes_raise_video_error():
    with pytest.raises(VideoError):
        probe(b"not a video at all")
    with pytest.raises(VideoError):
        probe(io.BytesIO(b"").getvalue())


def test_prompt_template_wraps_the_caption_for_the_vlm():
    dm = module(
        str(SAMPLE / "val-000000.tar"), prompt_template="Instruction: {caption} ({source})", val_samples=2
    )
    (batch,) = list(dm.val_dataloader())
    assert batch["prompt"] == [f"Instruction: {c} (sample_world)" for c in batch["caption"]]
    with pytest.raises(ValueError, match="data.prompt_template"):
        module(str(SAMPLE / "val-000000.tar"), prompt_template="{caption} {")
    dm = module(str(SAMPLE / "val-000000.tar"), prompt_template="{caption} {absent}", val_samples=2)
    with pytest.raises(
        ValueError, match="no usable sample in the 1 held-out shard.*skipped no_prompt_field 16"
    ):
        list(dm.val_dataloader())


def test_each_batch_comes_from_one_bucket(tmp_path):
    path = tmp_path / "mixed-000000.tar"
    with wds.TarWriter(str(path)) as sink:
        for seed, (w, h) in enumerate([(96, 72), (64, 128), (96, 72), (64, 128), (96, 72)]):
            clip = render_clip(seed=seed, width=w, height=h)
            sink.write({"__key__": f"c{seed}", "mp4": encode_mp4(clip.frames, clip.fps), "txt": clip.caption})
    dm = module(str(path), buckets=[[64, 96, 9], [128, 64, 17], [64, 64, 33]], val_batch_size=2)
    batches = list(dm.val_dataloader())
    shapes = sorted((tuple(b["target"].shape[1:4]), b["key"]) for b in batches)
    # by aspect ratio: landscape clips go to the 96x64 bucket, portrait ones to 64x128, none to 64x64
    assert shapes == [((9, 64, 96), ["c0", "c2"]), ((9, 64, 96), ["c4"]), ((17, 128, 64), ["c1", "c3"])]
    with pytest.raises(ValueError, match="data.future_frames=10"):
        module(str(path), buckets=[[64, 96, 10]])


def test_epoch_length_and_fresh_epochs():
    dm = VideoDataModule(
        str(SAMPLE / "train-{000000..000003}.tar"),
        str(SAMPLE / "val-000000.tar"),
        context_frames=4,
        future_frames=9,
        batch_size=4,
        epoch_samples=8,
    )
    loader = dm.train_dataloader()
    first, second = list(loader), list(loader)
    assert [len(b["key"]) for b in first] == [4, 4] and len(second) == 2  # an epoch is 8 samples
    assert [b["key"] for b in first] != [b["key"] for b in second]  # and the next epoch is another draw


def test_resize_filters_agree_and_are_checked():
    clip = render_clip(seed=2, width=96, height=72)
    data = encode_mp4(clip.frames, clip.fps)
    area = decode_window(data, 0, 3, 64, 64, resize_filter="area").astype(int)
    fast = decode_window(data, 0, 3, 64, 64, resize_filter="fast_bilinear").astype(int)
    assert np.abs(area - fast).mean() < 4  # cheaper, not different
    with pytest.raises(ValueError, match="data.resize_filter='nearest'"):
        module(str(SAMPLE / "val-000000.tar"), resize_filter="nearest")


def test_more_workers_than_shards_do_not_hang():
    dm = VideoDataModule(
        str(SAMPLE / "val-000000.tar"),
        str(SAMPLE / "val-000000.tar"),
        context_frames=4,
        future_frames=9,
        batch_size=2,
        num_workers=2,
    )
    it = iter(dm.train_dataloader())  # one shard, two workers: each resamples it, none runs dry
    batches = [next(it) for _ in range(4)]
    assert {b["worker"] for b in batches} == {0, 1}
    assert all(dm.consumed(b) == {} for b in batches)


@pytest.fixture(scope="module")
def mixed_shards(tmp_path_factory) -> str:
    """Two shards of landscape and portrait clips: batches of one bucket leave others pending."""
    root = tmp_path_factory.mktemp("mixed")
    for shard in range(2):
        with wds.TarWriter(str(root / f"mixed-{shard:06d}.tar")) as sink:
            for i, (w, h) in enumerate([(96, 72), (64, 128), (96, 72), (96, 72), (64, 128), (64, 128)]):
                clip = render_clip(seed=10 * shard + i, width=w, height=h)
                sink.write(
                    {
                        "__key__": f"s{shard}c{i}",
                        "mp4": encode_mp4(clip.frames, clip.fps),
                        "txt": clip.caption,
                    }
                )
    return str(root / "mixed-{000000..000001}.tar")


@pytest.mark.parametrize("workers", [0, 2])
def test_saved_data_position_continues_the_stream_exactly(mixed_shards, workers):
    def make():
        return module(mixed_shards, num_workers=workers, open_shards=2, buckets=[[64, 96, 9], [128, 64, 9]])

    dm = make()
    it = iter(dm.train_dataloader())
    for _ in range(30):  # stop where some bucket is part-filled: those samples must come back too
        dm.consumed(next(it))
        state = json.loads(json.dumps(dm.state_dict()))  # JSON-able, as the checkpoint stores it
        if any(p["pending"] for p in state["ranks"][0]["workers"].values()):
            break
    assert any(p["pending"] for p in state["ranks"][0]["workers"].values())
    expected = [next(it) for _ in range(6)]
    resumed = make()
    resumed.load_state_dict(state)
    got = list(itertools.islice(resumed.train_dataloader(), 6))
    assert [b["key"] for b in got] == [b["key"] for b in expected]
    assert all(
        torch.equal(a["target"], b["target"]) for a, b in zip(got, expected, strict=True)
    )  # same windows too
    assert [b["worker"] for b in got] == [b["worker"] for b in expected]
