"""The flow-matching core against an oracle velocity (the exact e - z0)."""

import pytest
import torch

from foresight import flow


def _data(b=3, n=24, c=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, c, generator=g), torch.randn(b, n, c, generator=g)


def test_mu_matches_ltx_trainer_endpoints():
    assert flow.shift_mu(1024) == pytest.approx(0.95)
    assert flow.shift_mu(4096) == pytest.approx(2.05)
    assert flow.shift_mu(2560) == pytest.approx(1.5)
    assert flow.shift_mu(6144) > 2.05  # keeps rising beyond 4096, as LTX's trainer does


def test_sample_t_is_shifted_logit_normal():
    g = torch.Generator().manual_seed(0)
    t = flow.sample_t(20000, 4096, generator=g)
    assert t.shape == (20000,) and (t > 0).all() and (t < 1).all()
    logit = torch.log(t / (1 - t))
    assert logit.mean().item() == pytest.approx(2.05, abs=0.03)
    assert logit.std().item() == pytest.approx(1.0, abs=0.03)


def test_interpolation_endpoints_and_velocity():
    z0, e = _data()
    assert torch.equal(flow.interpolate(z0, e, torch.zeros(3)), z0)
    assert torch.allclose(flow.interpolate(z0, e, torch.ones(3)), e)
    t = torch.rand(3)
    x = flow.interpolate(z0, e, t)
    # moving back along the velocity by t recovers the data
    assert torch.allclose(x - t[:, None, None] * flow.velocity(z0, e), z0, atol=1e-6)


@pytest.mark.parametrize("steps,mu", [(1, None), (8, None), (20, 1.5)])
def test_full_sampling_with_oracle_recovers_z0(steps, mu):
    z0, e = _data()
    out = flow.euler_sample(lambda x, t: e - z0, e.clone(), flow.schedule(steps, mu=mu))
    assert (out - z0).abs().max().item() < 1e-5


@pytest.mark.parametrize("t_star", [0.1, 0.4, 0.6, 0.9, 1.0])
@pytest.mark.parametrize("steps", [1, 4])
def test_partial_sampling_from_any_t_star_recovers_z0(t_star, steps):
    z0, e = _data()
    z0_hat = z0 + 0.3 * torch.randn_like(z0)  # an imperfect adapter estimate
    x_start = flow.partial_start(z0_hat, e, t_star)
    ts = flow.schedule(steps, t_start=t_star)
    assert ts[0].item() == pytest.approx(t_star) and ts[-1].item() == 0.0
    # the oracle is the constant velocity of the straight path x_{t*} -> z0
    _, v = flow.partial_path(x_start, z0, torch.full((3,), t_star), t_star)
    out = flow.euler_sample(lambda x, t: v, x_start, ts)
    assert (out - z0).abs().max().item() < 1e-5


def test_partial_path_is_ltx_objective_when_estimate_is_exact():
    z0, e = _data()
    t_star, t = 0.7, torch.tensor([0.1, 0.35, 0.7])
    x_start = flow.partial_start(z0, e, t_star)
    x_t, v = flow.partial_path(x_start, z0, t, t_star)
    assert torch.allclose(x_t, flow.interpolate(z0, e, t), atol=1e-6)
    assert torch.allclose(v, flow.velocity(z0, e), atol=1e-6)


def test_conditioning_tokens_bit_identical_and_at_t0():
    z0, e = _data()
    cond = torch.zeros(3, 24, dtype=torch.bool)
    cond[:, :6] = True
    cond[1, 10:12] = True  # per-sample masks may differ
    x = torch.where(cond[..., None], z0, e)
    seen = []

    def vel(x_t, t_tok):
        seen.append(t_tok.clone())
        return torch.randn_like(x_t) * 100  # a wild model must still not touch conditioning tokens

    out = flow.euler_sample(vel, x, flow.schedule(5), cond)
    assert torch.equal(out[cond], z0[cond])
    for t_tok in seen:
        assert (t_tok[cond] == 0).all() and (t_tok[~cond] > 0).all()


def test_token_timesteps_and_masked_loss():
    cond = torch.tensor([[True, False, False], [False, False, True]])
    t_tok = flow.token_timesteps(torch.tensor([0.3, 0.8]), cond, 3)
    assert torch.allclose(t_tok, torch.tensor([[0.0, 0.3, 0.3], [0.8, 0.8, 0.0]]))
    pred, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    target[cond] = 100.0  # errors on conditioning tokens are ignored
    assert flow.masked_mse(pred, target, ~cond).item() == pytest.approx(1.0)
    x_t, t_tok = flow.noisy_input(target, torch.zeros_like(target), torch.tensor([0.5, 0.5]), cond)
    assert torch.equal(x_t[cond], target[cond])


def test_schedule_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps=0"):
        flow.schedule(0)
