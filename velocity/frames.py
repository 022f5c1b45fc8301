"""Converting a state between the DDPM frame and the flow frame.

DDPM frame: x = x0 + σ·ε with σ = sqrt((1 − ᾱ)/ᾱ).  Flow frame: x = (1 − t)·x0 + t·ε.
The same (x0, ε) at the same signal-to-noise ratio: t = σ/(1 + σ), x_flow = x/(1 + σ);
back: σ = t/(1 − t), x = x_flow/(1 − t).
"""

from __future__ import annotations

import torch

from .prediction import _view

FRAMES = ("ddpm", "flow")


def ddpm_sigma_to_flow_t(sigma):
    """σ (DDPM frame) → t (flow frame) with the same SNR: t = σ/(1 + σ)."""
    return sigma / (1 + sigma)


def flow_t_to_ddpm_sigma(t):
    """t (flow frame) → σ (DDPM frame): σ = t/(1 − t)."""
    return t / (1 - t)


def ddpm_to_flow(x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
    """A DDPM-frame state (x, σ) → the flow-frame state (x_flow, t)."""
    s = _view(sigma, x.ndim, x)
    t = sigma / (1 + sigma) if torch.is_tensor(sigma) else torch.tensor(sigma / (1 + sigma))
    return x / (1 + s), t


def flow_to_ddpm(x_flow: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    """A flow-frame state (x_flow, t) → the DDPM-frame state (x, σ)."""
    tt = _view(t, x_flow.ndim, x_flow)
    sigma = t / (1 - t) if torch.is_tensor(t) else torch.tensor(t / (1 - t))
    return x_flow / (1 - tt), sigma


def convert_state(x: torch.Tensor, sigma, src: str, dst: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Express state (x, σ) of frame `src` in frame `dst` ("ddpm" or "flow"); same x0 and ε."""
    for name, value in (("src", src), ("dst", dst)):
        if value not in FRAMES:
            raise ValueError(f"{name} frame must be one of {', '.join(FRAMES)}; got {value!r}")
    if not torch.is_tensor(sigma):
        sigma = torch.tensor(float(sigma), dtype=x.dtype)
    if src == dst:
        return x, sigma
    if src == "ddpm":
        return ddpm_to_flow(x, sigma)
    return flow_to_ddpm(x, sigma)
