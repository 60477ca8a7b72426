"""Trainable-only checkpoints: safe format, self-describing, refused when they do not fit."""

import pytest
import torch
from torch import nn

from foresight.training.weights import load_trainable, read_meta, save_trainable


class Toy(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.frozen = nn.Linear(3, 3).requires_grad_(False)
        self.adapter = nn.Linear(3, width)

    def trainable_state_dict(self):
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}


def test_roundtrip_holds_only_trainable_weights(tmp_path):
    a, b = Toy(), Toy()
    path = save_trainable(a, tmp_path / "ck" / "last.safetensors", {"option": "B", "config": {"x": 1}})
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file was renamed away
    frozen_before = b.frozen.weight.clone()
    meta = load_trainable(b, path)
    assert meta == {"option": "B", "config": {"x": 1}} == read_meta(path)
    assert torch.equal(a.adapter.weight, b.adapter.weight)
    assert torch.equal(b.frozen.weight, frozen_before)  # frozen weights are not in the file


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    path = save_trainable(Toy(), tmp_path / "a.safetensors", {})
    other = Toy()
    other.extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="does not fit this model"):
        load_trainable(other, path)


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a Foresight checkpoint"):
        read_meta(tmp_path / "x.safetensors")
