"""`foresight compare`: group runs, summarise their final validation metrics over seeds, rank the groups
on the keys that mean the same for every option, plot their curves; writes report.md, report.html
(self-contained), summary.json and PNGs. A run is a directory with `.hydra/config.yaml` and metrics in
`csv/version_*/metrics.csv` (CSVLogger) or else a wandb offline run `wandb/*/run-*.wandb`, an
evaluation (`evaluation.json` of evaluate.py, with per-frame curves), or a run of an online wandb
project (`wandb:ENTITY/PROJECT`).

Only scores of sampled futures rank (foresight.eval.scoring.RANKING: latent MSE, PSNR, SSIM, LPIPS,
FVD). Baselines (copy last raw and through the VAE, the VAE's reconstruction) are rows of their own;
the instruction gap is a column; diagnostics (`diag/*`: each option's own losses) are shown apart and
never ranked."""

from __future__ import annotations

import base64
import csv
import html
import json
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from foresight.eval.scoring import DIAGNOSTIC, SAMPLER, better, ranks

STEP_KEYS = ("trainer/global_step", "step", "_step")  # WandbLogger's step, CSVLogger's, wandb.log's
BASELINE = "_copy_last"
GAP = "_instruction_gap"
BASELINE_ROWS = (
    ("_copy_last", "copy last (raw)"),
    ("_copy_last_vae", "copy last (through the VAE)"),
    ("_vae_recon", "VAE reconstruction (ceiling)"),
)
SCORED = ("val/", "eval/")  # validation during training; evaluate.py on held-out shards
_WANDB_HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
_BLOCK = 32768  # the LevelDB log format's block size; record headers never straddle blocks


@dataclass
class Run:
    """One run: where it came from, its config, and its metric histories."""

    name: str
    config: dict
    history: dict[str, dict[int, float]]  # metric -> {step: value}
    per_frame: dict[str, list[float]] = field(default_factory=dict)  # eval/<metric> -> value per future frame


def config_value(config: dict, key: str):
    """A dotted config key's value (or the key verbatim, as flattened wandb configs hold it); a node
    with a `_target_` gives its class name, so `option` groups by option class."""
    value = config
    for part in [key] if key in config else key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict) and "_target_" in value:
        return str(value["_target_"]).rsplit(".", 1)[-1]
    return value


def _number(value) -> float | None:
    """A logged value as a float (numbers and numeric strings), else None (blanks, media, dicts)."""
    try:
        return None if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _add_row(history: dict[str, dict[int, float]], row: dict) -> None:
    """Add one logged row (key -> value) at its step; non-numeric values and bookkeeping keys are dropped."""
    steps = [s for s in (_number(row.get(k)) for k in STEP_KEYS) if s is not None]
    if not steps:
        return
    for key, value in row.items():
        number = _number(value)
        if number is not None and key not in STEP_KEYS and key != "epoch" and not key.startswith("_"):
            history.setdefault(key, {})[int(steps[0])] = number


def wandb_records(path: Path):
    """Yield the protobuf Records of a wandb offline run file: a LevelDB-format log behind a `:W&B`
    header (the file `wandb sync` replays). A truncated tail ends the reading."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    if data[:7] != _WANDB_HEADER:
        raise ValueError(f"{path} is not a wandb run file (no :W&B header)")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a header is zero padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, size, kind = struct.unpack_from("<IHB", data, pos)
        chunk = data[pos + 7 : pos + 7 + size]
        if len(chunk) < size or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return
        pos += 7 + size
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL, FIRST | MIDDLE, LAST
        if kind in (1, 4):
            record = Record()
            record.ParseFromString(pending)
            yield record


def _wandb_rows(path: Path):
    """The history rows (key -> value) of a wandb offline run file."""
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "history":
            yield {
                item.key or ".".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }


def read_history(run_dir: Path) -> dict[str, dict[int, float]]:
    """A run directory's metric histories: its CSVLogger files if any, else its wandb offline files."""
    history: dict[str, dict[int, float]] = {}
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                _add_row(history, row)
    if not history:
        for path in sorted({p.resolve() for p in run_dir.glob("wandb/*/run-*.wandb")}):
            for row in _wandb_rows(path):
                _add_row(history, row)
    return history


def _wandb_project_runs(source: str) -> list[Run]:
    """The runs of an online wandb project `wandb:ENTITY/PROJECT` (config and full history)."""
    import wandb

    try:
        runs = []
        for r in wandb.Api(timeout=30).runs(source.removeprefix("wandb:")):
            history: dict[str, dict[int, float]] = {}
            for row in r.scan_history():
                _add_row(history, row)
            runs.append(Run(f"{source}/{r.id}", {"run_group": r.group, **dict(r.config)}, history))
    except Exception as e:  # wandb raises its own types for no key, no network, no project
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        fix = "log in (`wandb login` or WANDB_API_KEY) with network access, or pass local run directories"
        raise ValueError(f"cannot read {source} ({reason.rstrip('.')}); {fix}") from None
    return runs


def find_runs(source: str) -> list[Run]:
    """All runs in a source: a directory searched recursively for training runs (`.hydra/config.yaml`)
    and evaluations (`evaluation.json`), or `wandb:E/P`."""
    if source.startswith("wandb:"):
        return _wandb_project_runs(source)
    root = Path(source)
    if not root.is_dir():
        raise ValueError(f"{source}: no such directory (pass run or sweep directories, or wandb:E/P)")
    run_dirs = {c.parent.parent for c in root.glob("**/.hydra/config.yaml")} | {
        e.parent for e in root.glob("**/evaluation.json")
    }
    runs = []
    for run_dir in sorted(run_dirs):
        evaluation = run_dir / "evaluation.json"
        if evaluation.exists():  # evaluate.py's output: its scores as eval/*, grouped as the checkpoint's run
            result = json.loads(evaluation.read_text())
            history = {f"eval/{k}": {result["step"] or 0: v} for k, v in result["metrics"].items()}
            per_frame = {f"eval/{k}": v for k, v in result.get("per_frame", {}).items()}
            runs.append(Run(str(run_dir), result.get("config") or {}, history, per_frame))
        else:
            config = run_dir / ".hydra" / "config.yaml"
            runs.append(Run(str(run_dir), yaml.safe_load(config.read_text()) or {}, read_history(run_dir)))
    return runs


def _stats(values: list[float]) -> dict:
    """Mean, sample std (0 for a single value) and count."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "n": len(values)}


def group_runs(runs: list[Run], by: str) -> dict[str, list[Run]]:
    """Runs by the string value of config key `by`, groups in name order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(str(config_value(run.config, by)), []).append(run)
    return dict(sorted(groups.items()))


def summarise(runs: list[Run], by: str) -> dict:
    """Per group: its runs, seeds, mean/std/n over runs of each scored metric's final logged value and
    mean per-frame curves; then the ranking of the groups on each ranking metric, best first."""
    summary = {"by": by, "groups": {}}
    for name, members in group_runs(runs, by).items():
        finals: dict[str, list[float]] = {}
        curves: dict[str, list[list[float]]] = {}
        for run in members:
            for key, series in run.history.items():
                if key.startswith(SCORED):
                    finals.setdefault(key, []).append(series[max(series)])
            for key, curve in run.per_frame.items():
                curves.setdefault(key, []).append(curve)
        summary["groups"][name] = {
            "n": len(members),
            "seeds": sorted(
                (config_value(r.config, "seed") for r in members),
                key=lambda seed: (type(seed).__name__, seed),
            ),
            "runs": [r.name for r in members],
            "metrics": {key: _stats(v) for key, v in sorted(finals.items())},
            "per_frame": {
                key: np.mean(v, axis=0).tolist()
                for key, v in sorted(curves.items())
                if len({len(c) for c in v}) == 1
            },
        }
    summary["ranking"] = rank(summary["groups"])
    return summary


def rank(groups: dict) -> dict[str, list[list]]:
    """Each ranking metric: [[group, mean], ...] best first, the baselines among them (copy last raw
    and through the VAE, the VAE's reconstruction: the mean over every run that scored them)."""
    ranking = {}
    for metric in sorted({m for g in groups.values() for m in g["metrics"] if ranks(m)}):
        rows = [[name, g["metrics"][metric]["mean"]] for name, g in groups.items() if metric in g["metrics"]]
        for suffix, title in BASELINE_ROWS:
            values = [
                g["metrics"][metric + suffix]["mean"]
                for g in groups.values()
                if metric + suffix in g["metrics"]
            ]
            if values:
                rows.append([title, float(np.mean(values))])
        ranking[metric] = sorted(rows, key=lambda row: -row[1] if better(metric) == "higher" else row[1])
    return ranking


def plot(runs: list[Run], by: str, metric: str, out: Path) -> Path:
    """One PNG of a metric against step: per group the mean over its runs with a min-max band, and
    for a metric with a copy-last twin the group's baseline mean dashed in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (group, members) in enumerate(group_runs(runs, by).items()):
        for key, style in ((metric, "-"), (metric + BASELINE, "--")):
            series = [r.history[key] for r in members if key in r.history]
            steps = sorted({s for one in series for s in one})
            if not steps:
                continue
            values = [[one[s] for one in series if s in one] for s in steps]
            mean = [float(np.mean(v)) for v in values]
            label = group if style == "-" else f"{group} (copy last)"
            ax.plot(steps, mean, style, color=f"C{i}", label=label, marker="o" if len(steps) < 20 else None)
            if style == "-" and len(series) > 1:
                low, high = [min(v) for v in values], [max(v) for v in values]
                ax.fill_between(steps, low, high, color=f"C{i}", alpha=0.2)
    ax.set(xlabel="step", ylabel=metric, title=f"{metric} ({better(metric)} is better; band: min-max)")
    return _save(fig, ax, out / (metric.replace("/", "_") + ".png"))


def plot_horizon(summary: dict, metric: str, out: Path) -> Path:
    """One PNG of a ranking metric against the future frame index: per group its mean curve, and the
    baselines (copy last raw, the VAE's reconstruction) dashed and dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (group, g) in enumerate(summary["groups"].items()):
        for suffix, style, label in (
            ("", "-", group),
            (BASELINE, "--", f"{group} (copy last)"),
            ("_vae_recon", ":", f"{group} (VAE ceiling)"),
        ):
            curve = g["per_frame"].get(metric + suffix)
            if curve:
                ax.plot(range(1, len(curve) + 1), curve, style, color=f"C{i}", label=label)
    ax.set(
        xlabel="future frame", ylabel=metric, title=f"{metric} per future frame ({better(metric)} is better)"
    )
    return _save(fig, ax, out / ("horizon_" + metric.replace("/", "_") + ".png"))


def _save(fig, ax, path: Path) -> Path:
    import matplotlib.pyplot as plt

    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cell(stats: dict | None) -> str:
    return "—" if stats is None else f"{stats['mean']:.4g} ± {stats['std']:.2g} (n={stats['n']})"


def _html_row(tag: str, cells: list[str]) -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *rows]]


def write_report(summary: dict, plots: list[Path], sources: list[str], out: Path) -> list[Path]:
    """report.md (linking the PNGs), report.html (PNGs embedded as base64) and summary.json."""
    groups = summary["groups"].values()
    scored = sorted({m for g in groups for m in g["metrics"] if ranks(m)})
    twinned = {m for m in scored if any(m + BASELINE in g["metrics"] for g in groups)}
    gapped = {m for m in scored if any(m + GAP in g["metrics"] for g in groups)}
    diagnostics = sorted({m for g in groups for m in g["metrics"] if DIAGNOSTIC in m or SAMPLER in m})
    short = lambda m: m.removeprefix("val/")  # noqa: E731  (eval/ keys keep theirs: both can be present)
    header = ["group", "runs", "seeds"]
    for m in scored:
        header += (
            [short(m)]
            + [f"{short(m)} (copy last)"] * (m in twinned)
            + [f"{short(m)} (instruction gap)"] * (m in gapped)
        )
    rows = []
    for name, g in summary["groups"].items():
        row = [name, str(g["n"]), ", ".join(map(str, g["seeds"]))]
        for m in scored:
            row.append(_cell(g["metrics"].get(m)))
            if m in twinned:
                base = g["metrics"].get(m + BASELINE)
                row.append("—" if base is None else f"{base['mean']:.4g}")
            if m in gapped:
                row.append(_cell(g["metrics"].get(m + GAP)))
        rows.append(row)
    n = sum(g["n"] for g in groups)
    intro = (
        f"{n} run{'s' * (n != 1)} from {', '.join(sources)}, grouped by "
        f"`{summary['by']}`. Cells: final logged value, mean ± std over runs (n runs); copy last: the "
        f"copy-last-frame baseline's mean; instruction gap: the score with the true instruction minus the "
        f"score with another clip's, signed so that positive means the instruction helps (about zero: "
        f"the instruction is ignored)."
    )
    skipped = [f"Skipped (no metrics): {', '.join(summary['skipped'])}."] if summary["skipped"] else []
    skipped += [f"Failed: {name} ({error})." for name, error in summary.get("failed", {}).items()]
    direction = "Better: " + ", ".join(f"{short(m)} {better(m)}" for m in scored) + "."
    ranked = (
        f"Ranked on scores of sampled futures only ({', '.join(short(m) for m in summary['ranking'])}); "
        f"diagnostics ({DIAGNOSTIC}*: each option's own losses, which mean different things per option), "
        f"baselines and gaps are not ranked."
    )
    ranking = [
        f"- {short(m)} ({better(m)} is better): " + " > ".join(f"{name} {value:.4g}" for name, value in order)
        for m, order in summary["ranking"].items()
    ]
    diag_rows = [
        [name] + [_cell(g["metrics"].get(m)) for m in diagnostics] for name, g in summary["groups"].items()
    ]
    diag_md = (
        [
            "",
            "## Sampler budget and diagnostics (not ranked)",
            "",
            *_table(["group", *map(short, diagnostics)], diag_rows),
        ]
        if diagnostics
        else []
    )
    md = [
        "# Foresight comparison",
        "",
        intro,
        "",
        *(line + "\n" for line in skipped),
        *_table(header, rows),
        "",
        direction,
        "",
        "## Ranking",
        "",
        ranked,
        "",
        *ranking,
        *diag_md,
        "",
        "## Plots",
        "",
        *(f"![{p.stem}]({p.name})" for p in plots),
    ]
    (out / "report.md").write_text("\n".join(md) + "\n")
    images = [
        f'<img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in plots
    ]
    diag_html = (
        [
            "<h2>Sampler budget and diagnostics (not ranked)</h2>",
            "<table>",
            _html_row("th", ["group", *map(short, diagnostics)]),
            *(_html_row("td", r) for r in diag_rows),
            "</table>",
        ]
        if diagnostics
        else []
    )
    page = [
        "<!doctype html><meta charset='utf-8'><title>Foresight comparison</title>",
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px}"
        "table{border-collapse:collapse}img{max-width:100%}</style>",
        "<h1>Foresight comparison</h1>",
        *(f"<p>{html.escape(p)}</p>" for p in [intro, *skipped]),
        "<table>",
        _html_row("th", header),
        *(_html_row("td", r) for r in rows),
        "</table>",
        f"<p>{html.escape(direction)}</p>",
        "<h2>Ranking</h2>",
        f"<p>{html.escape(ranked)}</p>",
        "<ul>",
        *(f"<li>{html.escape(line[2:])}</li>" for line in ranking),
        "</ul>",
        *diag_html,
        "<h2>Plots</h2>",
        *images,
    ]
    (out / "report.html").write_text("\n".join(page) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return [out / "report.md", out / "report.html", out / "summary.json", *plots]


def compare(sources: list[str], out: str | Path, by: str = "run_group") -> dict:
    """Read the runs of every source, write the report into `out`; returns the summary (with the
    skipped runs' names and the written files)."""
    out = Path(out)
    runs, skipped = [], []
    for source in sources:
        for run in find_runs(source):
            (runs if run.history else skipped).append(run)
    failed = {}  # sweep trials that failed: train.py left failed.json with the error
    for run in skipped:
        record = Path(run.name) / "failed.json"
        if record.exists():
            error = json.loads(record.read_text())
            failed[run.name] = f"{error['error']}: {error['message']}".splitlines()[0]
            print(f"warning: {run.name} failed ({failed[run.name]})", file=sys.stderr)
        else:
            print(f"warning: skipping {run.name}: no metrics (no metrics.csv, no wandb run)", file=sys.stderr)
    if not runs:
        raise ValueError(f"no runs with metrics in {', '.join(sources)} ({len(skipped)} without metrics)")
    summary = {
        **summarise(runs, by),
        "skipped": [r.name for r in skipped if r.name not in failed],
        "failed": failed,
    }
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in runs for k in r.history})
    plots = [
        plot(runs, by, k, out)
        for k in keys
        if k == "train/loss" or (k.startswith("val/") and (ranks(k) or k.endswith(GAP) or DIAGNOSTIC in k))
    ]
    horizons = sorted({k for g in summary["groups"].values() for k in g["per_frame"] if ranks(k)})
    plots += [plot_horizon(summary, k, out) for k in horizons]
    summary["files"] = [str(p) for p in write_report(summary, plots, sources, out)]
    return summary
