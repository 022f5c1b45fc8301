"""Euler sampling of the exact Gaussian-data denoiser reaches the data distribution, for every
parameterisation, with an error that shrinks as the number of steps grows."""

import pytest
import torch
from analytic import GaussianData, native_model

from solune.velocity import Epsilon, LuneFlow, SolV, flow_shift

DATA = GaussianData(mu=[0.5, -1.0, 2.0, 0.0], std=[1.0, 0.5, 0.25, 2.0])


def schedule(obj, steps):
    if obj.frame == "flow":
        t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        return flow_shift(t, obj.shift)
    # ComfyUI's "simple" scheduler: evenly spaced entries of the σ table, then 0
    table = obj.sigmas.double()
    idx = torch.linspace(len(table) - 1, 0, steps).round().long()
    return torch.cat([table[idx], torch.zeros(1, dtype=torch.float64)])


def euler(obj, z, steps):
    sigmas = schedule(obj, steps)
    A, B = obj.coefficients(sigmas[0], z.ndim, z)
    x = DATA.marginal_state(z, A, B)
    net = native_model(obj, DATA)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x0 = obj.to_x0(net(x, sigma), x, sigma)
        x = x + obj.velocity(x, x0, sigma) * (sigma_next - sigma)
    return x


@pytest.mark.parametrize(
    "obj",
    [Epsilon(), SolV(), LuneFlow(shift=2.0), LuneFlow(shift=1.0)],
    ids=lambda o: f"{o.prediction}-{getattr(o, 'shift', '')}",
)
def test_euler_reaches_the_data_distribution(obj):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(256, 4, 4, 4, generator=gen, dtype=torch.float64)
    exact = DATA.ode_endpoint(z)
    errors = []
    for steps in (10, 20, 40, 80, 160):
        out = euler(obj, z, steps)
        errors.append((out - exact).abs().max().item())
    # first-order convergence: each doubling of steps shrinks the error
    assert all(b < 0.75 * a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.1, errors
    out = euler(obj, z, 160)
    dims = (0, 2, 3)
    mean, std = out.mean(dims), out.std(dims)
    # with this fixed z, the ODE's exact endpoint has these statistics; the data's are μ, s
    torch.testing.assert_close(mean, exact.mean(dims), rtol=0, atol=0.02)
    # 160 Euler steps are still first-order; and the DDPM table stops at σ_min ≈ 0.029 and jumps
    # to 0, which shrinks the narrowest channel
    # (s = 0.25) by ~1.4% whatever the step count
    torch.testing.assert_close(std, exact.std(dims), rtol=0.05, atol=0)
    torch.testing.assert_close(mean, DATA.mu, rtol=0, atol=0.15)
    torch.testing.assert_close(std, DATA.std, rtol=0.1, atol=0)
