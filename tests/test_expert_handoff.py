"""Tier 1: the expert handoff with analytic experts — exact x0 in any frame pairing, experts see
the equivalent state of their own frame, switch at either end is one expert alone."""

from __future__ import annotations

import math

import pytest
import torch
from analytic import GaussianData, native_model

from solune.samplers import ExpertHandoff
from solune.velocity import LuneFlow, SolV, convert_state

DATA = GaussianData(mu=[0.5, -1.0, 2.0, 0.0], std=[1.0, 0.5, 0.25, 2.0])
OTHER = GaussianData(mu=[-0.5, 1.0, 0.0, 1.0], std=[0.3, 1.5, 1.0, 0.5])
OBJECTS = {"sol_v": SolV(), "lune_flow": LuneFlow(shift=2.0)}


def exact_expert(obj, data=DATA):
    """An expert that is exact in its own frame: native network output → x0 with obj's formulas."""
    net = native_model(obj, data)
    return lambda x, sigma: obj.to_x0(net(x, sigma), x, sigma)


def handoff(run, structure, detail, switch, width=0.0):
    return ExpertHandoff(run.frame, structure.frame, detail.frame, run.percent_to_sigma, switch, width)


def run_sigmas(obj, n=9):
    if obj.frame == "flow":
        return torch.linspace(0.995, 0.01, n, dtype=torch.float64)
    return obj.sigmas.double()[torch.linspace(999, 0, n).round().long()]


PAIRS = [("sol_v", "lune_flow"), ("lune_flow", "sol_v"), ("sol_v", "sol_v"), ("lune_flow", "lune_flow")]


@pytest.mark.parametrize("structure,detail", PAIRS)
@pytest.mark.parametrize("switch,width", [(0.5, 0.0), (0.4, 0.3), (0.0, 0.0), (1.0, 0.0), (0.9, 0.5)])
def test_handoff_x0_equals_the_exact_x0_at_every_sigma(structure, detail, switch, width):
    s_obj, d_obj = OBJECTS[structure], OBJECTS[detail]
    h = handoff(s_obj, s_obj, d_obj, switch, width)
    z = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma in run_sigmas(s_obj):
        A, B = s_obj.coefficients(sigma, z.ndim, z)
        x = DATA.marginal_state(z, A, B)
        s = sigma.repeat(2)
        x0 = h.evaluate(x, s, exact_expert(s_obj), exact_expert(d_obj))
        torch.testing.assert_close(x0, DATA.posterior_mean(x, A, B), rtol=0, atol=1e-10)


@pytest.mark.parametrize("structure,detail", PAIRS)
def test_expert_through_the_handoff_sees_the_equivalent_state_of_its_own_frame(structure, detail):
    """A non-analytic expert: its x0 through the handoff equals its x0 at (x', σ') computed here
    with t = σ/(1 + σ), x_flow = x/(1 + σ) (or the inverse)."""
    s_obj, d_obj = OBJECTS[structure], OBJECTS[detail]
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def expert(x, sigma):  # some fixed nonlinear function of the state in its own frame
        s = sigma.reshape(-1, 1, 1, 1)
        return torch.tanh(torch.einsum("oc,bchw->bohw", w, x)) * s + x / (1 + s)

    h = handoff(s_obj, s_obj, d_obj, switch=0.0)  # detail only
    g = torch.Generator().manual_seed(3)
    for sigma in run_sigmas(s_obj, 5):
        x = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
        s = sigma.repeat(2)
        if s_obj.frame == d_obj.frame:
            x_d, s_d = x, s
        elif s_obj.frame == "ddpm":
            x_d, s_d = x / (1 + sigma), s / (1 + s)
        else:
            x_d, s_d = x / (1 - sigma), s / (1 - s)
        torch.testing.assert_close(h.evaluate(x, s, None, expert), expert(x_d, s_d), rtol=0, atol=1e-12)


@pytest.mark.parametrize("src,dst", [("ddpm", "flow"), ("flow", "ddpm"), ("ddpm", "ddpm"), ("flow", "flow")])
def test_frame_conversion_round_trips_and_keeps_x0_and_noise(src, dst):
    g = torch.Generator().manual_seed(4)
    x0, eps = (
        torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64),
        torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64),
    )
    sigma = torch.tensor([0.05, 0.5, 0.9] if src == "flow" else [0.03, 1.0, 14.6], dtype=torch.float64)
    s = sigma.view(-1, 1, 1, 1)
    x = (1 - s) * x0 + s * eps if src == "flow" else x0 + s * eps
    x2, sigma2 = convert_state(x, sigma, src, dst)
    s2 = sigma2.view(-1, 1, 1, 1)
    torch.testing.assert_close(x2, (1 - s2) * x0 + s2 * eps if dst == "flow" else x0 + s2 * eps, rtol=0, atol=1e-12)
    back, sigma_back = convert_state(x2, sigma2, dst, src)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(sigma_back, sigma, rtol=0, atol=1e-12)


def euler_run(denoiser, obj, z):
    sigmas = torch.cat([run_sigmas(obj, 8), torch.zeros(1, dtype=torch.float64)])
    A, B = obj.coefficients(sigmas[0], z.ndim, z)
    x = DATA.marginal_state(z, A, B)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        s = sigma.repeat(z.shape[0])
        x = x + (x - denoiser(x, s)) / sigma * (sigma_next - sigma)
    return x


@pytest.mark.parametrize("prediction", ["sol_v", "lune_flow"])
def test_same_type_switch_at_either_end_is_one_expert_alone(prediction):
    obj = OBJECTS[prediction]
    structure, detail = exact_expert(obj, DATA), exact_expert(obj, OTHER)  # two different experts
    z = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    start = handoff(obj, obj, obj, switch=0.0)
    end = handoff(obj, obj, obj, switch=1.0)
    alone_detail, alone_structure = euler_run(detail, obj, z), euler_run(structure, obj, z)
    assert (alone_detail - alone_structure).abs().max() > 0.1
    assert torch.equal(euler_run(lambda x, s: start.evaluate(x, s, structure, detail), obj, z), alone_detail)
    assert torch.equal(euler_run(lambda x, s: end.evaluate(x, s, structure, detail), obj, z), alone_structure)


@pytest.mark.parametrize("prediction", ["sol_v", "lune_flow"])
def test_crossfade_weight_is_a_smooth_monotone_ramp_centred_on_the_switch(prediction):
    obj = OBJECTS[prediction]
    h = handoff(obj, obj, obj, switch=0.5, width=0.2)
    percents = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    sigmas = torch.tensor([obj.percent_to_sigma(float(p)) for p in percents[1:-1]], dtype=torch.float64)
    lam = h.detail_weight(sigmas)
    assert bool((lam[1:] >= lam[:-1]).all())
    p = percents[1:-1]
    assert bool((lam[p <= 0.399] == 0).all()) and bool((lam[p >= 0.601] == 1).all())
    mid = h.detail_weight(torch.tensor([obj.percent_to_sigma(0.5)], dtype=torch.float64))
    assert float(mid) == pytest.approx(0.5, abs=1e-6)
    hard = handoff(obj, obj, obj, switch=0.5)
    lam_hard = hard.detail_weight(sigmas)
    assert set(lam_hard.tolist()) == {0.0, 1.0}
    assert bool((lam_hard[p < 0.5] == 0).all()) and bool((lam_hard[p > 0.5] == 1).all())


def test_experts_are_called_only_where_their_weight_is_nonzero():
    obj = OBJECTS["sol_v"]
    calls = {"structure": 0, "detail": 0}

    def counting(name, fn):
        def wrapped(x, s):
            calls[name] += 1
            return fn(x, s)

        return wrapped

    h = handoff(obj, obj, obj, switch=0.5, width=0.2)
    run = lambda p: h.evaluate(
        torch.zeros(1, 4, 2, 2, dtype=torch.float64),
        torch.tensor([obj.percent_to_sigma(p)], dtype=torch.float64),
        counting("structure", exact_expert(obj)),
        counting("detail", exact_expert(obj)),
    )
    run(0.1)
    assert calls == {"structure": 1, "detail": 0}
    run(0.9)
    assert calls == {"structure": 1, "detail": 1}
    run(0.5)
    assert calls == {"structure": 2, "detail": 2}


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(switch=1.5), "switch must be a number in [0, 1]; got 1.5"),
        (dict(switch=-0.1), "switch must be a number in [0, 1]; got -0.1"),
        (dict(switch=float("nan")), "got nan"),
        (dict(switch=0.5, blend_width=2.0), "blend_width must be a number in [0, 1]; got 2.0"),
    ],
)
def test_out_of_range_switch_or_width_is_refused(kwargs, needle):
    obj = OBJECTS["sol_v"]
    with pytest.raises(ValueError) as err:
        ExpertHandoff("ddpm", "ddpm", "flow", obj.percent_to_sigma, **kwargs)
    assert needle in str(err.value)


def test_ddpm_expert_at_flow_pure_noise_is_refused_with_advice():
    flow, sol = OBJECTS["lune_flow"], OBJECTS["sol_v"]
    h = handoff(flow, flow, sol, switch=0.0)
    with pytest.raises(ValueError, match="cannot be evaluated at flow σ = 1"):
        h.evaluate(torch.zeros(1, 4, 2, 2), torch.ones(1), exact_expert(flow), exact_expert(sol))
    assert math.isfinite(float(h.sigma_switch))
