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


SCHEDULES = [
    flow.Schedule("shifted", 8, 0.1),
    flow.Schedule("shifted", 1, None),
    flow.Schedule("linear_quadratic", 20, None),
    flow.Schedule("list", timesteps=(1.0, 0.9, 0.725)),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s.kind}{s.steps}")
@pytest.mark.parametrize("tokens", [12, 6144])
def test_full_sampling_with_oracle_recovers_z0(schedule, tokens):
    z0, e = _data()
    ts = schedule.times(tokens)
    assert ts[0].item() == 1.0 and ts[-1].item() == 0.0 and (ts[1:] < ts[:-1]).all()
    out = flow.euler_sample(lambda x, t: e - z0, e.clone(), ts)
    assert (out - z0).abs().max().item() < 1e-5


@pytest.mark.parametrize("t_star", [0.1, 0.4, 0.6, 0.725, 0.9, 1.0])
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s.kind}{s.steps}")
def test_partial_sampling_from_any_t_star_recovers_z0(t_star, schedule):
    z0, e = _data()
    z0_hat = z0 + 0.3 * torch.randn_like(z0)  # an imperfect adapter estimate
    x_start = flow.partial_start(z0_hat, e, t_star)
    ts = schedule.times(24, start=t_star)
    assert ts[0].item() == pytest.approx(t_star) and ts[-1].item() == 0.0 and (ts[1:] < ts[:-1]).all()
    assert set(ts[1:].tolist()) <= set(schedule.times(24).tolist())  # the release's own times below t*
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

    out = flow.euler_sample(vel, x, flow.Schedule("shifted", 5).times(24), cond)
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


def test_schedule_rejects_bad_steps_and_lists():
    with pytest.raises(ValueError, match="steps=0"):
        flow.Schedule("shifted").times(100, steps=0)
    with pytest.raises(ValueError, match="option.sample_steps"):  # a distilled list is not re-stepped
        flow.Schedule("list", timesteps=(1.0, 0.5)).times(100, steps=8)
    with pytest.raises(ValueError, match="decreasing"):
        flow.Schedule("list", timesteps=(0.5, 1.0))
    with pytest.raises(ValueError, match="kind='cosine'"):
        flow.Schedule("cosine")


def test_shift_terminal_ends_the_schedule_at_its_value():
    """At 6144 tokens and 8 steps the shifted schedule's last step would span about 0.70 -> 0;
    LTX's shift_terminal stretches it so the last non-zero time is 0.1."""
    unstretched = flow.Schedule("shifted", 8, None).times(6144)
    stretched = flow.Schedule("shifted", 8, 0.1).times(6144)
    assert unstretched[-2].item() == pytest.approx(0.697, abs=0.005)
    assert stretched[-2].item() == pytest.approx(0.1) and stretched[0].item() == 1.0


def test_schedules_equal_diffusers_schedulers():
    """The same times as diffusers' FlowMatchEulerDiscreteScheduler under each release's config:
    0.9.0/0.9.1 (dynamic shift + shift_terminal, sigmas linspace(1, 1/S, S) as LTXPipeline passes
    them) and 0.9.5+ (LTXConditionPipeline's linear-quadratic times or a given list, no shift)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.ltx.pipeline_ltx_condition import linear_quadratic_schedule

    for tokens, steps in [(12, 8), (6144, 8), (2560, 40)]:
        shifted = FlowMatchEulerDiscreteScheduler(
            use_dynamic_shifting=True,
            base_shift=0.95,
            max_shift=2.05,
            base_image_seq_len=1024,
            max_image_seq_len=4096,
            shift_terminal=0.1,
        )
        shifted.set_timesteps(sigmas=torch.linspace(1, 1 / steps, steps).tolist(), mu=flow.shift_mu(tokens))
        assert torch.allclose(flow.Schedule("shifted", steps, 0.1).times(tokens), shifted.sigmas, atol=1e-6)
        plain = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False)
        plain.set_timesteps(timesteps=(linear_quadratic_schedule(steps) * 1000).tolist())
        assert torch.allclose(
            flow.Schedule("linear_quadratic", steps, None).times(tokens), plain.sigmas, atol=1e-6
        )
    times = (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725)
    plain.set_timesteps(timesteps=[t * 1000 for t in times])
    assert torch.allclose(flow.Schedule("list", timesteps=times).times(6144), plain.sigmas, atol=1e-6)


def test_partial_draws_cover_the_sampler_at_real_size():
    """Option B's DiT is trained where its sampler steps. At 6144 tokens (768x512x121), LTX's draw
    scaled by t* falls below t*/2 about 0.3% of the time; the sampler from t*=0.6 on the default
    release's schedule spends most of its steps there."""
    torch.manual_seed(0)
    t_star, tokens = 0.6, 6144
    ts = flow.Schedule("linear_quadratic", 40, None).times(tokens, start=t_star)  # ltx_2b (0.9.5)
    steps_below_half = ((ts[:-1] < t_star / 2).float().mean()).item()
    draws = flow.sample_t_within(ts, 50_000)
    assert (draws > 0).all() and (draws <= t_star).all()
    below_half = (draws < t_star / 2).float().mean().item()
    scaled_ltx = (t_star * flow.sample_t(50_000, tokens) < t_star / 2).float().mean().item()
    assert scaled_ltx < 0.005
    assert below_half == pytest.approx(steps_below_half, abs=0.05) and below_half > 0.3
    # every interval of the sampler gets its share
    counts = torch.histogram(draws.double(), bins=ts.flip(0).double()).hist
    assert (counts / len(draws) > 0.8 / (len(ts) - 1)).all()
