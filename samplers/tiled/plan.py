"""The tile plan of a tiled img2img run: layout, per-tile scales, per-pixel scale map and weights.

`make_plan` turns node-level settings into a `TilePlan`; `check_plan_inputs` validates them first
and returns the message for the first problem (so nodes can use it in `validate_inputs` too).

Scale modes:
  * "uniform": every tile gets `max_denoise` (`min_denoise` is unused).
  * "by_area": linear in tile area, `min_denoise` for the largest tiles, `max_denoise` for the
    smallest (a quadtree puts small tiles where the content is busy); a grid's equal tiles all
    get `max_denoise`.
  * "mask": `min_denoise + mean(mask) · (max_denoise − min_denoise)` over each tile; needs
    `denoise_mask`.
  * "pixel": per pixel, `min_denoise + (max_denoise − min_denoise) · mask` with the mask at the
    latent size, no tile feathering on top (the scale is as soft as the mask); needs
    `denoise_mask`. A mask with the latent's batch gives each sample its own map. A tile's entry
    in `scales` is the largest scale over its footprint (0: the tile is never evaluated).

Masks of any size are stretched to the latent as ComfyUI does (`tiling.mask_to_latent_size`).
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
SCALE_MODES = ("uniform", "by_area", "mask", "pixel")
MASK_MODES = ("mask", "pixel")


@dataclass(frozen=True)
class TilePlan:
    """Layout, per-tile scales, per-pixel scale map and feather weights.

    `scale_map` is [H, W] (float32), or [B, H, W] for scale_mode pixel with a mask of the latent's
    batch B; `per_pixel` is True when the map comes from the mask pixel by pixel (scale_mode pixel).
    """

    layout: TileLayout
    scales: tuple[float, ...]
    scale_map: torch.Tensor
    weights: tuple[torch.Tensor, ...]
    per_pixel: bool = False


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
        if scale_mode in MASK_MODES and not has_mask:
            return (f"denoise_mask must be connected for scale_mode {scale_mode!r} (a MASK: 1 = change, 0 = keep; "
                    f"any size); got none")
        if scale_mode not in MASK_MODES and has_mask:
            return (f"a denoise_mask is connected but scale_mode is {scale_mode!r}; set scale_mode to 'mask' or "
                    f"'pixel', or disconnect the mask")
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
    batch: int | None = None,
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
        batch: The latent's batch; a denoise_mask's batch must be 1 or this.
        denoise_mask: MASK [H', W'] or [B', H', W'] of any size (scale_mode mask / pixel).
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
    if scale_mode == "uniform":
        scales = uniform_scales(tiles, max_denoise)
    elif scale_mode == "by_area":
        scales = scales_by_area(tiles, min_denoise, max_denoise)
    else:
        # the one intake of the user's mask: checks, stretches to the latent, warns once
        per_sample = mask_to_latent_size(denoise_mask, latent_h, latent_w, downscale, batch=batch, per_sample=True)
        if scale_mode == "pixel":
            return _pixel_plan(tiles, per_sample, min_denoise, max_denoise, falloff)
        scales = scales_from_mask(tiles, denoise_mask, min_denoise, max_denoise)
    scale_map = blend_map(tiles, scales, falloff, torch.float64)
    # exact 0 and 1 where every covering tile is 0 or 1 (the float64 sum of weights rounds)
    scale_map = scale_map.clamp(0, 1).to(torch.float32)
    for value in (0.0, 1.0):
        exact = blend_map(tiles, [float(s == value) for s in scales], falloff, torch.float64)
        scale_map = torch.where(exact >= 1 - 1e-9, torch.tensor(value), scale_map)
    return TilePlan(tiles, tuple(scales), scale_map, tuple(tile_weights(tiles, falloff, torch.float32)))


def _pixel_plan(tiles: TileLayout, mask: torch.Tensor, lo: float, hi: float, falloff: str) -> TilePlan:
    """scale_mode pixel: scale = lerp(min, max, mask) per pixel ([B', H, W] float64 mask at the latent size).

    `torch.lerp` is exact at both ends, so mask 0 gives min_denoise and mask 1 max_denoise exactly.
    """
    scale = torch.lerp(torch.full_like(mask, lo), torch.full_like(mask, hi), mask).to(torch.float32)
    scale = scale[0] if scale.shape[0] == 1 else scale
    top = scale.reshape(-1, tiles.latent_h, tiles.latent_w).amax(dim=0)
    scales = tuple(float(top[t.slices].max()) for t in tiles.tiles)
    return TilePlan(tiles, scales, scale, tuple(tile_weights(tiles, falloff, torch.float32)), per_pixel=True)
