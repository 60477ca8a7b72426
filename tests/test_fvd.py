"""FVD: the Fréchet distance, and I3D loaded from a file in pytorch-i3d's layout."""

import pytest
import torch

from foresight.eval.fvd import I3D, frechet_distance, load_i3d

# pytorch-i3d's InceptionI3d(400) as published (pytorch_i3d.py), written out independently of
# foresight/eval/fvd.py: every unit with parameters as (name, in channels, out channels, cubic kernel).
STEM = [("Conv3d_1a_7x7", 3, 64, 7), ("Conv3d_2b_1x1", 64, 64, 1), ("Conv3d_2c_3x3", 64, 192, 3)]
MIXED = [
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
]
# Conv weights (no bias) plus BatchNorm's weight and bias per unit, plus the biased 1024 -> 400 logits:
# 12,697,264 parameters (the paper's "12M" for one I3D stream).
PUBLISHED_PARAMETERS = 12_697_264


def published_units():
    yield from STEM
    for name, cin, (b0, b1a, b1b, b2a, b2b, b3b) in MIXED:
        yield from [
            (f"{name}.b0", cin, b0, 1),
            (f"{name}.b1a", cin, b1a, 1),
            (f"{name}.b1b", b1a, b1b, 3),
            (f"{name}.b2a", cin, b2a, 1),
            (f"{name}.b2b", b2a, b2b, 3),
            (f"{name}.b3b", cin, b3b, 1),
        ]


def published_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the keys and shapes of models/rgb_imagenet.pt (He-scaled, so activations stay
    finite)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, cin, cout, k in published_units():
        state[f"{name}.conv3d.weight"] = (
            torch.randn(cout, cin, k, k, k, generator=g) * (2 / (cin * k**3)) ** 0.5
        )
        state[f"{name}.bn.weight"] = 1 + 0.1 * torch.randn(cout, generator=g)
        state[f"{name}.bn.bias"] = 0.1 * torch.randn(cout, generator=g)
        state[f"{name}.bn.running_mean"] = 0.1 * torch.randn(cout, generator=g)
        state[f"{name}.bn.running_var"] = 0.5 + torch.rand(cout, generator=g)
    state["logits.conv3d.weight"] = torch.randn(400, 1024, 1, 1, 1, generator=g) / 1024**0.5
    state["logits.conv3d.bias"] = 0.1 * torch.randn(400, generator=g)
    return state


def i3d_weights(directory):
    torch.save(published_state(), directory / "rgb_imagenet.pt")
    return directory / "rgb_imagenet.pt"


def test_frechet_distance_is_the_closed_form():
    torch.manual_seed(0)
    z = torch.randn(50, 6, dtype=torch.float64)
    z -= z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # sample mean 0, sample covariance I
    mu_a, mu_b, s_a, s_b = (torch.randn(6, dtype=torch.float64) for _ in range(4))
    s_a, s_b = s_a.abs() + 0.5, s_b.abs() + 0.5
    a, b = mu_a + z * s_a, mu_b + z * s_b  # exactly N(mu, diag(s^2)) as samples
    # diagonal Gaussians: ||mu_a - mu_b||^2 + sum (s_a - s_b)^2
    closed = ((mu_a - mu_b).square().sum() + (s_a - s_b).square().sum()).item()
    assert frechet_distance(a, b) == pytest.approx(closed, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(closed, rel=1e-9)
    assert frechet_distance(a, a.clone()) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_frechet_distance_matches_scipy_on_correlated_features():
    linalg = pytest.importorskip("scipy.linalg")
    torch.manual_seed(1)
    a = torch.randn(30, 8, dtype=torch.float64) @ torch.randn(8, 8, dtype=torch.float64)
    b = torch.randn(20, 8, dtype=torch.float64) @ torch.randn(8, 8, dtype=torch.float64) + 1
    cov_a, cov_b = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    cross = linalg.sqrtm(cov_a @ cov_b).real.trace()
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + cov_a.trace() + cov_b.trace() - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)


def test_i3d_has_the_published_layout_and_size():
    model = I3D()
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS
    expected = {k: v.shape for k, v in published_state().items()}
    ours = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours == expected
    assert sum(v.numel() for k, v in published_state().items() if "running" not in k) == PUBLISHED_PARAMETERS


def test_i3d_loads_published_weights_and_refuses_others(tmp_path):
    from foresight.data.sample_world import render_clip

    i3d = load_i3d(i3d_weights(tmp_path))
    clips = torch.stack(
        [torch.from_numpy(render_clip(seed=s, width=64, height=48).frames[:5]) for s in (1, 2)]
    )
    features = i3d(clips)  # (2, 5, 48, 64, 3): shorter than I3D's 9 frames, padded with the last
    assert features.shape == (2, 400) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])
    held = torch.cat([clips, clips[:, -1:].expand(2, 4, 48, 64, 3)], dim=1)  # (2, 9, 48, 64, 3)
    assert torch.allclose(i3d(held), features)
    state = published_state()
    del state["Mixed_4c.b2b.bn.running_var"]
    torch.save(state, tmp_path / "truncated.pt")
    with pytest.raises(
        ValueError, match=r"truncated\.pt: not pytorch-i3d's .*: missing key Mixed_4c\.b2b\.bn\.running_var$"
    ) as error:
        load_i3d(tmp_path / "truncated.pt")
    assert "\n" not in str(error.value)  # one line
    torch.save({f"module.{k}": v for k, v in published_state().items()}, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match="renamed.pt: .*: missing key Conv3d_1a_7x7.conv3d.weight$"):
        load_i3d(tmp_path / "renamed.pt")
    state = published_state() | {"logits.conv3d.bias": torch.zeros(157)}  # Charades' 157 classes
    torch.save(state, tmp_path / "charades.pt")
    with pytest.raises(ValueError, match=r"logits.conv3d.bias has shape \(157,\), expected \(400,\)"):
        load_i3d(tmp_path / "charades.pt")
    from safetensors.torch import save_file

    save_file(published_state(), str(tmp_path / "i3d.safetensors"))
    assert torch.allclose(load_i3d(tmp_path / "i3d.safetensors")(clips), features)
