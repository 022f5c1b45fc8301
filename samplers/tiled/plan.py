"""The tile plan of a tiled img2img run: layout, per-tile scales, per-pixel scale map and weights.

`make_plan` turns node-level settings into a `TilePlan`; `check_plan_inputs` validates them first
and returns the message for the first problem (so nodes can use it in `validate_inputs` too).

Scale modes:
  * "uniform": every tile gets `max_denoise` (`min_denoise` is unused).
  * "by_area": linear in tile area, `min_denoise` for the largest tiles, `max_denoise` for the
    smallest (a quadtree puts small tiles where the content is busy); a grid's equal tiles all
    get `max_denoise`.
  * "mask": `min_denoise + mean(mask) · (max_denoise − min_denoise)` over the part of the image
    each tile owns (where its feather weight is the largest); needs `denoise_mask`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...tiling import (
    CRITERIA,
    FALLOFFS,
    TileLayout,
    blend_map,
    grid_layout,
    image_to_latent_size,
    mask_to_latent_size,
    quadtree_layout,
    scales_by_area,
    scales_from_mask,
    tile_weights,
    uniform_scales,
)
from ..checks import check_fraction

LAYOUTS = ("grid", "quadtree")
SCALE_MODES = ("uniform", "by_area", "mask")


@dataclass(frozen=True)
class TilePlan:
    """Layout, per-tile scales, per-pixel scale map [H, W] (float32) and feather weights.

    `max_window` is the largest evaluation window (h, w) in latent units: the user's tile size
    (a grid's requested tiles, before they are shrunk to fit; a quadtree's largest tile), and
    `overlap` the user's overlap in latent units; the tiled evaluation's windows use both and the
    `falloff` for their own feather.
    """

    layout: TileLayout
    scales: tuple[float, ...]
    scale_map: torch.Tensor
    weights: tuple[torch.Tensor, ...]
    max_window: tuple[int, int] | None = None
    overlap: int = 0
    falloff: str = "cosine"


def _combo(name: str, value, options) -> str | None:
    if value is not None and value not in options:
        return f"{name} must be one of {', '.join(options)}; got {value!r}"
    return None


def check_plan_inputs(min_denoise=None, max_denoise=None, layout=None, scale_mode=None, falloff=None, criterion=None,
                      has_mask=None, mode=None) -> str | None:
    """The message for the first bad setting, or None. `None` values (not yet known) pass."""
    from .preserve import MODES

    for name, value, options in (("layout", layout, LAYOUTS), ("scale_mode", scale_mode, SCALE_MODES),
                                 ("falloff", falloff, FALLOFFS), ("criterion", criterion, CRITERIA), ("mode", mode, MODES)):
        error = _combo(name, value, options)
        if error:
            return error
    for name, value in (("min_denoise", min_denoise), ("max_denoise", max_denoise)):
        if value is not None:
            try:
                check_fraction(name, value)
            except ValueError as err:
                return str(err)
    if min_denoise is not None and max_denoise is not None and min_denoise > max_denoise:
        return f"min_denoise must be <= max_denoise; got min_denoise={min_denoise} > max_denoise={max_denoise}"
    if has_mask is not None and scale_mode is not None:
        if scale_mode == "mask" and not has_mask:
            return "scale_mode 'mask' needs a denoise_mask input; connect a MASK or pick uniform / by_area"
        if scale_mode != "mask" and has_mask:
            return f"a denoise_mask is connected but scale_mode is {scale_mode!r}; set scale_mode to 'mask' or disconnect the mask"
    return None


def _fit_grid(tiles: TileLayout, latent_h: int, latent_w: int, overlap: int, downscale: int, align: int) -> TileLayout:
    """Shrink a grid's tiles evenly to the smallest size that keeps the tile count and the overlap.

    `tile_width` / `tile_height` are the largest tiles; with the count fixed, smaller tiles only
    cut the overlap back towards the requested one, so the evaluated area is as small as the
    count allows: per axis (n·t) / L = 1 + (n − 1)·overlap / L.
    """
    ov = math.ceil(overlap / downscale)
    sizes = []
    for length, count in ((latent_h, len({t.y0 for t in tiles.tiles})), (latent_w, len({t.x0 for t in tiles.tiles}))):
        if count == 1:
            sizes.append(length * downscale)
            continue
        fit = math.ceil(math.ceil((length + (count - 1) * ov) / count) / align) * align
        sizes.append(fit * downscale)
    fitted = grid_layout(latent_h, latent_w, sizes[1], sizes[0], overlap, downscale, align)
    return fitted if len(fitted) <= len(tiles) else tiles


def make_plan(
    latent_h: int,
    latent_w: int,
    *,
    min_denoise: float,
    max_denoise: float,
    layout: str = "grid",
    scale_mode: str = "uniform",
    tile_width: int = 768,
    tile_height: int = 768,
    overlap: int = 64,
    falloff: str = "cosine",
    min_tile: int = 256,
    max_tile: int = 1024,
    threshold: float = 0.02,
    criterion: str = "variance",
    downscale: int = 8,
    align: int = 1,
    denoise_mask: torch.Tensor | None = None,
    content: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
) -> TilePlan:
    """Build the plan; raises ValueError naming the input on any bad setting.

    A grid's tile_width / tile_height are the largest tile size: tiles are shrunk evenly to the
    smallest size that keeps the same count and at least the requested overlap (`_fit_grid`).

    Args:
        latent_h, latent_w: Latent size.
        content: Latent [B, C, H, W] that drives the quadtree when no `image` is given.
        image: IMAGE [B, H', W', C] that drives the quadtree (any size with the latent's aspect;
            it is area-resized to the latent). Must be H·downscale × W·downscale.
        Others: see the node inputs (pixels for sizes, `downscale` pixels per latent unit,
            `align` the model's patch size in latent units).
    """
    error = check_plan_inputs(min_denoise, max_denoise, layout, scale_mode, falloff, criterion, denoise_mask is not None)
    if error:
        raise ValueError(error)
    if layout == "grid":
        tiles = grid_layout(latent_h, latent_w, tile_width, tile_height, overlap, downscale, align)
        max_window = (max(t.h for t in tiles), max(t.w for t in tiles))
        tiles = _fit_grid(tiles, latent_h, latent_w, overlap, downscale, align)
    else:
        if image is not None:
            expected = (latent_h * downscale, latent_w * downscale)
            if image.dim() != 4 or tuple(image.shape[1:3]) != expected:
                raise ValueError(
                    f"image must be an IMAGE of the latent's pixel size {expected} (H, W); got shape {tuple(image.shape)}"
                )
            guide = image_to_latent_size(image, latent_h, latent_w)
        elif content is not None:
            guide = content
        else:
            raise ValueError("layout 'quadtree' needs content: the latent or an image")
        tiles = quadtree_layout(guide, min_tile, max_tile, float(threshold), criterion, downscale, align, overlap)
        max_window = (max(t.h for t in tiles), max(t.w for t in tiles))
    if scale_mode == "uniform":
        scales = uniform_scales(tiles, max_denoise)
    elif scale_mode == "by_area":
        scales = scales_by_area(tiles, min_denoise, max_denoise)
    else:
        mask_to_latent_size(denoise_mask, latent_h, latent_w, downscale)  # validates size and range
        scales = scales_from_mask(tiles, denoise_mask, min_denoise, max_denoise, falloff)
    scale_map = blend_map(tiles, scales, falloff, torch.float64)
    # exact 0 and 1 where every covering tile is 0 or 1 (the float64 sum of weights rounds)
    scale_map = scale_map.clamp(0, 1).to(torch.float32)
    for value in (0.0, 1.0):
        exact = blend_map(tiles, [float(s == value) for s in scales], falloff, torch.float64)
        scale_map = torch.where(exact >= 1 - 1e-9, torch.tensor(value), scale_map)
    ov = math.ceil(math.ceil(overlap / downscale) / align) * align
    return TilePlan(tiles, tuple(scales), scale_map, tuple(tile_weights(tiles, falloff, torch.float32)), max_window, ov, falloff)
