"""The tiled img2img hook's maths, in pure torch (ComfyUI glue: nodes/tiled_hooks.py).

- `settings`: `TileSettings`, every tile setting once (default, range, choices, tooltip).
- `plan`: tile layout, per-tile scales, per-pixel scale map and feather weights from the settings.
- `preserve`: per-pixel blend of the model's x0 with the clean original (blend / strength modes)
  and the exact write-back after the schedule.
- `evaluate`: MultiDiffusion-style tile-by-tile evaluation with skipping and batching.
"""

from .evaluate import active_batches, active_tiles, crop_tiles, evaluate_tiled, repeat_rows, tile_args
from .plan import TilePlan, check_guides, make_plan
from .preserve import PreserveState, blend_x0, start_sigmas
from .settings import LAYOUTS, MODES, SCALE_MODES, Setting, TileSettings

__all__ = [
    "LAYOUTS", "MODES", "SCALE_MODES", "PreserveState", "Setting", "TilePlan", "TileSettings", "active_batches",
    "active_tiles", "blend_x0", "check_guides", "crop_tiles", "evaluate_tiled", "make_plan", "repeat_rows",
    "start_sigmas", "tile_args",
]
