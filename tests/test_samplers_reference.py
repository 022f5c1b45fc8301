"""Tier 1: each reference sampler equals an independent float64 implementation of its authors'
recipe on the exact Gaussian-data model, and the DDPM/DDIM/Euler identities hold."""

from __future__ import annotations

import math

import pytest
import torch
from analytic import GaussianData

from solune.samplers import lune_sigmas, sample_epsilon_ddim, sample_lune_euler, sample_sol_ddpm
from solune.velocity import Epsilon, LuneFlow, SolV

DATA = GaussianData(mu=[0.5, -1.0, 2.0, 0.0], std=[1.0, 0.5, 0.25, 2.0])
TIMESTEPS = [999, 749, 499, 251, 120, 17]


# ------------------------------------------------------------ independent references
def sd15_alphas_cumprod():
    """SD1.5's ᾱ, written out here (not taken from solune.velocity)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


AB = sd15_alphas_cumprod()


def vp_x0(x_t, t):
    a, s = AB[t].sqrt(), (1 - AB[t]).sqrt()
    return DATA.posterior_mean(x_t, a, s)


def net_v(x_t, t):
    """Sol's network, exact: v = a·ε − s·x0 for the VP state x_t at timestep t."""
    a, s = AB[t].sqrt(), (1 - AB[t]).sqrt()
    x0 = vp_x0(x_t, t)
    return a * (x_t - a * x0) / s - s * x0


def net_eps(x_t, t):
    a, s = AB[t].sqrt(), (1 - AB[t]).sqrt()
    return (x_t - a * vp_x0(x_t, t)) / s


def reference_ddpm(x_t, timesteps, noises, eta, kind):
    """Authors' loop on VP states: network output → x0, ε → posterior (η = 1 for Sol) or DDIM."""
    noises = list(noises)
    for t, t_prev in zip(timesteps, timesteps[1:] + [None]):
        ab_t = AB[t]
        ab_p = AB[t_prev] if t_prev is not None else torch.tensor(1.0, dtype=torch.float64)
        a, s = ab_t.sqrt(), (1 - ab_t).sqrt()
        if kind == "sol_v":
            v = net_v(x_t, t)
            x0 = (a * x_t - s * v) / (a * a + s * s)
        else:
            x0 = (x_t - s * net_eps(x_t, t)) / a
        eps = (x_t - a * x0) / s
        if kind == "sol_v" and eta == 1.0:
            alpha_t = ab_t / ab_p
            mean = ab_p.sqrt() * (1 - alpha_t) / (1 - ab_t) * x0 + alpha_t.sqrt() * (1 - ab_p) / (1 - ab_t) * x_t
            var = (1 - ab_p) / (1 - ab_t) * (1 - alpha_t)
            x_t = mean + (var.sqrt() * noises.pop(0) if t_prev is not None else 0)
        else:
            sig = eta * ((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)).sqrt()
            x_t = ab_p.sqrt() * x0 + (1 - ab_p - sig**2).sqrt() * eps
            if t_prev is not None and eta > 0:
                x_t = x_t + sig * noises.pop(0)
    return x_t


def reference_lune(x, sigmas, quantize):
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        t = 1000.0 * sigma
        if quantize:
            t = max(1.0, round(float(t)))
        st = torch.as_tensor(t / 1000.0, dtype=torch.float64)
        v = (x - DATA.posterior_mean(x, 1 - st, st)) / st  # exact flow velocity ε − x0
        x = x - v * (sigma - sigma_next)
    return x


# --------------------------------------------------------- ComfyUI-style model wrappers
def wrapped(obj, net):
    """What ComfyUI's BaseModel does: scale the input, σ → timestep, network, output → x0."""

    def model(x, sigma, **_):
        out = net(obj.calculate_input(sigma, x), obj.timestep(sigma))
        return obj.calculate_denoised(sigma, out, x)

    return model


def ddpm_model(obj, kind):
    net = net_v if kind == "sol_v" else net_eps
    return wrapped(obj, lambda x_in, t: net(x_in, int(t.reshape(-1)[0])))


def flow_model(obj):
    def net(x, timestep):
        st = (timestep / 1000.0).reshape(-1, 1, 1, 1)
        return (x - DATA.posterior_mean(x, 1 - st, st)) / st

    return wrapped(obj, net)


def grid_sigmas(timesteps):
    sig = ((1 - AB[timesteps]) / AB[timesteps]).sqrt()
    return torch.cat([sig, torch.zeros(1, dtype=torch.float64)])


def noise_list(n, shape, seed=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n)]


def replay(noises):
    queue = list(noises)
    return lambda sigma, sigma_next: queue.pop(0)


@pytest.fixture
def z():
    return torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("eta", [1.0, 0.0, 0.5])
def test_sol_ddpm_equals_the_float64_reference_recipe(z, eta):
    obj = SolV()
    t0 = TIMESTEPS[0]
    x_t = DATA.marginal_state(z, AB[t0].sqrt(), (1 - AB[t0]).sqrt())
    sigmas = grid_sigmas(TIMESTEPS)
    noises = noise_list(len(TIMESTEPS) - 1, z.shape)
    ours = sample_sol_ddpm(
        ddpm_model(obj, "sol_v"),
        x_t * math.sqrt(1 + sigmas[0] ** 2),
        sigmas,
        eta=eta,
        alphas_cumprod=obj.alphas_cumprod,
        noise_sampler=replay(noises),
    )
    ref = reference_ddpm(x_t, TIMESTEPS, noises, eta, "sol_v")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    assert (ours - x_t).abs().max() > 0.1


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_epsilon_ddim_equals_the_float64_reference_recipe(z, eta):
    obj = Epsilon()
    t0 = TIMESTEPS[0]
    x_t = DATA.marginal_state(z, AB[t0].sqrt(), (1 - AB[t0]).sqrt())
    sigmas = grid_sigmas(TIMESTEPS)
    noises = noise_list(len(TIMESTEPS) - 1, z.shape)
    ours = sample_epsilon_ddim(
        ddpm_model(obj, "epsilon"),
        x_t * math.sqrt(1 + sigmas[0] ** 2),
        sigmas,
        eta=eta,
        alphas_cumprod=obj.alphas_cumprod,
        noise_sampler=replay(noises),
    )
    ref = reference_ddpm(x_t, TIMESTEPS, noises, eta, "epsilon")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_ddim_at_eta_one_is_the_ddpm_posterior_step(z):
    obj = SolV()
    sigmas = grid_sigmas(TIMESTEPS)
    x = z * math.sqrt(1 + sigmas[0] ** 2)
    noises = noise_list(len(TIMESTEPS) - 1, z.shape)
    model = ddpm_model(obj, "sol_v")
    posterior = sample_sol_ddpm(
        model, x, sigmas, eta=1.0, alphas_cumprod=obj.alphas_cumprod, noise_sampler=replay(noises)
    )
    ddim = sample_epsilon_ddim(
        model, x, sigmas, eta=1.0, alphas_cumprod=obj.alphas_cumprod, noise_sampler=replay(noises)
    )
    torch.testing.assert_close(posterior, ddim, rtol=0, atol=1e-10)


def test_deterministic_ddim_is_euler_in_the_sigma_frame(z):
    """η = 0: x_prev = x0 + σ_prev·ε, which is one Euler step of dx/dσ = (x − x0)/σ."""
    obj = SolV()
    sigmas = grid_sigmas(TIMESTEPS)
    model = ddpm_model(obj, "sol_v")
    x = z * math.sqrt(1 + sigmas[0] ** 2)
    ours = sample_sol_ddpm(model, x, sigmas, eta=0.0, alphas_cumprod=obj.alphas_cumprod)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (x - model(x, sigma.reshape(1))) / sigma * (sigma_next - sigma)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-10)


def test_interior_sigmas_snap_to_the_nearest_grid_timestep(z):
    obj = SolV()
    sigmas = grid_sigmas(TIMESTEPS)
    off = sigmas.clone()
    off[1:-1] *= 1.0 + 1e-4 * torch.tensor([1, -1, 1, -1, 1], dtype=torch.float64)
    model = ddpm_model(obj, "sol_v")
    x = z * math.sqrt(1 + sigmas[0] ** 2)
    noises = noise_list(len(TIMESTEPS) - 1, z.shape)
    a = sample_sol_ddpm(model, x, sigmas, alphas_cumprod=obj.alphas_cumprod, noise_sampler=replay(noises))
    b = sample_sol_ddpm(model, x, off, alphas_cumprod=obj.alphas_cumprod, noise_sampler=replay(noises))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler,eta", [(sample_sol_ddpm, 1.0), (sample_epsilon_ddim, 0.5)])
def test_a_stochastic_step_needs_a_noise_sampler_and_draws_only_from_it(z, sampler, eta):
    """No hidden noise source: without one a stochastic run is refused before the model is called,
    and with one every draw comes from it (ComfyUI's own, passed in by the node)."""
    obj = SolV()
    sigmas = grid_sigmas(TIMESTEPS)
    calls = []
    model = ddpm_model(obj, "sol_v")
    counting = lambda x, sigma, **kw: calls.append(1) or model(x, sigma, **kw)
    with pytest.raises(ValueError, match=r"noise_sampler must be a callable .* when eta > 0; got None"):
        sampler(counting, z, sigmas, eta=eta, extra_args={"seed": 3}, alphas_cumprod=obj.alphas_cumprod)
    assert calls == []
    noises = noise_list(len(TIMESTEPS) - 1, z.shape)
    queue = replay(noises)
    sampler(model, z, sigmas, eta=eta, alphas_cumprod=obj.alphas_cumprod, noise_sampler=queue)
    with pytest.raises(IndexError):  # one draw per step that ends above σ = 0, all of them used
        queue(0.0, 0.0)


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("shift", [1.0, 2.0, 3.0])
def test_lune_euler_equals_the_float64_reference_recipe(z, quantize, shift):
    obj = LuneFlow(shift=shift)
    steps = 7
    t = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    sigmas = shift * t / (1 + (shift - 1) * t)
    x = DATA.marginal_state(z, 1 - sigmas[0], sigmas[0])
    ours = sample_lune_euler(flow_model(obj), x, sigmas, quantize_timesteps=quantize)
    ref = reference_lune(x, sigmas, quantize)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    assert (ours - x).abs().max() > 0.1


def test_quantized_timesteps_change_the_result_only_through_rounding(z):
    obj = LuneFlow(shift=2.0)
    sigmas = lune_sigmas(7, 2.0).double()
    x = DATA.marginal_state(z, 1 - sigmas[0], sigmas[0])
    exact = sample_lune_euler(flow_model(obj), x, sigmas, quantize_timesteps=False)
    rounded = sample_lune_euler(flow_model(obj), x, sigmas, quantize_timesteps=True)
    diff = (exact - rounded).abs().max().item()
    assert 0 < diff < 1e-2  # timestep moves by < 0.5/1000 per step


@pytest.mark.parametrize("steps,shift,denoise", [(4, 2.0, 1.0), (10, 2.5, 1.0), (6, 1.0, 0.5), (5, 3.0, 0.7)])
def test_lune_schedule_is_the_shifted_linspace(steps, shift, denoise):
    sig = lune_sigmas(steps, shift, denoise)
    total = int(steps / denoise)
    i = torch.arange(total + 1, dtype=torch.float64)
    t = 1 - i / total
    expected = (shift * t / (1 + (shift - 1) * t))[-(steps + 1) :]
    assert sig.dtype == torch.float32 and len(sig) == steps + 1
    torch.testing.assert_close(sig.double(), expected, rtol=0, atol=1e-7)
    assert float(sig[-1]) == 0.0


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(steps=4, shift=0.0), "shift must be a number > 0"),
        (dict(steps=4, denoise=0.0), "denoise must be a number in (0, 1]"),
        (dict(steps=4, denoise=1.5), "got 1.5"),
    ],
)
def test_lune_schedule_refuses_bad_input(kwargs, needle):
    with pytest.raises(ValueError) as err:
        lune_sigmas(**kwargs)
    assert needle in str(err.value)


def test_ddpm_samplers_refuse_bad_eta_and_increasing_sigmas(z):
    obj = SolV()
    model = ddpm_model(obj, "sol_v")
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]; got 1.5"):
        sample_sol_ddpm(model, z, grid_sigmas(TIMESTEPS), eta=1.5)
    rising = torch.flip(grid_sigmas(TIMESTEPS)[:-1], [0])
    with pytest.raises(ValueError, match="sigmas must decrease"):
        sample_epsilon_ddim(model, z, rising)
