"""Writing and inspecting webdataset shards of video-text pairs.

    foresight data make-shards clips/ manifest.jsonl --out shards/ [--maxcount 1000] [--maxsize 1e9]
    foresight data inspect 'shards/clips-{000000..000009}.tar'

Inputs are folders of videos with sidecar captions (`clip.mp4` + `clip.txt`, optional `clip.json`)
or CSV/JSONL manifests (columns `path`, `caption`, any others kept as metadata). Every video is
probed before it is written (decodable, fps, frames, size, rotation); what cannot be used is
skipped and counted by reason, and the command ends with that summary.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import webdataset as wds

from foresight.data.loader import VIDEO_EXTS, expand_shards
from foresight.data.video import VideoError, probe


@dataclass
class Entry:
    video: Path
    caption: str | None
    meta: dict = field(default_factory=dict)


def stable_key(path: Path, seen: Counter) -> str:
    """A key from the file name with no dots (webdataset splits members at the first dot), unique."""
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem)
    seen[key] += 1
    return key if seen[key] == 1 else f"{key}_{seen[key] - 1}"


def entries(inputs: list[str]) -> list[Entry]:
    """Folders (videos + sidecar .txt/.json), or .csv/.jsonl manifests; relative paths resolve from the manifest."""
    found: list[Entry] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for video in sorted(p for p in item.rglob("*") if p.suffix.lower().lstrip(".") in VIDEO_EXTS):
                txt, meta = video.with_suffix(".txt"), video.with_suffix(".json")
                found.append(Entry(video, txt.read_text().strip() if txt.exists() else None,
                                   json.loads(meta.read_text()) if meta.exists() else {}))
        elif item.suffix in (".csv", ".jsonl"):
            with item.open() as f:
                rows = csv.DictReader(f) if item.suffix == ".csv" else (json.loads(line) for line in f if line.strip())
                for row in rows:
                    if "path" not in row:
                        raise ValueError(f"{item}: every row needs a 'path' column (and a 'caption'); got {sorted(row)}")
                    path = Path(row.pop("path"))
                    found.append(Entry(path if path.is_absolute() else item.parent / path, row.pop("caption", None), row))
        else:
            raise ValueError(f"{item}: not a folder, .csv or .jsonl manifest")
    return found


def make_shards(inputs: list[str], out: str | Path, prefix: str = "clips", maxcount: int = 1000,
                maxsize: float = 1e9) -> Counter:
    """Probe and write every usable clip; returns counts: 'written' and one per skip reason."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    keys: Counter[str] = Counter()
    with wds.ShardWriter(str(out / f"{prefix}-%06d.tar"), maxcount=maxcount, maxsize=int(maxsize), verbose=0) as sink:
        for entry in entries(inputs):
            if not entry.caption:
                counts["no_caption"] += 1
                continue
            if not entry.video.exists():
                counts["missing_file"] += 1
                continue
            try:
                info = probe(entry.video)
            except VideoError:
                counts["undecodable"] += 1
                continue
            ext = entry.video.suffix.lower().lstrip(".")
            meta = {**entry.meta, "fps": info.fps, "frames": info.frames_at(None), "width": info.width,
                    "height": info.height, "rotation": info.rotation, "source": str(entry.video)}
            sink.write({"__key__": stable_key(entry.video, keys), ext: entry.video.read_bytes(),
                        "txt": entry.caption, "json": json.dumps(meta)})
            counts["written"] += 1
    return counts


def inspect(spec: str) -> dict:
    """Counts, durations, resolutions, caption lengths and undecodable samples of shards."""
    stats = {"samples": 0, "undecodable": [], "durations": [], "sizes": Counter(), "caption_words": []}
    for url in expand_shards(spec, "shards"):
        with tarfile.open(url) as tar:
            members: dict[str, dict[str, bytes]] = {}
            for m in tar.getmembers():
                if m.isfile():
                    key, _, ext = Path(m.name).name.partition(".")
                    members.setdefault(key, {})[ext] = tar.extractfile(m).read()
        for key, sample in members.items():
            stats["samples"] += 1
            video = next((sample[e] for e in sample if e.lower() in VIDEO_EXTS), None)
            stats["caption_words"].append(len(sample.get("txt", b"").decode(errors="replace").split()))
            try:
                if video is None:
                    raise VideoError("no video member")
                info = probe(video)
            except VideoError as e:
                stats["undecodable"].append(f"{url}:{key} ({e})")
                continue
            stats["durations"].append(info.duration)
            stats["sizes"][f"{info.width}x{info.height}"] += 1
    return stats


def format_inspection(stats: dict) -> str:
    def spread(values: list[float], unit: str) -> str:
        if not values:
            return "-"
        return f"min {min(values):.1f}{unit}  median {statistics.median(values):.1f}{unit}  max {max(values):.1f}{unit}"

    lines = [f"samples      {stats['samples']}",
             f"duration     {spread(stats['durations'], 's')}  total {sum(stats['durations']) / 60:.1f} min",
             "resolutions  " + ", ".join(f"{k} x{n}" for k, n in stats["sizes"].most_common(8)),
             f"caption      {spread(stats['caption_words'], ' words')}",
             f"undecodable  {len(stats['undecodable'])}"]
    lines += [f"  {u}" for u in stats["undecodable"]]
    return "\n".join(lines)
