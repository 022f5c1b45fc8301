"""Tile layouts, per-tile denoise scales and partition-of-unity feathering (pure torch).

Everything is in latent units; pixel inputs are converted with `downscale`.
Nothing here imports ComfyUI.
"""

from .feather import FALLOFFS, blend_map, blend_tiles, overlap_bands, tile_weights, tile_windows
from .layout import Tile, TileLayout, grid_layout
from .quadtree import CRITERIA, busyness, quadtree_layout
from .resize import area_resize, image_to_latent_size, mask_to_latent_size
from .scales import owners, scales_by_area, scales_from_mask, uniform_scales

__all__ = [
    "CRITERIA",
    "FALLOFFS",
    "Tile",
    "TileLayout",
    "area_resize",
    "blend_map",
    "blend_tiles",
    "busyness",
    "grid_layout",
    "image_to_latent_size",
    "mask_to_latent_size",
    "overlap_bands",
    "owners",
    "quadtree_layout",
    "scales_by_area",
    "scales_from_mask",
    "tile_weights",
    "tile_windows",
    "uniform_scales",
]
