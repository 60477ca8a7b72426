"""The `foresight` command."""

from torch import nn

from foresight.checkpoint import save_trainable
from foresight.cli import main


class Adapter(nn.Module):
    def __init__(self):
        super().__init__()
        self.adapter = nn.Linear(3, 4)

    def trainable_state_dict(self):
        return dict(self.named_parameters())


def test_ckpt_info_describes_the_newest_checkpoint_of_a_run(tmp_path, capsys):
    meta = {"option": "B", "step": 7, "config": {"model": {"_target_": "x.LTX", "pretrained": "org/ltx"}}}
    save_trainable(Adapter(), tmp_path / "run" / "checkpoints" / "last.safetensors", meta)
    assert main(["ckpt-info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "option B  step 7  2 tensors, 16 parameters" in out and "x.LTX org/ltx" in out


def test_ckpt_info_on_an_empty_dir_says_what_to_pass(tmp_path, capsys):
    assert main(["ckpt-info", str(tmp_path)]) == 1
    assert "no .safetensors checkpoint" in capsys.readouterr().err


def test_sample_data_writes_shards(tmp_path):
    assert main(["sample-data", "--out", str(tmp_path), "--train", "2", "--val", "1"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["train-000000.tar", "val-000000.tar"]
