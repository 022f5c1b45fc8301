"""Sampling maths in pure torch, written against `denoised` (the clean-latent estimate) only.

`preserve`: per-pixel blend of the model's x0 with a clean original (blend / strength modes) and
the exact write-back after the schedule. `tiled_eval`: MultiDiffusion-style tile-by-tile
evaluation with skipping and batching. `plan`: layout + scales from node settings.
"""

from .plan import LAYOUTS, SCALE_MODES, TilePlan, check_plan_inputs, make_plan
from .preserve import MODES, PreserveState, blend_x0, check_finite, check_mode, start_sigmas
from .tiled_eval import active_batches, active_tiles, crop_tiles, evaluate_tiled, repeat_rows, tile_args

__all__ = [
    "LAYOUTS",
    "MODES",
    "SCALE_MODES",
    "PreserveState",
    "TilePlan",
    "active_batches",
    "active_tiles",
    "blend_x0",
    "check_finite",
    "check_mode",
    "check_plan_inputs",
    "crop_tiles",
    "evaluate_tiled",
    "make_plan",
    "repeat_rows",
    "start_sigmas",
    "tile_args",
]
