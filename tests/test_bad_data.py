"""Bad data, one table: each case -> the counted skip it must give, or the one-line error it must raise.

Where a case is read:
  held-out     the case's samples in a shard after a good clip (or the case's shard file after a good
               shard), read as VideoDataModule's validation set
  held-out only  the case's samples alone as the validation set
  training     the training stream of two shards holding only the case's samples (under a deadline)
  spec         the case's string as data.train_shards
  make-shards  a folder holding a good clip and the case's files, through `foresight data make-shards`
  predict-dir  predict's directory reader on a folder holding a good clip and the case's files
  inspect      `foresight data inspect` on the case's shard spec
What is expected:
  skip REASON      counted once under REASON, the good clip still delivered
  ok               nothing skipped, every clip delivered
  count NOTE       delivered, and counted under NOTE (not a skip)
  report REGEX     the command's report matches REGEX
  error REGEX      one line matching REGEX (the CLI: on stderr, exit code 2)
"""

from __future__ import annotations

import json
import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import webdataset as wds

from foresight.cli import main as cli
from foresight.config import ROOT
from foresight.data.loader import VideoDataModule
from foresight.predict import Predictor, directory_batches
from tests.helpers import run_script
from tests.videos import encode, pattern_frames

CONTEXT, FUTURE = 4, 9  # the window: 12 frames


def clip(
    frames: int = 24,
    height: int = 48,
    width: int = 64,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fmt: str = "mp4",
) -> bytes:
    return encode(pattern_frames(frames, height, width), codec, pix_fmt, fmt)


def flat_frame_clip() -> bytes:
    frames = pattern_frames(24)
    frames[5] = (0, 135, 0)
    return encode(frames, "libx264", "yuv444p", "mp4", options={"qp": "0"})


def sample(key: str, **members) -> dict:
    return {"__key__": key, "txt": "a square moves", **members}


def write_shard(path: Path, samples: list[dict]) -> str:
    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)
    return str(path)


def truncated(tmp: Path) -> str:
    """A shard cut in the middle of its second clip."""
    full = write_shard(tmp / "whole.tar", [sample("first", mp4=clip()), sample("second", mp4=clip())])
    data = Path(full).read_bytes()
    (tmp / "cut.tar").write_bytes(data[: len(data) * 3 // 4])
    return str(tmp / "cut.tar")


def junk(path: Path) -> Path:
    path.write_bytes(b"not a tar archive " * 64)
    return path


def manifest(tmp: Path, text: str) -> str:
    (tmp / "list.jsonl").write_text(text)
    return str(tmp / "list.jsonl")


def folder(tmp: Path, files: dict[str, bytes | str]) -> str:
    """A make-shards input folder: a good clip with its caption, and `files`."""
    root = tmp / "clips"
    root.mkdir()
    (root / "good.mp4").write_bytes(clip())
    (root / "good.txt").write_text("a square moves")
    for name, data in files.items():
        (root / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return str(root)


# case -> (where, build(tmp_path) -> samples | spec | folder, expected)
CASES = {
    # -- clips in shards (training, validation, predict and evaluate read them alike) --
    "corrupt video bytes": (
        "held-out",
        lambda t: [sample("x", mp4=clip()[:300] + b"\0" * 2000)],
        "skip undecodable",
    ),
    "not a video at all": ("held-out", lambda t: [sample("x", mp4=b"hello")], "skip undecodable"),
    "a 3-frame clip": ("held-out", lambda t: [sample("x", mp4=clip(frames=3))], "skip too_short"),
    "a 1x1 video": (
        "held-out",
        lambda t: [sample("x", mkv=clip(height=1, width=1, codec="ffv1", pix_fmt="yuv444p", fmt="matroska"))],
        "skip too_small",
    ),
    "a 12x8 video (5.3x to cover 64x64)": (
        "held-out",
        lambda t: [sample("x", mp4=clip(height=8, width=12))],
        "skip too_small",
    ),
    "an empty caption": ("held-out", lambda t: [sample("x", mp4=clip(), txt=" \n")], "skip no_caption"),
    "a caption that is not UTF-8": (
        "held-out",
        lambda t: [sample("x", mp4=clip(), txt=b"caf\xe9 au lait")],
        "ok",
    ),
    "a pickle member": (
        "held-out",
        lambda t: [sample("x", mp4=clip(), pth=b"\x80\x04K\x01.")],
        "skip unsafe_member",
    ),
    "no video member": ("held-out", lambda t: [sample("x", bin=b"\0\1")], "skip unknown_format"),
    "a .json that is not JSON": (
        "held-out",
        lambda t: [sample("x", mp4=clip(), json=b"{fps: 24")],
        "skip bad_metadata",
    ),
    "a .json fps that is no number": (
        "held-out",
        lambda t: [sample("x", mp4=clip(), json=json.dumps({"fps": "x"}))],
        "skip bad_metadata",
    ),
    "a flat frame between textured ones": (
        "held-out",
        lambda t: [sample("x", mp4=flat_frame_clip())],
        "skip flat_frame",
    ),
    "a GIF clip": (
        "held-out",
        lambda t: [sample("x", gif=clip(codec="gif", pix_fmt="rgb8", fmt="gif"))],
        "ok",
    ),
    "a WebM (VP9, 4:4:4) clip": (
        "held-out",
        lambda t: [sample("x", webm=clip(codec="libvpx-vp9", pix_fmt="yuv444p", fmt="webm"))],
        "ok",
    ),
    # -- shards --
    "a truncated shard": ("held-out", truncated, "skip bad_shard"),
    "a shard that is not a tar": ("held-out", lambda t: str(junk(t / "junk.tar")), "skip bad_shard"),
    "held-out clips all too short": (
        "held-out only",
        lambda t: [sample(f"s{i}", mp4=clip(frames=6)) for i in range(3)],
        r"error no usable sample in the 1 held-out shard\(s\) such as .*case-000000.tar: "
        r"skipped too_short 3; the window needs 12 frames \(4 context \+ 9 future - 1\) "
        r"at the clip's own rate, the longest clip seen has 6$",
    ),
    "training clips all too short": (
        "training",
        lambda t: [sample(f"s{i}", mp4=clip(frames=6)) for i in range(5)],
        r"error no usable sample in the 2 training shard\(s\) such as .*: skipped "
        r"too_short \d+; the window needs 12 frames .*, the longest clip seen has 6$",
    ),
    "training clips all undecodable": (
        "training",
        lambda t: [sample(f"s{i}", mp4=b"junk") for i in range(5)],
        r"error no usable sample in the 2 training shard\(s\) .*: skipped undecodable",
    ),
    "training shards that are not tars": (
        "training",
        lambda t: [junk(t / "a.tar"), junk(t / "b.tar")],
        r"error no readable sample in 2 shard\(s\) such as .*a.tar",
    ),
    "an empty shard list": ("spec", lambda t: "", r"error data.train_shards is empty: give tar shards"),
    "a shard file that does not exist": (
        "spec",
        lambda t: str(t / "gone.tar"),
        r"error data.train_shards='.*gone.tar': the file does not exist$",
    ),
    "a pattern that matches nothing": (
        "spec",
        lambda t: str(t / "none-{000000..000003}.tar"),
        r"error data.train_shards='.*' matched no files",
    ),
    "a remote shard URL": (
        "spec",
        lambda t: "s3://bucket/train-000000.tar",
        r"error data.train_shards: "
        r"'s3://bucket/train-000000.tar' is not a local file; .* mount the bucket",
    ),
    # -- make-shards --
    "make-shards: a 3-frame clip": (
        "make-shards",
        lambda t: [folder(t, {"short.mp4": clip(frames=3), "short.txt": "x"})],
        "skip too_short",
    ),
    "make-shards: a 1x1 video": (
        "make-shards",
        lambda t: [folder(t, {"dot.gif": clip(24, 1, 1, "gif", "rgb8", "gif"), "dot.txt": "x"})],
        "skip too_small",
    ),
    "make-shards: a GIF in the folder": (
        "make-shards",
        lambda t: [folder(t, {"anim.gif": clip(codec="gif", pix_fmt="rgb8", fmt="gif"), "anim.txt": "x"})],
        "ok",
    ),
    "make-shards: a caption that is not UTF-8": (
        "make-shards",
        lambda t: [folder(t, {"latin.mp4": clip(), "latin.txt": b"caf\xe9 au lait"})],
        "count caption_not_utf8",
    ),
    "make-shards: a sidecar .json that is not JSON": (
        "make-shards",
        lambda t: [folder(t, {"meta.mp4": clip(), "meta.txt": "x", "meta.json": "{oops"})],
        "skip bad_metadata",
    ),
    "make-shards: no caption": (
        "make-shards",
        lambda t: [folder(t, {"bare.mp4": clip()})],
        "skip no_caption",
    ),
    "make-shards: an undecodable clip": (
        "make-shards",
        lambda t: [folder(t, {"junk.mp4": b"\0" * 500, "junk.txt": "x"})],
        "skip undecodable",
    ),
    "make-shards: a manifest row whose file is gone": (
        "make-shards",
        lambda t: [folder(t, {}), manifest(t, '{"path": "gone.mp4", "caption": "x"}\n')],
        "skip missing_file",
    ),
    "make-shards: a manifest line that is not JSON": (
        "make-shards",
        lambda t: [manifest(t, '{"path": "a.mp4"}\n{oops\n')],
        r"error .*list.jsonl:2: not a JSON line",
    ),
    "make-shards: an input that does not exist": (
        "make-shards",
        lambda t: [str(t / "nowhere")],
        r"error .*nowhere: no such folder or manifest$",
    ),
    # -- predict's directory reader --
    "predict: a GIF in a directory": (
        "predict-dir",
        lambda t: folder(t, {"anim.gif": clip(codec="gif", pix_fmt="rgb8", fmt="gif"), "anim.txt": "x"}),
        "ok",
    ),
    "predict: a 1-frame clip in a directory": (
        "predict-dir",
        lambda t: folder(t, {"one.mp4": clip(frames=1), "one.txt": "x"}),
        "skip 1 frames",
    ),
    # -- inspect --
    "inspect: a shard that is not a tar": (
        "inspect",
        lambda t: str(junk(t / "junk.tar")),
        r"report unreadable +1 shard",
    ),
    "inspect: a truncated shard": ("inspect", truncated, r"report samples +1\n(.|\n)*unreadable +1 shard"),
    "inspect: a file that does not exist": (
        "inspect",
        lambda t: str(t / "gone.tar"),
        r"error shards='.*gone.tar': the file does not exist$",
    ),
    "inspect: an empty shard list": ("inspect", lambda t: "", r"error shards is empty"),
}


@contextmanager
def deadline(seconds: int):
    """Fail, rather than hang, when the block runs longer than `seconds`."""

    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def datamodule(train: str, val: str) -> VideoDataModule:
    return VideoDataModule(
        train,
        val,
        context_frames=CONTEXT,
        future_frames=FUTURE,
        height=64,
        width=64,
        batch_size=2,
        val_batch_size=8,
    )


def read(where: str, built, tmp: Path):
    """Reads the case as `where` says: (skips by reason, delivered keys), or the error's text."""
    good = write_shard(tmp / "good-000000.tar", [sample("good", mp4=clip())])
    started = time.monotonic()
    try:
        if where == "spec":
            datamodule(built, good)
            raise AssertionError("accepted")
        if where == "training":
            if not isinstance(built[0], Path):  # samples: two shards of them
                built = [Path(write_shard(tmp / f"train-{i:06d}.tar", built)) for i in range(2)]
            dm = datamodule(f"{{{built[0]},{built[1]}}}", good)
            with deadline(30):
                next(iter(dm.train_dataloader()))
            raise AssertionError("training produced a batch from clips that are all unusable")
        if isinstance(built, str):  # a shard file of its own, read after the good one
            val = f"{{{good},{built}}}"
        else:
            first = [] if where == "held-out only" else [sample("good", mp4=clip())]
            val = write_shard(tmp / "case-000000.tar", first + built)
        dm = datamodule(good, val)
        keys = [k for batch in dm.val_dataloader() for k in batch["key"]]
        return dict(dm.val_skip_counts()), keys
    except (ValueError, FileNotFoundError) as e:
        if where == "training":
            assert time.monotonic() - started < 10, "the stream must stop within seconds"
        return str(e)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data(case, tmp_path, capsys):
    where, build, expected = CASES[case]
    kind, _, detail = expected.partition(" ")
    built = build(tmp_path)
    if where in ("make-shards", "inspect"):
        args = (
            ["data", "make-shards", *built, "--out", str(tmp_path / "out")]
            if where == "make-shards"
            else ["data", "inspect", built]
        )
        code = cli(args)
        out, err = capsys.readouterr()
        if kind == "error":
            assert code == 2 and err.count("\n") == 1 and re.search(detail, err.strip()), err
        elif kind == "report":
            assert code == 0 and re.search(detail, out), out
        else:
            assert code == 0 and out.startswith(f"written {1 if kind == 'skip' else 2} to"), out
            if kind == "skip":
                assert f"skipped 1 ({detail} 1)" in out and f"  {detail}, e.g. " in out, out
            if kind == "count":
                assert "skipped 0" in out and f"{detail} 1:" in out, out
        return
    if where == "predict-dir":
        reader = Predictor.__new__(Predictor)  # the real reader, without loading models it does not use
        reader.context_frames, reader.height, reader.width = CONTEXT, 64, 64
        skipped: dict[str, str] = {}
        keys = [c["key"] for batch in directory_batches(reader, Path(built), None, 8, skipped) for c in batch]
        if kind == "ok":
            assert keys == ["anim", "good"] and skipped == {}
        else:
            assert keys == ["good"] and len(skipped) == 1 and detail in next(iter(skipped.values())), skipped
        return
    result = read(where, built, tmp_path)
    if kind == "error":
        assert isinstance(result, str) and "\n" not in result and re.search(detail, result), result
    elif kind == "ok":
        assert result == ({}, ["good", "x"])
    else:
        assert result[0] == {detail: 1} and "good" in result[1], result


def test_train_py_stops_within_seconds_when_no_clip_is_long_enough(tmp_path):
    """The whole entry point, not only the stream: it used to spin at 100% CPU forever."""
    shard = write_shard(
        tmp_path / "short-000000.tar", [sample(f"s{i}", mp4=clip(frames=12)) for i in range(4)]
    )
    started = time.monotonic()
    # usable held-out clips: train.py checks the held-out set before anything loads (test_bad_inputs.py
    # covers a held-out set this short), so this reaches the training stream
    val = ROOT / "data" / "sample" / "val-000000.tar"
    out = run_script(
        "train.py",
        "+experiment=optionA",
        "logger=none",
        f"data.train_shards={shard}",
        f"data.val_shards={val}",
        f"hydra.run.dir={tmp_path / 'run'}",
        timeout=180,
    )
    assert out.returncode != 0 and time.monotonic() - started < 120
    assert re.search(
        r"no usable sample in the 1 training shard\(s\) .*skipped too_short \d+; the window needs 20 "
        r"frames \(4 context \+ 17 future - 1\) at the clip's own rate, the longest clip seen has 12",
        out.stderr,
    ), out.stderr[-2000:]
