"""Each prediction type converts model outputs to x0 and back exactly, and the seed formulas hold."""

import math

import pytest
import torch

from solune.velocity import Epsilon, LuneFlow, SolV, make_prediction
from solune.velocity.prediction import OUTPUT_TYPES

torch.manual_seed(0)
SHAPE = (2, 4, 5, 6)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def ddpm_alpha_bar_reference(t: int) -> float:
    """ᾱ_t computed with plain Python floats, independent of torch."""
    lo, hi, n = math.sqrt(0.00085), math.sqrt(0.012), 1000
    prod = 1.0
    for i in range(t + 1):
        beta = (lo + (hi - lo) * i / (n - 1)) ** 2
        prod *= 1.0 - beta
    return prod


@pytest.mark.parametrize("obj", [Epsilon(), SolV(), LuneFlow(shift=2.5)], ids=lambda o: o.prediction)
@pytest.mark.parametrize("sigma_kind", ["scalar", "batch"])
def test_output_x0_round_trip_is_exact(obj, sigma_kind):
    x = rand(*SHAPE)
    out = rand(*SHAPE)
    if obj.frame == "flow":
        sigma = torch.tensor([0.3, 0.85], dtype=torch.float64)
    else:
        sigma = torch.tensor([0.2, 9.0], dtype=torch.float64)
    if sigma_kind == "scalar":
        sigma = sigma[1]
    x0 = obj.to_x0(out, x, sigma)
    back = obj.from_x0(x0, x, sigma)
    torch.testing.assert_close(back, out, rtol=0, atol=1e-12)
    # and the other way round
    x0b = rand(*SHAPE)
    torch.testing.assert_close(obj.to_x0(obj.from_x0(x0b, x, sigma), x, sigma), x0b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("t", [0, 1, 250, 500, 999])
def test_sol_v_matches_the_ddpm_formulas(t):
    ab = ddpm_alpha_bar_reference(t)
    a, s = math.sqrt(ab), math.sqrt(1 - ab)
    x0, eps = rand(*SHAPE), rand(*SHAPE)
    x_t = a * x0 + s * eps
    v = a * eps - s * x0
    obj = SolV()
    sigma = torch.tensor(s / a, dtype=torch.float64)
    torch.testing.assert_close(obj.alphas_cumprod[t].item(), ab, rtol=1e-12, atol=0)
    x = x_t / a  # the DDPM-frame state x = x0 + σ·ε
    torch.testing.assert_close(obj.calculate_input(sigma, x), x_t, rtol=0, atol=1e-12)
    torch.testing.assert_close(obj.to_x0(v, x, sigma), a * x_t - s * v, rtol=0, atol=1e-10)
    torch.testing.assert_close(obj.to_x0(v, x, sigma), x0, rtol=0, atol=1e-10)
    torch.testing.assert_close(obj.x0_to("epsilon", x0, x, sigma), (x_t - a * x0) / s, rtol=0, atol=1e-9)
    torch.testing.assert_close(obj.from_x0(x0, x, sigma), v, rtol=0, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.05, 0.5, 0.97])
def test_lune_flow_matches_the_rectified_flow_formulas(sigma):
    x0, noise = rand(*SHAPE), rand(*SHAPE)
    x = sigma * noise + (1 - sigma) * x0
    v = noise - x0
    obj = LuneFlow(shift=2.0)
    s = torch.tensor(sigma, dtype=torch.float64)
    torch.testing.assert_close(obj.to_x0(v, x, s), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(obj.from_x0(x0, x, s), v, rtol=0, atol=1e-12)
    torch.testing.assert_close(obj.x0_to("epsilon", x0, x, s), noise, rtol=0, atol=1e-11)
    torch.testing.assert_close(obj.calculate_input(s, x), x)
    # the sampler's velocity (x − x0)/σ is the flow velocity
    torch.testing.assert_close(obj.velocity(x, x0, s), v, rtol=0, atol=1e-11)


@pytest.mark.parametrize("sigma", [0.03, 1.0, 14.6])
def test_epsilon_matches_the_ddpm_formulas(sigma):
    x0, eps = rand(*SHAPE), rand(*SHAPE)
    x = x0 + sigma * eps
    obj = Epsilon()
    s = torch.tensor(sigma, dtype=torch.float64)
    torch.testing.assert_close(obj.to_x0(eps, x, s), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(obj.calculate_input(s, x), x / math.sqrt(1 + sigma**2))
    torch.testing.assert_close(obj.velocity(x, x0, s), eps, rtol=0, atol=1e-11)


@pytest.mark.parametrize("obj", [Epsilon(), SolV(), LuneFlow()], ids=lambda o: o.prediction)
def test_eps_sol_v_and_flow_v_describe_the_same_x0(obj):
    """Same (x0, ε) state: the three output kinds computed from first principles all map to x0."""
    x0, eps = rand(*SHAPE), rand(*SHAPE)
    sigma = torch.tensor(0.4 if obj.frame == "flow" else 2.0, dtype=torch.float64)
    A, B = (1 - sigma, sigma) if obj.frame == "flow" else (torch.tensor(1.0, dtype=torch.float64), sigma)
    x = A * x0 + B * eps
    norm = math.sqrt(A**2 + B**2)
    a, s = A / norm, B / norm
    outputs = {"epsilon": eps, "sol_v": a * eps - s * x0, "flow_v": eps - x0}
    for kind, out in outputs.items():
        torch.testing.assert_close(obj.x0_from(kind, out, x, sigma), x0, rtol=0, atol=1e-10)
        torch.testing.assert_close(obj.x0_to(kind, x0, x, sigma), out, rtol=0, atol=1e-10)
    for src in OUTPUT_TYPES:
        for dst in OUTPUT_TYPES:
            torch.testing.assert_close(obj.convert(outputs[src], x, sigma, src, dst), outputs[dst], rtol=0, atol=1e-10)


def test_noise_scaling_follows_comfyui_semantics():
    latent, noise = rand(*SHAPE), rand(*SHAPE)
    s = torch.tensor(3.0, dtype=torch.float64)
    for obj in (Epsilon(), SolV()):
        torch.testing.assert_close(obj.noise_scaling(s, noise, latent), latent + 3.0 * noise)
        torch.testing.assert_close(
            obj.noise_scaling(s, noise, latent, max_denoise=True), latent + math.sqrt(10.0) * noise
        )
        assert obj.inverse_noise_scaling(s, latent) is latent
    flow = LuneFlow()
    t = torch.tensor(0.25, dtype=torch.float64)
    torch.testing.assert_close(flow.noise_scaling(t, noise, latent), 0.25 * noise + 0.75 * latent)
    torch.testing.assert_close(flow.noise_scaling(t, noise, latent, max_denoise=True), 0.25 * noise + 0.75 * latent)
    torch.testing.assert_close(flow.inverse_noise_scaling(t, 0.75 * latent), latent)


@pytest.mark.parametrize("obj", [Epsilon(), SolV(), LuneFlow()], ids=lambda o: o.prediction)
def test_add_noise_and_remove_noise_are_inverses(obj):
    x0, noise = rand(*SHAPE), rand(*SHAPE)
    sigma = torch.tensor([0.1, 0.9], dtype=torch.float64)
    x = obj.add_noise(x0, noise, sigma)
    torch.testing.assert_close(obj.remove_noise(x, noise, sigma), x0, rtol=0, atol=1e-12)


def test_inputs_do_not_change_dtype_or_mutate():
    obj = SolV()
    x = torch.randn(1, 4, 8, 8)
    keep = x.clone()
    out = obj.calculate_denoised(torch.tensor([5.0]), torch.randn(1, 4, 8, 8), x)
    assert out.dtype == torch.float32
    assert torch.equal(x, keep)


@pytest.mark.parametrize("bad", ["ddim", "v_prediction", "", None, "EPSILON"])
def test_unknown_prediction_is_refused_with_the_allowed_names(bad):
    with pytest.raises(ValueError) as err:
        make_prediction(bad)
    msg = str(err.value)
    assert "epsilon" in msg and "sol_v" in msg and "lune_flow" in msg and repr(bad) in msg


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "two"])
def test_bad_shift_is_refused(bad):
    with pytest.raises(ValueError, match="shift must be a number > 0"):
        make_prediction("lune_flow", shift=bad)
