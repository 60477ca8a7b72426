"""Writing and inspecting webdataset shards of video-text pairs.

    foresight data make-shards clips/ manifest.jsonl --out shards/ [--maxcount 1000] [--maxsize 1e9]
    foresight data inspect 'shards/clips-{000000..000009}.tar'

Inputs are folders of videos with sidecar captions (`clip.mp4` + `clip.txt`, optional `clip.json`)
or CSV/JSONL manifests (columns `path`, `caption`, any others kept as metadata). Every video is
probed before it is written (decodable, fps, frames, size, rotation); what cannot be used (too
short, too small, undecodable, no caption, an unreadable .json) is skipped and counted by reason,
and the command ends with that summary and the first file of each reason. Captions that are not
UTF-8 are written with U+FFFD in place of the bad bytes, and counted.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import webdataset as wds

from foresight.data.loader import VIDEO_EXTS, decode_caption, expand_shards
from foresight.data.stream import SHARD_ERRORS, BadSample, counted, shard_samples
from foresight.data.video import VideoError, probe
from foresight.data.window import MIN_FRAMES, MIN_SIDE

NOT_UTF8 = "caption_not_utf8"  # written, with U+FFFD for the bytes that are not UTF-8: counted, not skipped


@dataclass
class Entry:
    video: Path
    caption: str | None
    meta: dict = field(default_factory=dict)
    problem: BadSample | None = None  # found while listing (an unreadable sidecar .json)
    caption_not_utf8: bool = False


@dataclass
class Written:
    """What make_shards did: counts by outcome ('written', each skip reason, NOT_UTF8) and, for each
    outcome other than 'written', its first case ('path: why') so the user can find the rest."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: str, example: str | None = None) -> None:
        self.counts[outcome] += 1
        if example is not None:
            self.examples.setdefault(outcome, example)

    def summary(self, out: str | Path) -> str:
        skipped = {k: n for k, n in self.counts.items() if k not in ("written", NOT_UTF8)}
        lines = [
            f"written {self.counts['written']} to {out}; skipped {sum(skipped.values())}"
            + (f" ({counted(Counter(skipped))})" if skipped else "")
        ]
        if self.counts[NOT_UTF8]:
            lines.append(
                f"{NOT_UTF8} {self.counts[NOT_UTF8]}: written with U+FFFD for the bytes that are not UTF-8"
            )
        lines += [f"  {k}, e.g. {v}" for k, v in sorted(self.examples.items())]
        return "\n".join(lines)


def stable_key(path: Path, seen: Counter) -> str:
    """A key from the file name with no dots (webdataset splits members at the first dot), unique."""
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)
    seen[key] += 1
    return key if seen[key] == 1 else f"{key}_{seen[key] - 1}"


def sidecar_entry(video: Path) -> Entry:
    """A video with its `clip.txt` caption and `clip.json` metadata beside it (both optional)."""
    entry = Entry(video, None)
    txt, meta = video.with_suffix(".txt"), video.with_suffix(".json")
    if txt.exists():
        entry.caption, entry.caption_not_utf8 = decode_caption(txt.read_bytes())
    if meta.exists():
        try:
            entry.meta = json.loads(meta.read_bytes())
        except ValueError as e:  # not JSON, or not UTF-8
            entry.problem = BadSample("bad_metadata", f"{meta.name} is not JSON ({e})")
        else:
            if not isinstance(entry.meta, dict):
                entry.problem = BadSample(
                    "bad_metadata", f"{meta.name} holds a {type(entry.meta).__name__}, not an object"
                )
                entry.meta = {}
    return entry


def jsonl_rows(path: Path, lines) -> Iterator[dict]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{number}: not a JSON line ({e})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: a JSON object is wanted, got a {type(row).__name__}")
            yield row


def entries(inputs: list[str]) -> list[Entry]:
    """Folders (videos + sidecar .txt/.json), or .csv/.jsonl manifests; relative paths resolve from the
    manifest."""
    found: list[Entry] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += [
                sidecar_entry(p)
                for p in sorted(item.rglob("*"))
                if p.suffix.lower().lstrip(".") in VIDEO_EXTS
            ]
        elif item.suffix in (".csv", ".jsonl"):
            if not item.exists():
                raise FileNotFoundError(f"{item}: the manifest does not exist")
            with item.open(encoding="utf-8", errors="replace") as f:
                rows = csv.DictReader(f) if item.suffix == ".csv" else jsonl_rows(item, f)
                for row in rows:
                    if "path" not in row:
                        raise ValueError(
                            f"{item}: every row needs a 'path' column (and a 'caption'); got {sorted(row)}"
                        )
                    path = Path(row.pop("path"))
                    caption = row.pop("caption", None)
                    found.append(
                        Entry(
                            path if path.is_absolute() else item.parent / path,
                            caption,
                            row,
                            caption_not_utf8="\ufffd" in (caption or ""),
                        )
                    )
        elif not item.exists():
            raise FileNotFoundError(f"{item}: no such folder or manifest")
        else:
            raise ValueError(f"{item}: not a folder, .csv or .jsonl manifest")
    return found


def checked_sample(entry: Entry, min_frames: int, min_side: int) -> dict:
    """The shard sample of an entry (without its key), probed; BadSample (with the skip reason) when
    it cannot be used."""
    if entry.problem is not None:
        raise entry.problem
    if not entry.caption:
        raise BadSample(
            "no_caption",
            f"no caption (a {entry.video.with_suffix('.txt').name} beside it, or the manifest's caption)",
        )
    if not entry.video.exists():
        raise BadSample("missing_file", "does not exist")
    try:
        info = probe(entry.video)
    except VideoError as e:
        raise BadSample(e.reason, str(e)) from None
    if info.frames_at(None) < min_frames:
        raise BadSample("too_short", f"{info.frames_at(None)} frames; at least {min_frames} wanted")
    if min(info.width, info.height) < min_side:
        raise BadSample("too_small", f"{info.width}x{info.height}; at least {min_side} pixels a side wanted")
    meta = {
        **entry.meta,
        "fps": info.fps,
        "frames": info.frames_at(None),
        "width": info.width,
        "height": info.height,
        "rotation": info.rotation,
        "source": str(entry.video),
    }
    return {
        entry.video.suffix.lower().lstrip("."): entry.video.read_bytes(),
        "txt": entry.caption,
        "json": json.dumps(meta),
    }


def make_shards(
    inputs: list[str],
    out: str | Path,
    prefix: str = "clips",
    maxcount: int = 1000,
    maxsize: float = 1e9,
    min_frames: int = MIN_FRAMES,
    min_side: int = MIN_SIDE,
) -> Written:
    """Probe and write every usable clip; clips shorter than `min_frames` or with a side below
    `min_side` pixels are skipped (the defaults: what the smallest window and bucket need)."""
    out = Path(out)
    listed = entries(inputs)  # before creating anything: a wrong input fails alone
    out.mkdir(parents=True, exist_ok=True)
    written = Written()
    keys: Counter[str] = Counter()
    with wds.ShardWriter(
        str(out / f"{prefix}-%06d.tar"), maxcount=maxcount, maxsize=int(maxsize), verbose=0
    ) as sink:
        for entry in listed:
            try:
                sample = checked_sample(entry, min_frames, min_side)
            except BadSample as e:
                written.add(e.reason, f"{entry.video}: {e}")
                continue
            sink.write({"__key__": stable_key(entry.video, keys), **sample})
            written.add("written")
            if entry.caption_not_utf8:
                written.add(NOT_UTF8, str(entry.video))
    return written


def inspect(spec: str) -> dict:
    """Counts, durations, resolutions, caption lengths, undecodable samples and unreadable shards."""
    stats = {
        "samples": 0,
        "undecodable": [],
        "durations": [],
        "sizes": Counter(),
        "caption_words": [],
        NOT_UTF8: 0,
        "bad_shards": [],
    }
    for url in expand_shards(spec, "shards"):
        try:
            for _, sample in shard_samples(url):
                inspect_sample(url, sample, stats)
        except SHARD_ERRORS as e:
            stats["bad_shards"].append(f"{url} (after {stats['samples']} samples: {e})")
    return stats


def inspect_sample(url: str, sample: dict, stats: dict) -> None:
    stats["samples"] += 1
    caption, not_utf8 = decode_caption(sample.get("txt", b""))
    stats["caption_words"].append(len(caption.split()))
    stats[NOT_UTF8] += not_utf8
    video = next((sample[e] for e in sample if e.lower() in VIDEO_EXTS), None)
    try:
        if video is None:
            raise VideoError("no video member")
        info = probe(video)
    except VideoError as e:
        stats["undecodable"].append(f"{url}:{sample['__key__']} ({e})")
        return
    stats["durations"].append(info.duration)
    stats["sizes"][f"{info.width}x{info.height}"] += 1


def format_inspection(stats: dict) -> str:
    def spread(values: list[float], unit: str) -> str:
        if not values:
            return "-"
        median = statistics.median(values)
        return f"min {min(values):.1f}{unit}  median {median:.1f}{unit}  max {max(values):.1f}{unit}"

    lines = [
        f"samples      {stats['samples']}",
        f"duration     {spread(stats['durations'], 's')}  total {sum(stats['durations']) / 60:.1f} min",
        "resolutions  " + ", ".join(f"{k} x{n}" for k, n in stats["sizes"].most_common(8)),
        f"caption      {spread(stats['caption_words'], ' words')}"
        + (f"  ({stats[NOT_UTF8]} not UTF-8)" if stats[NOT_UTF8] else ""),
        f"undecodable  {len(stats['undecodable'])}",
    ]
    lines += [f"  {u}" for u in stats["undecodable"]]
    if stats["bad_shards"]:
        lines.append(f"unreadable   {len(stats['bad_shards'])} shard(s): not a tar, or cut short")
        lines += [f"  {u}" for u in stats["bad_shards"]]
    return "\n".join(lines)
