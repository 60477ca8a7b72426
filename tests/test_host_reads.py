"""No option's training step or prediction makes the host wait for the device (foresight.bench.host_reads).

At full size both are host-bound: one read of a device value per step (an .item(), a boolean mask)
stops Python until the GPU has caught up, and the GPU then waits for Python (a blocking copy once cost
B's step 1.14-1.20x the bare step). These tests keep such reads out of the hot paths.
"""

import pytest
import torch

from foresight.bench.host_reads import HostReads, option_reads


def host_side(op: str, where: str) -> bool:
    """The sampler's flow times: a schedule on the CPU (foresight.flow.Schedule.times), cut at B's t*."""
    return op == "aten.index.Tensor" and where.startswith("foresight/flow.py:") and where.endswith("(times)")


@pytest.mark.parametrize("option", ["A", "B", "C", "D"])
def test_an_options_training_step_and_prediction_read_nothing_back_from_the_device(option, twin_dir):
    for part, reads in option_reads(option, str(twin_dir)).items():
        unexpected = {(op, where): n for (op, where), n in reads.items() if not host_side(op, where)}
        assert not unexpected, f"option {option}'s {part} reads back: {unexpected}"


def test_reads_of_device_values_are_found():
    mode = HostReads()
    x = torch.arange(4.0)
    with mode:
        x[x > 1].sum().item()  # a boolean mask, then a value read back
        bool(x.max() > 2)
        x.nonzero()
    ops = sorted(mode.reads.elements())
    assert [op for op, _ in ops] == [
        "aten._local_scalar_dense.default",
        "aten._local_scalar_dense.default",
        "aten.index.Tensor",
        "aten.nonzero.default",
    ]
    assert all(where == "outside foresight" for _, where in ops)  # this test is no code of ours
