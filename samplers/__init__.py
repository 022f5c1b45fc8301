"""Reference samplers (pure torch, k-diffusion signature): Sol DDPM/DDIM, Lune Euler, epsilon DDIM."""

from .ddpm import (
    ddim_coefficients,
    nearest_timesteps,
    posterior_coefficients,
    sample_epsilon_ddim,
    sample_sol_ddpm,
    seeded_noise_sampler,
)
from .flow import lune_sigmas, quantized_sigma, sample_lune_euler

__all__ = [
    "ddim_coefficients", "lune_sigmas", "nearest_timesteps", "posterior_coefficients", "quantized_sigma",
    "sample_epsilon_ddim", "sample_lune_euler", "sample_sol_ddpm", "seeded_noise_sampler",
]
