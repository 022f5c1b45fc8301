"""σ tables, timestep maps and the flow shift against their closed forms."""

import math

import pytest
import torch

from solune.velocity import Epsilon, LuneFlow, SolV, flow_shift
from solune.velocity.schedule import (
    ZSNR_LAST_ALPHA_CUMPROD,
    ddpm_alphas_cumprod,
    flow_unshift,
    rescale_zero_terminal_snr,
)


def reference_sigmas():
    lo, hi, n = math.sqrt(0.00085), math.sqrt(0.012), 1000
    prod, out = 1.0, []
    for i in range(n):
        prod *= 1.0 - (lo + (hi - lo) * i / (n - 1)) ** 2
        out.append(math.sqrt((1 - prod) / prod))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("cls", [Epsilon, SolV])
def test_ddpm_sigma_table_matches_the_closed_form(cls):
    obj = cls()
    ref = reference_sigmas()
    torch.testing.assert_close(obj.sigmas.double(), ref, rtol=1e-6, atol=0)
    assert obj.sigmas.dtype == torch.float32
    assert obj.sigma_min.item() == pytest.approx(ref[0].item(), rel=1e-6)
    assert obj.sigma_max.item() == pytest.approx(ref[-1].item(), rel=1e-6)
    assert 14.6 < obj.sigma_max.item() < 14.62  # SD1.5's well-known σ_max


def test_ddpm_timestep_is_the_table_index_and_back():
    obj = Epsilon()
    idx = torch.tensor([0, 1, 17, 500, 998, 999])
    torch.testing.assert_close(obj.timestep(obj.sigmas[idx]), idx)
    torch.testing.assert_close(obj.sigma(idx.float()), obj.sigmas[idx], rtol=1e-6, atol=0)
    # between two entries σ interpolates log-linearly
    mid = obj.sigma(torch.tensor(10.5))
    expect = math.exp(0.5 * (math.log(obj.sigmas[10].item()) + math.log(obj.sigmas[11].item())))
    assert mid.item() == pytest.approx(expect, rel=1e-6)


def test_ddpm_percent_to_sigma_endpoints_and_monotone():
    obj = SolV()
    assert obj.percent_to_sigma(0.0) > 1e8
    assert obj.percent_to_sigma(1.0) == 0.0
    values = [obj.percent_to_sigma(p) for p in (0.01, 0.2, 0.5, 0.8, 0.99)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert obj.percent_to_sigma(0.5) == pytest.approx(obj.sigma(torch.tensor(499.5)).item(), rel=1e-6)


def test_zero_terminal_snr_rescale_pins_the_ends():
    plain = ddpm_alphas_cumprod()
    z = rescale_zero_terminal_snr(plain)
    assert z[0].item() == pytest.approx(plain[0].item(), rel=1e-12)
    assert z[-1].item() == ZSNR_LAST_ALPHA_CUMPROD
    # sqrt(ᾱ) is an affine map of the original sqrt(ᾱ) (checked away from the pinned last entry)
    x, y = plain.sqrt()[:-1], z.sqrt()[:-1]
    slope = (y[0] - y[-1]) / (x[0] - x[-1])
    torch.testing.assert_close(y, y[0] + slope * (x - x[0]), rtol=0, atol=1e-12)
    obj = Epsilon(zero_terminal_snr=True)
    assert obj.sigma_max.item() == pytest.approx(
        math.sqrt((1 - ZSNR_LAST_ALPHA_CUMPROD) / ZSNR_LAST_ALPHA_CUMPROD), rel=1e-6
    )
    assert obj.sigma_max.item() > 4000


@pytest.mark.parametrize("k", [0.5, 1.0, 2.0, 2.5, 6.0])
def test_flow_shift_is_monotone_with_fixed_endpoints_and_invertible(k):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    s = flow_shift(t, k)
    assert s[0].item() == 0.0 and s[-1].item() == pytest.approx(1.0, abs=1e-15)
    assert bool((s[1:] > s[:-1]).all())
    torch.testing.assert_close(flow_unshift(s, k), t, rtol=0, atol=1e-12)
    assert flow_shift(0.5, k) == pytest.approx(k * 0.5 / (1 + (k - 1) * 0.5))
    if k > 1:
        assert bool((s[1:-1] > t[1:-1]).all())  # k > 1 spends more of the schedule at high noise


def test_lune_table_timestep_and_inverse():
    obj = LuneFlow(shift=2.0)
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    torch.testing.assert_close(obj.sigmas.double(), 2 * t / (1 + t), rtol=1e-6, atol=0)
    sig = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(obj.timestep(sig), 1000 * sig)
    torch.testing.assert_close(obj.sigma_from_timestep(obj.timestep(sig)), sig)
    assert obj.sigma_max.item() == pytest.approx(1.0)
    assert obj.percent_to_sigma(0.0) == 1.0 and obj.percent_to_sigma(1.0) == 0.0
    assert obj.percent_to_sigma(0.5) == pytest.approx(2 * 0.5 / 1.5)
