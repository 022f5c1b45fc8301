"""Sampling maths in pure torch, written against `denoised` (the clean-latent estimate) only.

- `preserve`: per-pixel blend of the model's x0 with a clean original (blend / strength modes)
  and the exact write-back after the schedule.
- `tiled_eval`: MultiDiffusion-style tile-by-tile evaluation with skipping and batching.
- `plan`: tile layout + scales from node settings.
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
from .checks import check_fraction
from .flow import lune_sigmas, quantized_sigma, sample_lune_euler
from .handoff import ExpertHandoff, smoothstep
from .plan import LAYOUTS, SCALE_MODES, TilePlan, check_plan_inputs, make_plan
from .preserve import MODES, PreserveState, blend_x0, check_finite, check_mode, start_sigmas
from .tiled_eval import active_batches, active_tiles, crop_tiles, evaluate_tiled, repeat_rows, tile_args

__all__ = [
    "LAYOUTS", "MODES", "SCALE_MODES", "PreserveState", "TilePlan", "active_batches", "active_tiles", "blend_x0",
    "check_finite", "check_mode", "check_plan_inputs", "crop_tiles", "evaluate_tiled", "make_plan", "repeat_rows",
    "start_sigmas", "tile_args",
    "ddim_coefficients", "lune_sigmas", "nearest_timesteps", "posterior_coefficients", "quantized_sigma",
    "sample_epsilon_ddim", "sample_lune_euler", "sample_sol_ddpm", "seeded_noise_sampler",
    "ExpertHandoff", "check_fraction", "smoothstep",
]
