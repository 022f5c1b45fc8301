"""Feathered tile weights that form an exact partition of unity over the latent.

Each tile gets a separable window: 1 in its interior, falling off (cosine or
gaussian) across the band where it overlaps a neighbour, and flat on sides that
lie on the image edge, so the border has no artefacts. Windows are strictly
positive inside their tile, and normalised by their sum over all tiles, so the
weights add up to 1 at every latent pixel (to rounding: 1e-12 in float64).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from ..checks import check_choice
from .layout import TileLayout

FALLOFFS = ("cosine", "gaussian")

# Strictly positive floor of a raw window, so every covered pixel has weight.
WINDOW_FLOOR = 1e-6
# Width of the gaussian falloff, as a fraction of the overlap band.
GAUSSIAN_SIGMA = 0.3


@functools.lru_cache(maxsize=256)
def _ramp(band: int, falloff: str) -> np.ndarray:
    """Rising falloff over `band` pixels at centres t = (k + 0.5) / band, k < band (read-only)."""
    t = (np.arange(band, dtype=np.float64) + 0.5) / band
    if falloff == "cosine":
        ramp = 0.5 - 0.5 * np.cos(math.pi * t)
    else:
        ramp = np.exp(-0.5 * ((1.0 - t) / GAUSSIAN_SIGMA) ** 2)
    ramp.flags.writeable = False
    return ramp


def overlap_bands(layout: TileLayout) -> list[tuple[int, int, int, int]]:
    """Per tile, how deep other tiles reach in from each side: (top, bottom, left, right).

    A side on the image edge has band 0, as does a side whose neighbours only
    abut it. Otherwise the band is the deepest reach of a tile that crosses that
    side and overlaps this tile along the other axis, capped at the tile size.

    Args:
        layout: The tile layout.
    """
    y0, x0, y1, x1 = (np.array([getattr(t, k) for t in layout.tiles])[:, None] for k in ("y0", "x0", "y1", "x1"))
    h, w = y1 - y0, x1 - x0
    # [i, j]: tile j is another tile overlapping tile i across columns (rows)
    other = ~np.eye(len(layout.tiles), dtype=bool)
    across_x = other & (x0.T < x1) & (x1.T > x0)
    across_y = other & (y0.T < y1) & (y1.T > y0)

    def reach(crosses: np.ndarray, depth: np.ndarray, size: np.ndarray) -> np.ndarray:
        return np.minimum(np.where(crosses, depth, 0).max(axis=1), size[:, 0])

    top = reach(across_x & (y0.T < y0) & (y1.T > y0), y1.T - y0, h)
    bottom = reach(across_x & (y1.T > y1) & (y0.T < y1), y1 - y0.T, h)
    left = reach(across_y & (x0.T < x0) & (x1.T > x0), x1.T - x0, w)
    right = reach(across_y & (x1.T > x1) & (x0.T < x1), x1 - x0.T, w)
    return [tuple(int(v) for v in band) for band in zip(top, bottom, left, right)]


def _profile(size: int, near: int, far: int, falloff: str) -> np.ndarray:
    """1-D window of `size`: ramp up over `near`, 1 inside, ramp down over `far`."""
    p = np.ones(size, dtype=np.float64)
    if near:
        p[:near] *= _ramp(near, falloff)
    if far:
        p[size - far :] *= _ramp(far, falloff)[::-1]
    return p


def tile_windows(layout: TileLayout, falloff: str = "cosine") -> list[torch.Tensor]:
    """Raw (unnormalised) float64 windows [h, w], one per tile, each in (0, 1].

    Args:
        layout: The tile layout.
        falloff: "cosine" (0.5 - 0.5 cos(pi t)) or "gaussian"
            (exp(-(1 - t)^2 / (2 sigma^2)), sigma = GAUSSIAN_SIGMA), over t in (0, 1)
            across the overlap band.
    """
    check_choice("falloff", falloff, FALLOFFS)
    return [tile_window(tile, band, falloff) for tile, band in zip(layout.tiles, overlap_bands(layout))]


def tile_window(tile, band: tuple[int, int, int, int], falloff: str = "cosine") -> torch.Tensor:
    """The raw float64 window [h, w] of one tile with overlap `band` (top, bottom, left, right; see
    `overlap_bands`), in (0, 1]: for callers that build windows one tile at a time (bounded memory)."""
    top, bottom, left, right = band
    wy = _profile(tile.h, top, bottom, falloff)
    wx = _profile(tile.w, left, right, falloff)
    return torch.from_numpy(np.maximum(np.outer(wy, wx), WINDOW_FLOOR))


def tile_weights(layout: TileLayout, falloff: str = "cosine", dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Normalised weights [h, w] per tile: summed over tiles they are 1 at every pixel.

    The windows are divided by their float64 sum over all tiles, then cast to
    `dtype`. A pixel that only one tile covers gets weight exactly 1.

    Args:
        layout: The tile layout.
        falloff: "cosine" or "gaussian" (see `tile_windows`).
        dtype: Floating dtype of the returned weights.
    """
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype; got {dtype}")
    windows = tile_windows(layout, falloff)
    total = torch.zeros(layout.latent_h, layout.latent_w, dtype=torch.float64)
    for tile, window in zip(layout.tiles, windows):
        total[tile.slices] += window
    return [(window / total[tile.slices]).to(dtype) for tile, window in zip(layout.tiles, windows)]


def blend_map(
    layout: TileLayout,
    per_tile_values: Sequence[float] | torch.Tensor,
    falloff: str = "cosine",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The per-pixel feathered value [H, W] of one number per tile (e.g. the denoise scale).

    Where only one tile covers a pixel the result is exactly that tile's value;
    where only value-0 tiles cover it, exactly 0; elsewhere the weighted mean
    of the covering tiles' values. Computed in float64, returned as `dtype`.

    Args:
        layout: The tile layout.
        per_tile_values: One finite number per tile.
        falloff: "cosine" or "gaussian" (see `tile_windows`).
        dtype: Floating dtype of the result.
    """
    check_choice("falloff", falloff, FALLOFFS)
    values = torch.as_tensor(per_tile_values, dtype=torch.float64).flatten()
    if values.numel() != len(layout):
        raise ValueError(f"per_tile_values must hold one value per tile ({len(layout)}); got {values.numel()}")
    if not torch.isfinite(values).all():
        raise ValueError(f"per_tile_values must be finite; got {values.tolist()}")
    out = torch.zeros(layout.latent_h, layout.latent_w, dtype=torch.float64)
    for tile, weight, value in zip(layout.tiles, tile_weights(layout, falloff, torch.float64), values):
        out[tile.slices] += weight * value
    return out.to(dtype)
