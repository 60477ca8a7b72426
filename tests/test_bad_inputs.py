"""Bad inputs at the entry points: one table of cases, each ending in ONE line naming the key or file
(exit status 2, no traceback) or in a counted/renamed outcome, and never in a call the project does
not own. Hostile checkpoints carry payloads that empty or copy a file; after every case that file
is checked untouched. (Data-side cases -- video decoding, shards, streams -- are tested with the data code.)

Cases run in-process through the entry points' own code (`one_line_errors` around what each script
runs); the `SCRIPT` cases run the real scripts as a user would, to show they are wired the same.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from foresight.config import compose
from foresight.console import one_line_errors, quiet
from tests.helpers import run_script

pytestmark = pytest.mark.slow  # end to end: trains through the real entry points

SECRET = "precious user data\n"


@dataclass
class Error:
    """Exit status 2 and exactly one line on stderr, matching `pattern`."""

    pattern: str


@dataclass
class Done:
    """Exit status 0, stdout matching `pattern` (a counted skip or a renamed output), and exactly
    `outputs` (file names) in out_dir."""

    pattern: str
    outputs: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, twin_dir) -> Path:
    from foresight.training.train import train

    out = tmp_path_factory.mktemp("run")
    train(
        compose(
            [
                f"paths.cache_dir={twin_dir}",
                f"paths.output_dir={out}",
                "logger=none",
                "+experiment=optionA",
                "trainer.max_steps=2",
                "trainer.val_check_interval=2",
                "callbacks.training_state.every_n_steps=2",
                "callbacks.sample_videos.every_n_steps=0",
            ]
        )
    )
    return out


class Files:
    """The inputs a case names as {placeholders}, made on first use in the case's tmp_path."""

    def __init__(self, tmp: Path, run: Path) -> None:
        self.tmp, self.run = tmp, run
        self.victim, self.stolen = tmp / "victim.txt", tmp / "stolen.txt"
        self.victim.write_text(SECRET)

    def __getitem__(self, name: str) -> str:
        value = getattr(self, name)
        return str(value() if callable(value) else value)

    # payloads: what a hostile config would make Hydra call
    def open_w(self) -> dict:
        return {"_target_": "builtins.open", "file": str(self.victim), "mode": "w"}

    def copy(self) -> dict:
        return {"_target_": "shutil.copyfile", "src": str(self.victim), "dst": str(self.stolen)}

    # checkpoints
    def weights_meta(self) -> dict:
        with safe_open(str(self.run / "checkpoints" / "last.safetensors"), framework="pt") as f:
            return json.loads(f.metadata()["foresight"])

    def hostile_weights(self, edit, name: str) -> Path:
        """The run's real last.safetensors with its config edited by `edit(config)`."""
        meta = self.weights_meta()
        edit(meta["config"])
        path = self.tmp / f"{name}.safetensors"
        with safe_open(str(self.run / "checkpoints" / "last.safetensors"), framework="pt") as f:
            save_file(
                {k: f.get_tensor(k) for k in f.keys()}, str(path), metadata={"foresight": json.dumps(meta)}
            )
        return path

    def open_as_model(self):
        return self.hostile_weights(lambda c: c.update(model=self.open_w()), "open_as_model")

    def copy_as_optimizer(self):
        return self.hostile_weights(lambda c: c["module"].update(optimizer=self.copy()), "copy_as_optimizer")

    def copy_deep_in_adapter(self):
        return self.hostile_weights(
            lambda c: c["adapter"].update(extra={"hooks": [{"on_load": self.copy()}]}), "deep"
        )

    def open_partial(self):
        return self.hostile_weights(
            lambda c: c.update(option={**self.open_w(), "_partial_": True}), "partial"
        )

    def open_in_args(self):
        return self.hostile_weights(lambda c: c["model"].update(_args_=[self.open_w()]), "args")

    def open_by_interpolation(self):
        payload = "${oc.create:'{_target_: builtins.open, file: " + str(self.victim) + ", mode: w}'}"
        return self.hostile_weights(lambda c: c["model"].update(pretrained=payload), "interpolation")

    def own_writer_as_vlm(self):  # ours, but no config builds it: it writes files where it is told
        node = {
            "_target_": "foresight.eval.evaluate.write",
            "result": {},
            "out_dir": str(self.tmp / "elsewhere"),
        }
        return self.hostile_weights(lambda c: c.update(vlm=node), "own_writer")

    def target_not_a_string(self):
        return self.hostile_weights(
            lambda c: c["model"].update(_target_=["builtins", "open"]), "not_a_string"
        )

    def metadata_not_json(self):
        path = self.tmp / "not_json.safetensors"
        save_file({"w": torch.zeros(2)}, str(path), metadata={"foresight": "{config: "})
        return path

    def truncated_weights(self):
        data = (self.run / "checkpoints" / "last.safetensors").read_bytes()
        path = self.tmp / "last.safetensors"
        path.write_bytes(data[: len(data) // 2])
        return path

    def state(self) -> Path:
        return next((self.run / "checkpoints" / "state").glob("step*.safetensors"))

    def hostile_state(self, edit, name: str) -> Path:
        with safe_open(str(self.state()), framework="pt") as f:
            skeleton = json.loads(f.metadata()["foresight_state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        edit(skeleton["foresight"])
        path = self.tmp / "checkpoints" / "state" / f"{name}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"foresight_state": json.dumps(skeleton)})
        return path

    def state_with_open(self):
        return self.hostile_state(lambda s: s["config"].update(model=self.open_w()), "open")

    def state_with_path_run_id(self):
        return self.hostile_state(lambda s: s.update(wandb_run_id="../../../tmp/x"), "run_id")

    def truncated_state(self):
        data = self.state().read_bytes()
        path = self.tmp / "step000002.safetensors"
        path.write_bytes(data[: len(data) - 100])
        return path

    def weights_file(self):
        return self.run / "checkpoints" / "last.safetensors"

    def state_only_run(self):
        run = self.tmp / "killed_run"
        (run / "checkpoints" / "state").mkdir(parents=True)
        (run / "checkpoints" / "state" / "step000002.safetensors").write_bytes(self.state().read_bytes())
        return run

    # data
    def not_a_tar(self):
        path = self.tmp / "val-000000.tar"
        path.write_bytes(b"<html>403 Forbidden</html>" * 40)
        return path

    def short_clips(self):
        from foresight.data.sample_world import render_clip
        from foresight.data.video import encode_mp4

        return self.shard(
            "short", {f"clip{i}": render_clip(seed=i, num_frames=6) for i in range(3)}, encode_mp4
        )

    def hostile_keys(self):
        from foresight.data.sample_world import render_clip
        from foresight.data.video import encode_mp4

        keys = ["../../escaped", "/tmp/absolute", "a/b", "a_b", "..hidden/x"]
        return self.shard(
            "keys", {k: render_clip(seed=i, num_frames=24) for i, k in enumerate(keys)}, encode_mp4
        )

    def shard(self, name: str, clips: dict, encode_mp4) -> Path:
        path = self.tmp / f"{name}-000000.tar"
        with tarfile.open(path, "w") as tar:
            for key, clip in clips.items():
                for ext, data in (("mp4", encode_mp4(clip.frames, clip.fps)), ("txt", clip.caption.encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return path

    def missing(self):
        return self.tmp / "no" / "such.mp4"

    def out(self):
        return self.tmp / "out"


SCRIPT = {"train.py", "predict.py", "evaluate.py", "preprocess.py"}  # + "foresight": the command

# (id, entry point, arguments with {placeholders} from Files, expected)
CASES = [
    # 1 security: a checkpoint's config never makes us call what we do not own
    (
        "weights: builtins.open as the model",
        "predict",
        ["ckpt={open_as_model}", "input={missing}"],
        Error(r"open_as_model.safetensors: refusing config.model._target_='builtins.open'"),
    ),
    (
        "weights: shutil.copyfile as the optimizer",
        "evaluate",
        ["ckpt={copy_as_optimizer}"],
        Error(r"refusing config.module.optimizer._target_='shutil.copyfile'"),
    ),
    (
        "weights: a target deep in a nested list",
        "predict",
        ["ckpt={copy_deep_in_adapter}", "input={missing}"],
        Error(r"refusing config.adapter.extra.hooks\[0\].on_load._target_='shutil.copyfile'"),
    ),
    (
        "weights: _partial_ builtins.open",
        "predict",
        ["ckpt={open_partial}", "input={missing}"],
        Error(r"refusing config.option._target_='builtins.open'"),
    ),
    (
        "weights: builtins.open inside _args_",
        "evaluate",
        ["ckpt={open_in_args}"],
        Error(r"refusing config.model._args_\[0\]._target_='builtins.open'"),
    ),
    (
        "weights: a node built by oc.create at resolve time",
        "predict",
        ["ckpt={open_by_interpolation}", "input={missing}"],
        Error(r"refusing config.model.pretrained=.*oc.create.*an interpolation"),
    ),
    (
        "weights: our own file writer",
        "predict",
        ["ckpt={own_writer_as_vlm}", "input={missing}"],
        Error(r"refusing config.vlm._target_='foresight.eval.evaluate.write'"),
    ),
    (
        "weights: a _target_ that is no string",
        "evaluate",
        ["ckpt={target_not_a_string}"],
        Error(r"refusing config.model._target_=\['builtins', 'open'\]"),
    ),
    (
        "weights: metadata that is not JSON",
        "predict",
        ["ckpt={metadata_not_json}", "input={missing}"],
        Error(r"not_json.safetensors: its 'foresight' metadata is not valid JSON"),
    ),
    (
        "ckpt-info on a hostile file",
        "foresight",
        ["ckpt-info", "{open_as_model}"],
        Error(r"refusing config.model._target_='builtins.open'"),
    ),
    (
        "state: builtins.open in a training state",
        "train",
        ["ckpt_path={state_with_open}"],
        Error(r"open.safetensors: refusing config.model._target_='builtins.open'"),
    ),
    (
        "state: a wandb run id that is a path",
        "train",
        ["ckpt_path={state_with_path_run_id}"],
        Error(r"run_id.safetensors: refusing wandb_run_id='../../../tmp/x'"),
    ),
    # 2 path traversal: names from data never leave out_dir (renamed, counted)
    (
        "shard keys ../../x, /abs, a/b",
        "predict",
        ["ckpt={run}", "input={hostile_keys}", "out_dir={out}"],
        Done(
            r"wrote 5 prediction\(s\).*; 5 named after their keys made safe",
            tuple(
                f"{n}{s}.mp4"
                for n in ("_.._escaped", "_tmp_absolute", "a_b", "a_b_1", "hidden_x")
                for s in ("", "_side_by_side")
            ),
        ),
    ),
    # 9 checkpoints and inputs that are not what they should be
    (
        "weights: truncated",
        "predict",
        ["ckpt={truncated_weights}", "input={missing}"],
        Error(r"last.safetensors is not a readable safetensors file \(.*\): truncated"),
    ),
    (
        "weights: a training-state file given to predict",
        "predict",
        ["ckpt={state}", "input={missing}"],
        Error(
            r"step000002.safetensors is a training-state file, which continues a run "
            r"\(python train.py ckpt_path="
        ),
    ),
    (
        "weights: a run killed before its end",
        "predict",
        ["ckpt={state_only_run}", "input={missing}"],
        Error(
            r"killed_run: no checkpoints/last.safetensors inside "
            r"\(it holds training state only.*continue it with"
        ),
    ),
    (
        "weights: no such path",
        "evaluate",
        ["ckpt={missing}"],
        Error(r"such.mp4 does not exist; pass a run directory"),
    ),
    (
        "ckpt-info: a real run directory",
        "foresight",
        ["ckpt-info", "{run}"],
        Done(r"checkpoints/last.safetensors\n  option A  step 2  \d+ tensors"),
    ),
    (
        "ckpt-info: a training-state file",
        "foresight",
        ["ckpt-info", "{state}"],
        Done(r"training state at step 2 of run group optionA; continue it: python train.py ckpt_path="),
    ),
    (
        "ckpt-info: truncated",
        "foresight",
        ["ckpt-info", "{truncated_weights}"],
        Error(r"last.safetensors is not a readable safetensors file"),
    ),
    (
        "state: truncated",
        "train",
        ["ckpt_path={truncated_state}"],
        Error(r"step000002.safetensors is not a readable safetensors file"),
    ),
    (
        "state: a weights file given to resume",
        "train",
        ["ckpt_path={weights_file}"],
        Error(r"is not a training-state checkpoint.*last.safetensors holds weights only"),
    ),
    (
        "predict: input file missing",
        "predict",
        ["ckpt={run}", "input={missing}"],
        Error(r"input=.*such.mp4 does not exist; pass a video, an image"),
    ),
    ("predict: no ckpt", "predict", ["input={missing}"], Error(r"ckpt is required: pass ckpt=")),
    (
        "predict: batch_size 0",
        "predict",
        ["ckpt={run}", "input={missing}", "batch_size=0"],
        Error(r"batch_size=0: must be a whole number of clips"),
    ),
    (
        "predict: no writer thread",
        "predict",
        ["ckpt={run}", "input={missing}", "writers=0"],
        Error(r"writers=0: must be a number of threads, 1 or more"),
    ),
    (
        "predict: side_by_side not a switch",
        "predict",
        ["ckpt={run}", "input={missing}", "side_by_side=maybe"],
        Error(r"side_by_side='maybe': must be true or false"),
    ),
    (
        "predict: not an x264 preset",
        "predict",
        ["ckpt={run}", "input={missing}", "preset=quick"],
        Error(r"preset='quick': must be one of x264's presets: ultrafast, superfast"),
    ),
    (
        "evaluate: limit 0",
        "evaluate",
        ["ckpt={run}", "limit=0"],
        Error(r"limit=0: must be a whole number of clips"),
    ),
    (
        "evaluate: shards that match nothing",
        "evaluate",
        ["ckpt={run}", "shards={missing}"],
        Error(r"shards=.*such.mp4'.*(matched no files|does not exist)"),
    ),
    # 9 config values, refused before any model loads
    (
        "train: negative lr",
        "train",
        ["module.optimizer.lr=-1e-3"],
        Error(r"module.optimizer.lr=-0.001: must be a learning rate above 0"),
    ),
    ("train: zero lr", "train", ["module.optimizer.lr=0"], Error(r"module.optimizer.lr=0: must be")),
    (
        "train: lr not a number",
        "train",
        ["module.optimizer.lr=fast"],
        Error(r"module.optimizer.lr='fast': must be"),
    ),
    (
        "train: betas out of range",
        "train",
        ["module.optimizer.betas=[0.9,1.5]"],
        Error(r"module.optimizer.betas=\[0.9, 1.5\]: must be two numbers in \[0, 1\)"),
    ),
    (
        "train: zero steps",
        "train",
        ["trainer.max_steps=0"],
        Error(r"trainer.max_steps=0: must be a whole number"),
    ),
    ("train: endless steps", "train", ["trainer.max_steps=-1"], Error(r"trainer.max_steps=-1: must be")),
    (
        "train: zero validation interval",
        "train",
        ["trainer.val_check_interval=0"],
        Error(r"trainer.val_check_interval=0: must be"),
    ),
    (
        "train: batch size 0",
        "train",
        ["data.batch_size=0"],
        Error(r"data.batch_size=0: must be a whole number of clips"),
    ),
    (
        "train: negative val batch size",
        "train",
        ["data.val_batch_size=-2"],
        Error(r"data.val_batch_size=-2: must be"),
    ),
    (
        "train: empty shard list",
        "train",
        ["data.train_shards="],
        Error(r"data.train_shards='': must be a shard file"),
    ),
    (
        "train: shards that match nothing",
        "train",
        ["data.val_shards={missing}"],
        Error(r"data.val_shards=.*such.mp4'.*(matched no files|does not exist)"),
    ),
    (
        "train: a validation shard that is not a tar",
        "train",
        ["data.val_shards={not_a_tar}"],
        Error(r"data.val_shards=.*val-000000.tar.* (cannot be read|holds no usable clip)"),
    ),
    (
        "train: validation clips all too short",
        "train",
        ["data.val_shards={short_clips}"],
        Error(r"data.val_shards=.*short-000000.tar' holds no usable clip \(.*too_short 3"),
    ),
    (
        "train: no state every 0 steps",
        "train",
        ["callbacks.training_state.every_n_steps=0"],
        Error(r"callbacks.training_state.every_n_steps=0: must be"),
    ),
    (
        "train: resume=yes",
        "train",
        ["resume=yes"],
        Error(r"resume='yes': use resume=auto, or ckpt_path=PATH"),
    ),
    (
        "train: a frame count the VAE cannot take",
        "train",
        ["data.future_frames=10"],
        Error(r"data.future_frames=10 .*9 or 17"),
    ),
    # the real scripts, as a user runs them
    (
        "train.py: negative lr",
        "train.py",
        ["module.optimizer.lr=-1"],
        Error(r"module.optimizer.lr=-1: must be"),
    ),
    (
        "predict.py: builtins.open as the model",
        "predict.py",
        ["ckpt={open_as_model}", "input={missing}"],
        Error(r"refusing config.model._target_='builtins.open'"),
    ),
    (
        "preprocess.py: batch size 0",
        "preprocess.py",
        ["preprocess.batch_size=0"],
        Error(r"preprocess.batch_size=0: must be a whole number of clips"),
    ),
]


def in_process(entry: str, args: list[str], files: Files, twin_dir: Path, capsys) -> tuple[int, str, str]:
    """What the entry point's script runs, inside the same one_line_errors, on a composed config."""
    if entry == "foresight":
        from foresight.cli import main as cli

        run = lambda: cli(args)  # noqa: E731
    else:
        from foresight.eval.evaluate import main as evaluate
        from foresight.predict import main as predict
        from foresight.training.train import train_or_record_failure

        common = [f"paths.cache_dir={twin_dir}", f"paths.log_dir={files.tmp / 'logs'}"]
        if entry == "train":
            common += ["logger=none", f"paths.output_dir={files.tmp / 'train_out'}"]
        else:
            common += (
                [f"out_dir={files.tmp / 'out'}"] if not any(a.startswith("out_dir=") for a in args) else []
            )
        cfg = compose([*common, *args], config_name=entry)
        work = {"train": train_or_record_failure, "predict": predict, "evaluate": evaluate}[entry]
        run = lambda: work(cfg)  # noqa: E731
    code = 0
    quiet()  # as the scripts do
    try:
        with one_line_errors(entry):
            run()
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def as_script(entry: str, args: list[str], files: Files, twin_dir: Path) -> tuple[int, str, str]:
    extra = [f"paths.cache_dir={twin_dir}", f"paths.log_dir={files.tmp / 'logs'}"]
    extra += ["logger=none"] if entry == "train.py" else []
    done = run_script(entry, *extra, *args, timeout=300)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("case,entry,args,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, entry, args, expected, run_dir, tmp_path, twin_dir, capsys):
    files, started = Files(tmp_path, run_dir), time.time()
    args = [a.format_map(files) for a in args]
    if entry in SCRIPT:
        code, out, err = as_script(entry, args, files, twin_dir)
    else:
        code, out, err = in_process(entry, args, files, twin_dir, capsys)
    if isinstance(expected, Error):
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, f"exit {code}, stderr:\n{err[-3000:]}"
        assert re.search(expected.pattern, lines[0]), lines[0]
        assert "Traceback" not in err
    else:
        assert code == 0, err[-3000:]
        assert re.search(expected.pattern, out), out
        if expected.outputs:
            assert sorted(p.name for p in files.out().iterdir()) == sorted(expected.outputs)
        assert not (tmp_path.parent / "escaped.mp4").exists()  # where ../../escaped would have gone
        assert not Path("/tmp/absolute.mp4").exists() or Path("/tmp/absolute.mp4").stat().st_mtime < started
    # no payload ever ran: the victim is intact, nothing was copied or written elsewhere
    assert files.victim.read_text() == SECRET
    assert not files.stolen.exists() and not (tmp_path / "elsewhere").exists()
