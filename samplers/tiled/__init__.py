"""The tiled img2img hook's maths, in pure torch (ComfyUI glue: nodes/tiled_hooks.py).

- `plan`: tile layout, per-tile scales, per-pixel scale map and feather weights from the settings.
- `preserve`: per-pixel blend of the model's x0 with the clean original (blend / strength modes)
  and the exact write-back after the schedule.
- `windows`: the active-window rule (which pixels a tiled evaluation sends through the model).
- `run`: one sampling run's per-evaluation steps (the hook's maths, tested without ComfyUI).
- `evaluate`: MultiDiffusion-style evaluation of windows / tiles with batching, in float32.
"""

from .evaluate import active_batches, active_tiles, crop_tiles, evaluate_tiled, evaluate_windows, repeat_rows, tile_args
from .plan import LAYOUTS, SCALE_MODES, TilePlan, check_plan_inputs, make_plan
from .preserve import MODES, Phase, PreserveState, blend_x0, check_finite, check_mode, start_sigmas
from .run import TiledRun
from .windows import WindowSet, cover, grow, window_set

__all__ = [
    "LAYOUTS", "MODES", "SCALE_MODES", "Phase", "PreserveState", "TilePlan", "TiledRun", "WindowSet", "active_batches",
    "active_tiles", "blend_x0", "check_finite", "check_mode", "check_plan_inputs", "cover", "crop_tiles",
    "evaluate_tiled", "evaluate_windows", "grow", "make_plan", "repeat_rows", "start_sigmas", "tile_args",
    "window_set",
]
