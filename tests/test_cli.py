"""The `foresight` command."""

import pytest
from torch import nn

from foresight.cli import main
from foresight.training.weights import save_trainable


class Adapter(nn.Module):
    def __init__(self):
        super().__init__()
        self.adapter = nn.Linear(3, 4)

    def trainable_state_dict(self):
        return dict(self.named_parameters())


def test_ckpt_info_describes_the_newest_checkpoint_of_a_run(tmp_path, capsys):
    meta = {
        "option": "B",
        "step": 7,
        "config": {"model": {"_target_": "foresight.models.ltx.LTXVideo", "pretrained": "org/ltx"}},
    }
    save_trainable(Adapter(), tmp_path / "run" / "checkpoints" / "last.safetensors", meta)
    assert main(["ckpt-info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert (
        "option B  step 7  2 tensors, 16 parameters" in out and "foresight.models.ltx.LTXVideo org/ltx" in out
    )


def test_ckpt_info_on_an_empty_dir_says_what_to_pass(tmp_path, capsys):
    with pytest.raises(SystemExit) as code:
        main(["ckpt-info", str(tmp_path)])
    assert code.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no checkpoints/last.safetensors inside" in line


def test_sample_data_writes_shards(tmp_path):
    assert main(["data", "sample", "--out", str(tmp_path), "--train", "2", "--val", "1"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["train-000000.tar", "val-000000.tar"]


def test_make_shards_and_inspect(tmp_path, capsys):
    from foresight.data.loader import VideoDataModule
    from foresight.data.sample_world import render_clip
    from foresight.data.video import encode_mp4

    clips = tmp_path / "clips"
    clips.mkdir()
    for seed, name in ((1, "first.clip"), (2, "second")):
        clip = render_clip(seed=seed)
        (clips / f"{name}.mp4").write_bytes(encode_mp4(clip.frames, clip.fps))
        (clips / f"{name}.txt").write_text(clip.caption)
    (clips / "nocaption.mp4").write_bytes((clips / "second.mp4").read_bytes())
    (clips / "broken.mp4").write_bytes(b"\0" * 500)
    (clips / "broken.txt").write_text("a broken clip")
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        '{"path": "clips/second.mp4", "caption": "again", "source": "web"}\n'
        '{"path": "clips/absent.mp4", "caption": "gone"}\n'
    )
    out = tmp_path / "shards"
    assert main(["data", "make-shards", str(clips), str(manifest), "--out", str(out), "--maxcount", "2"]) == 0
    said = capsys.readouterr().out
    assert (
        "written 3" in said
        and "undecodable 1" in said
        and "no_caption 1" in said
        and "missing_file 1" in said
    )
    assert sorted(p.name for p in out.glob("*.tar")) == ["clips-000000.tar", "clips-000001.tar"]
    # the loader reads what was written, keys without dots and unique
    dm = VideoDataModule(
        str(out / "clips-{000000..000001}.tar"),
        str(out / "clips-{000000..000001}.tar"),
        context_frames=4,
        future_frames=9,
        val_batch_size=8,
    )
    (batch,) = list(dm.val_dataloader())
    assert batch["key"] == ["first_clip", "second", "second_1"]
    assert batch["caption"][2] == "again"
    assert main(["data", "inspect", str(out / "clips-{000000..000001}.tar")]) == 0
    report = capsys.readouterr().out
    assert "samples      3" in report and "96x72 x3" in report and "undecodable  0" in report
