"""Lune's rectified-flow Euler sampler and its σ schedule (pure torch).

Lune's recipe: σ = linspace(1, 0, steps + 1) shifted with σ' = k·σ/(1 + (k − 1)·σ), the network
called at timestep 1000·σ (its authors' script rounds it to an integer), and the Euler step
x ← x − v·(σ − σ_next) with the flow velocity v. Through the k-diffusion interface the model
returns x0 = x − σ·v, so v = (x − x0)/σ.
"""

from __future__ import annotations

import torch

from ..checks import check_int, check_number
from ..velocity import check_shift, flow_shift


def lune_sigmas(steps: int, shift: float = 2.0, denoise: float = 1.0) -> torch.Tensor:
    """Lune's schedule: flow_shift(linspace(1, 0, N + 1), k), float32.

    With denoise < 1 (img2img) N = int(steps/denoise) and the last steps + 1 values are kept,
    as ComfyUI's BasicScheduler does.
    """
    steps = check_int("steps", steps, 1)
    shift = check_shift(shift)
    denoise = check_number("denoise", denoise, 0.0, 1.0, lo_open=True)
    total = steps if denoise >= 1.0 else int(steps / float(denoise))
    t = torch.linspace(1.0, 0.0, total + 1, dtype=torch.float64)
    return flow_shift(t, shift)[-(steps + 1) :].float()


def quantized_sigma(sigma: float, multiplier: float = 1000.0) -> float:
    """σ whose timestep multiplier·σ is the nearest integer (at least 1, so that σ > 0 stays > 0)."""
    return max(1.0, float(round(sigma * multiplier))) / multiplier


@torch.no_grad()
def sample_lune_euler(
    model, x, sigmas, extra_args=None, callback=None, disable=None, quantize_timesteps=False, multiplier=1000.0
):
    """Euler on the rectified-flow ODE, Lune's recipe; optionally with integer timesteps."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        sigma_eval = sigma
        if quantize_timesteps:
            sigma_eval = torch.as_tensor(
                quantized_sigma(float(sigma), multiplier), dtype=sigmas.dtype, device=sigmas.device
            )
        denoised = model(x, sigma_eval * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_eval, "denoised": denoised})
        v = (x - denoised) / sigma_eval
        x = x + v * (sigma_next - sigma)
    return x


__all__ = ["lune_sigmas", "quantized_sigma", "sample_lune_euler"]
