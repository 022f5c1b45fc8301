"""The tiled img2img hook's maths, in pure torch (ComfyUI glue: nodes/tiled_hooks.py).

- `settings`: `TileSettings`, every tile setting once (default, range, choices, tooltip).
- `plan`: tile layout, per-tile scales, per-pixel scale map and feather weights from the settings.
- `preserve`: per-pixel blend of the model's x0 with the clean original (blend / strength modes)
  and the exact write-back after the schedule.
- `evaluate`: MultiDiffusion-style tile-by-tile evaluation with skipping and batching.
"""

from .evaluate import active_tiles, evaluate_tiled, tile_args
from .plan import TilePlan, check_guides, make_plan
from .preserve import PreserveState
from .settings import TileSettings

__all__ = ["PreserveState", "TilePlan", "TileSettings", "active_tiles", "check_guides", "evaluate_tiled", "make_plan",
           "tile_args"]
