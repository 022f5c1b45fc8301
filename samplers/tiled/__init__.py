"""The tiled img2img hook's maths, in pure torch (ComfyUI glue: nodes/tiled_hooks.py).

- `settings`: `TileSettings`, every tile setting once (default, range, choices, tooltip).
- `plan`: tile layout, per-tile scales, per-pixel scale map and feather weights from the settings.
- `preserve`: per-pixel blend of the model's x0 with the clean original (blend / strength modes)
  and the exact write-back after the schedule.
- `windows`: the active-window rule (which pixels a tiled evaluation sends through the model).
- `run`: one sampling run's per-evaluation steps (the hook's maths, tested without ComfyUI).
- `evaluate`: MultiDiffusion-style evaluation of windows / tiles with batching, in float32.
"""

from .evaluate import active_batches, active_tiles, crop_tiles, evaluate_tiled, evaluate_windows, repeat_rows, tile_args
from .plan import TilePlan, check_guides, make_plan
from .preserve import Phase, PreserveState, blend_x0, start_sigmas
from .run import TiledRun
from .settings import LAYOUTS, MODES, SCALE_MODES, Setting, TileSettings
from .windows import WindowSet, cover, grow, window_set

__all__ = [
    "LAYOUTS", "MODES", "SCALE_MODES", "Phase", "PreserveState", "Setting", "TilePlan", "TileSettings", "TiledRun",
    "WindowSet", "active_batches", "active_tiles", "blend_x0", "check_guides", "cover", "crop_tiles", "evaluate_tiled",
    "evaluate_windows", "grow", "make_plan", "repeat_rows", "start_sigmas", "tile_args", "window_set",
]
