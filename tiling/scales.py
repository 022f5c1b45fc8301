"""Per-tile denoise scales in [0, 1]: one number per tile of a `TileLayout`.

Scales stay beside the layout (a tuple of floats in tile order); `blend_map`
turns them into a per-pixel map.
"""

from __future__ import annotations

import torch

from ..checks import check_number, check_order
from .feather import tile_weights
from .layout import TileLayout
from .resize import mask_to_latent_size


def _check_range(min_denoise: object, max_denoise: object) -> tuple[float, float]:
    lo = check_number("min_denoise", min_denoise, 0.0, 1.0)
    hi = check_number("max_denoise", max_denoise, 0.0, 1.0)
    check_order("min_denoise", lo, "max_denoise", hi)
    return lo, hi


def uniform_scales(layout: TileLayout, denoise: float = 1.0) -> tuple[float, ...]:
    """The same scale `denoise` for every tile.

    Args:
        layout: The tile layout.
        denoise: The scale, in [0, 1].
    """
    value = check_number("denoise", denoise, 0.0, 1.0)
    return (value,) * len(layout)


def scales_by_area(layout: TileLayout, min_denoise: float, max_denoise: float) -> tuple[float, ...]:
    """Scales linear in tile area: `min_denoise` for the largest, `max_denoise` for the smallest.

    Small tiles sit where the content is busy (quadtree), so they are allowed
    more change. Areas are `layout.areas` (a quadtree's leaves, before overlap).
    When every tile has the same area there is no "largest" to hold back, so all
    tiles get `max_denoise`.

    Args:
        layout: The tile layout.
        min_denoise: Scale of the largest tiles, in [0, 1].
        max_denoise: Scale of the smallest tiles, in [min_denoise, 1].
    """
    lo, hi = _check_range(min_denoise, max_denoise)
    areas = layout.areas
    smallest, largest = min(areas), max(areas)
    if largest == smallest:
        return (hi,) * len(layout)
    return tuple(hi - (a - smallest) / (largest - smallest) * (hi - lo) for a in areas)


def owners(layout: TileLayout, falloff: str = "cosine") -> torch.Tensor:
    """Per latent pixel, the index of the tile that owns it: the one whose feather weight is largest.

    Ties (equal weights, e.g. the middle pixel of an odd overlap band) go to the earlier tile.
    Returns an int64 map [latent_h, latent_w].
    """
    best = torch.full((layout.latent_h, layout.latent_w), -1.0, dtype=torch.float64)
    owner = torch.zeros(layout.latent_h, layout.latent_w, dtype=torch.int64)
    for i, (tile, weight) in enumerate(zip(layout.tiles, tile_weights(layout, falloff, torch.float64))):
        region, own = best[tile.slices], owner[tile.slices]
        larger = weight > region
        region[larger] = weight[larger]
        own[larger] = i
    return owner


def scales_from_mask(
    layout: TileLayout,
    mask: torch.Tensor,
    min_denoise: float = 0.0,
    max_denoise: float = 1.0,
    falloff: str = "cosine",
) -> tuple[float, ...]:
    """Scales from a MASK: `min_denoise + mean * (max_denoise - min_denoise)` per tile.

    The mask is brought to the latent size (stretched as ComfyUI does, a batch averaged, see
    `mask_to_latent_size`), then averaged over the part of the image each tile owns: the pixels
    where its feather weight is the largest (`owners`). A tile whose own part the mask leaves at 0
    gets `min_denoise`, however much of its overlap with a neighbour the mask covers, so with
    `min_denoise` 0 it can be skipped. A tile that owns no pixel (every pixel of it weighs more in
    another tile) takes the mean over its whole footprint.

    Args:
        layout: The tile layout.
        mask: MASK [H, W] or [B, H, W] of any size, values in [0, 1]; 1 means "change this".
        min_denoise: Scale where the mask is 0, in [0, 1].
        max_denoise: Scale where the mask is 1, in [min_denoise, 1].
        falloff: The plan's feather shape, which decides ownership in the overlaps.
    """
    lo, hi = _check_range(min_denoise, max_denoise)
    m = mask_to_latent_size(mask, layout.latent_h, layout.latent_w, layout.downscale, warn=False)  # the plan warns
    owner = owners(layout, falloff)
    means = []
    for i, tile in enumerate(layout.tiles):
        own = owner[tile.slices] == i
        part = m[tile.slices]
        means.append(float(part[own].mean()) if bool(own.any()) else float(part.mean()))
    return tuple(lo + mean * (hi - lo) for mean in means)
