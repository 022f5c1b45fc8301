"""Noise schedules: SD1.5's DDPM schedule (with optional zero-terminal-SNR rescale) and the flow shift.

All tables are computed in float64 from the closed form; callers cast at the edge.
"""

from __future__ import annotations

import torch

from ..checks import check_number

SD15_TIMESTEPS = 1000
SD15_LINEAR_START = 0.00085
SD15_LINEAR_END = 0.012
# ᾱ at the last step after the zero-terminal-SNR rescale: exactly 0 would give σ = ∞, so the
# last value is pinned to a tiny positive number (the same one ComfyUI uses).
ZSNR_LAST_ALPHA_CUMPROD = 4.8973451890853435e-08


def ddpm_betas(
    num_timesteps: int = SD15_TIMESTEPS,
    linear_start: float = SD15_LINEAR_START,
    linear_end: float = SD15_LINEAR_END,
) -> torch.Tensor:
    """SD1.5 "scaled linear" betas: linspace(sqrt(β_start), sqrt(β_end), T)², float64.

    Args:
        num_timesteps: number of discrete DDPM steps T.
        linear_start: β at t = 0.
        linear_end: β at t = T − 1.
    """
    if int(num_timesteps) < 2:
        raise ValueError(f"num_timesteps must be an integer >= 2; got {num_timesteps!r}")
    if not (0.0 < linear_start < linear_end < 1.0):
        raise ValueError(
            f"linear_start and linear_end must satisfy 0 < linear_start < linear_end < 1; got "
            f"linear_start={linear_start!r}, "
            f"linear_end={linear_end!r}"
        )
    return torch.linspace(linear_start**0.5, linear_end**0.5, int(num_timesteps), dtype=torch.float64) ** 2


def rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Rescale ᾱ so the last step has zero SNR (Lin et al. 2023, "Common Diffusion Noise
    Schedules and Sample Steps are Flawed", Alg. 1), keeping ᾱ_0 unchanged.

    The last ᾱ is pinned to `ZSNR_LAST_ALPHA_CUMPROD` so that σ stays finite.
    """
    sqrt_ab = alphas_cumprod.double().sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    # 1. shift so the last step is zero, 2. scale so the first step keeps its value
    sqrt_ab = (sqrt_ab - last) * (first / (first - last))
    out = sqrt_ab**2
    out[-1] = ZSNR_LAST_ALPHA_CUMPROD
    return out


def ddpm_alphas_cumprod(
    num_timesteps: int = SD15_TIMESTEPS,
    linear_start: float = SD15_LINEAR_START,
    linear_end: float = SD15_LINEAR_END,
    zero_terminal_snr: bool = False,
) -> torch.Tensor:
    """ᾱ_t = Π_{i≤t} (1 − β_i), float64, optionally rescaled to zero terminal SNR."""
    alphas_cumprod = torch.cumprod(1.0 - ddpm_betas(num_timesteps, linear_start, linear_end), dim=0)
    if zero_terminal_snr:
        alphas_cumprod = rescale_zero_terminal_snr(alphas_cumprod)
    return alphas_cumprod


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """σ = sqrt((1 − ᾱ)/ᾱ): the k-diffusion (variance-exploding) noise level of a DDPM step."""
    return ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5


def alphas_cumprod_from_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Inverse of `sigmas_from_alphas_cumprod`: ᾱ = 1/(1 + σ²)."""
    return 1.0 / (1.0 + sigmas**2)


def flow_shift(t, shift: float):
    """Rectified-flow time shift σ' = k·t/(1 + (k − 1)·t) (SD3, Esser et al. 2024, eq. 23).

    Works on floats and tensors; k = 1 is the identity. Monotone increasing on [0, 1] for k > 0,
    with fixed points 0 and 1.
    """
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def flow_unshift(sigma, shift: float):
    """Inverse of `flow_shift`: t = σ/(k − (k − 1)·σ)."""
    if shift == 1.0:
        return sigma
    return sigma / (shift - (shift - 1) * sigma)


def check_shift(shift) -> float:
    """Validate a flow shift k: a finite number > 0."""
    return check_number("shift", shift, 0.0, lo_open=True, hint="Lune was trained at 2.0–2.5")
