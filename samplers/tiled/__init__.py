"""The tiled img2img hook's maths, in pure torch (ComfyUI glue: nodes/tiled_hooks.py).

- `settings`: `TileSettings`, every tile setting once (default, range, choices, tooltip).
- `plan`: tile layout, per-tile scales, per-pixel scale map and feather weights from the settings.
- `preserve`: per-pixel blend of the model's x0 with the clean original (blend / strength modes)
  and the exact write-back after the schedule.
- `windows`: the active-window rule (which pixels a tiled evaluation sends through the model).
- `frames`: latents with a frame axis [B, C, 1, H, W] (planned over H and W, the original in the sampled layout).
- `run`: one sampling run's per-evaluation steps (the hook's maths, tested without ComfyUI).
- `evaluate`: MultiDiffusion-style evaluation of windows / tiles with batching, in float32.
"""

from .evaluate import active_tiles, evaluate_tiled, tile_args
from .plan import TilePlan, check_guides, make_plan
from .preserve import PreserveState
from .run import TiledRun, plan_windows
from .settings import TileSettings
from .windows import grow, window_set

__all__ = [
    "PreserveState",
    "TilePlan",
    "TileSettings",
    "TiledRun",
    "active_tiles",
    "check_guides",
    "evaluate_tiled",
    "grow",
    "make_plan",
    "plan_windows",
    "tile_args",
    "window_set",
]
