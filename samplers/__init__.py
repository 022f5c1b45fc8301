"""Sampling maths in pure torch, written against `denoised` (the clean-latent estimate) only.

- `tiled/`: the tiled img2img hook (tile plan, preservation, tiled evaluation).
- `ddpm`, `flow`: reference samplers (k-diffusion signature): Sol DDPM/DDIM, epsilon DDIM,
  Lune Euler and the Lune schedule.
- `handoff`: the two-expert handoff rule (switch / crossfade, each expert in its own frame).
"""

from .ddpm import sample_epsilon_ddim, sample_sol_ddpm
from .flow import lune_sigmas, sample_lune_euler
from .handoff import ExpertHandoff

__all__ = ["ExpertHandoff", "lune_sigmas", "sample_epsilon_ddim", "sample_lune_euler", "sample_sol_ddpm"]
