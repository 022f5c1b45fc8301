"""Tile layouts, per-tile denoise scales and partition-of-unity feathering (pure torch).

Everything is in latent units; pixel inputs are converted with `downscale`.
Nothing here imports ComfyUI.

- `layout`: `Tile`, `TileLayout` and the grid layout.
- `quadtree`: the content-adaptive layout.
- `feather`: per-tile feather weights that sum to 1, and per-pixel maps of per-tile values.
- `scales`: per-tile denoise scales (uniform, by area, from a mask).
- `resize`: images and masks to the latent size.
"""

from .feather import FALLOFFS, blend_map, overlap_bands, tile_weights, tile_window, tile_windows
from .layout import Tile, TileLayout, grid_layout
from .quadtree import CRITERIA, quadtree_layout
from .resize import check_mask, image_to_latent_size, mask_to_latent_size
from .scales import scales_by_area, scales_from_mask, uniform_scales

__all__ = [
    "CRITERIA",
    "FALLOFFS",
    "Tile",
    "TileLayout",
    "blend_map",
    "check_mask",
    "grid_layout",
    "image_to_latent_size",
    "mask_to_latent_size",
    "overlap_bands",
    "quadtree_layout",
    "scales_by_area",
    "scales_from_mask",
    "tile_weights",
    "tile_window",
    "tile_windows",
    "uniform_scales",
]
