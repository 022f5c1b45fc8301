"""Per-tile denoise scales in [0, 1]: one number per tile of a `TileLayout`.

Scales stay beside the layout (a tuple of floats in tile order); `blend_map`
turns them into a per-pixel map.
"""

from __future__ import annotations

import torch

from ..checks import check_number, check_order
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


def scales_from_mask(
    layout: TileLayout,
    mask: torch.Tensor,
    min_denoise: float = 0.0,
    max_denoise: float = 1.0,
) -> tuple[float, ...]:
    """Scales from a MASK: `min_denoise + mean * (max_denoise - min_denoise)` per tile.

    The mask is brought to the latent size (stretched as ComfyUI does, a batch averaged, see
    `mask_to_latent_size`), then averaged over each tile's full footprint.

    Args:
        layout: The tile layout.
        mask: MASK [H, W] or [B, H, W] of any size, values in [0, 1]; 1 means "change this".
        min_denoise: Scale where the mask is 0, in [0, 1].
        max_denoise: Scale where the mask is 1, in [min_denoise, 1].
    """
    lo, hi = _check_range(min_denoise, max_denoise)
    m = mask_to_latent_size(mask, layout.latent_h, layout.latent_w, layout.downscale, warn=False)  # the plan warns
    means = [float(m[tile.slices].mean()) for tile in layout.tiles]
    return tuple(lo + mean * (hi - lo) for mean in means)
