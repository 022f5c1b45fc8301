"""Sampling maths in pure torch, written against `denoised` (the clean-latent estimate) only.

- `tiled/`: the tiled img2img hook (tile plan, preservation, tiled evaluation).
- `ddpm`, `flow`: reference samplers (k-diffusion signature): Sol DDPM/DDIM, epsilon DDIM,
  Lune Euler and the Lune schedule.
- `handoff`: the two-expert handoff rule (switch / crossfade, each expert in its own frame).
"""

from .ddpm import (
    ddim_coefficients,
    nearest_timesteps,
    posterior_coefficients,
    sample_epsilon_ddim,
    sample_sol_ddpm,
    seeded_noise_sampler,
)
from .flow import lune_sigmas, quantized_sigma, sample_lune_euler
from .handoff import ExpertHandoff, smoothstep

__all__ = [
    "ddim_coefficients", "lune_sigmas", "nearest_timesteps", "posterior_coefficients", "quantized_sigma",
    "sample_epsilon_ddim", "sample_lune_euler", "sample_sol_ddpm", "seeded_noise_sampler",
    "ExpertHandoff", "smoothstep",
]
