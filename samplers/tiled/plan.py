"""The tile plan of a tiled img2img run: layout, per-tile scales, per-pixel scale map and weights.

`make_plan` turns a `TileSettings` (valid by construction) and the run's tensors into a `TilePlan`;
`check_guides` checks those tensors first (the nodes call it in `execute`, before anything is
patched), so `make_plan` trusts its inputs.

Scale modes (`settings.SCALE_MODES`):
  * "uniform": every tile gets `max_denoise` (`min_denoise` is unused).
  * "by_area": linear in tile area, `min_denoise` for the largest tiles, `max_denoise` for the
    smallest (a quadtree puts small tiles where the content is busy); a grid's equal tiles all
    get `max_denoise`.
  * "mask": `min_denoise + mean(mask) · (max_denoise − min_denoise)` over the part of the image
    each tile owns (where its feather weight is the largest); needs `denoise_mask`.
  * "pixel": per pixel, `min_denoise + (max_denoise − min_denoise) · mask` with the mask at the
    latent size, no tile feathering on top (the scale is as soft as the mask); needs
    `denoise_mask`. A mask with the latent's batch gives each sample its own map. A tile's entry
    in `scales` is the largest scale over its footprint (0: the tile is never evaluated).

Masks of any size are stretched to the latent as ComfyUI does (`tiling.mask_to_latent_size`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from ...checks import check_finite
from ...tiling import (
    TileLayout,
    blend_map,
    check_mask,
    grid_layout,
    image_to_latent_size,
    mask_to_latent_size,
    quadtree_layout,
    scales_by_area,
    scales_from_mask,
    tile_weights,
    uniform_scales,
)
from .settings import MASK_MODES, TileSettings

log = logging.getLogger(__name__)


def empty_mask_warning(min_denoise: float) -> str:
    """What an all-zero denoise_mask means for the user (mask and pixel modes map 0 to min_denoise)."""
    cause = (
        "LoadImage gives an empty 64×64 mask for a picture without transparency: right-click the Load Image "
        "node, open it in the Mask Editor and paint the area to change (white = change, black = keep)"
    )
    if min_denoise == 0:
        return (
            "Nothing will change: denoise_mask is all zero (an empty, all-black mask), and black means keep, so "
            f"every pixel keeps the original (min_denoise is 0). {cause}"
        )
    return (
        "denoise_mask is all zero (an empty, all-black mask): the whole image changes evenly at min_denoise "
        f"({min_denoise:g}) and nowhere at max_denoise. {cause}"
    )


@dataclass(frozen=True)
class TilePlan:
    """Layout, per-tile scales, per-pixel scale map and feather weights.

    `scale_map` is [H, W] (float32), or [B, H, W] for scale_mode pixel with a mask of the latent's
    batch B; `per_pixel` is True when the map comes from the mask pixel by pixel (scale_mode pixel).
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
    per_pixel: bool = False


def check_guides(settings: TileSettings, samples: torch.Tensor, downscale: int, denoise_mask=None, image=None) -> None:
    """Raise a ValueError naming the input if the latent, mask or image cannot build a plan."""
    if samples.dim() != 4:
        raise ValueError(f"latent must be an image LATENT [B, C, H, W]; got shape {tuple(samples.shape)}")
    check_finite("latent", samples)
    if settings.scale_mode in MASK_MODES and denoise_mask is None:
        raise ValueError(
            f"denoise_mask must be connected for scale_mode {settings.scale_mode!r} (a MASK: "
            f"1 = change, 0 = keep; any size); got none"
        )
    if settings.scale_mode not in MASK_MODES and denoise_mask is not None:
        raise ValueError(
            f"scale_mode must be 'mask' or 'pixel' when a denoise_mask is connected; got "
            f"{settings.scale_mode!r} (set scale_mode to 'mask' or 'pixel', or disconnect the mask)"
        )
    latent_h, latent_w = samples.shape[-2:]
    if denoise_mask is not None:
        check_mask(denoise_mask, samples.shape[0])  # any size; batch 1 or the latent's; values in [0, 1]
    if image is not None:
        expected = (latent_h * downscale, latent_w * downscale)
        if image.dim() != 4 or tuple(image.shape[1:3]) != expected:
            raise ValueError(
                f"image must be an IMAGE of the latent's pixel size {expected} (H, W); got shape {tuple(image.shape)}"
            )
        check_finite("image", image)


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
    settings: TileSettings,
    *,
    downscale: int = 8,
    align: int = 1,
    denoise_mask: torch.Tensor | None = None,
    content: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
) -> TilePlan:
    """Build the plan from checked inputs (`TileSettings`, `check_guides`).

    A grid's tile_width / tile_height are the largest tile size: tiles are shrunk evenly to the
    smallest size that keeps the same count and at least the requested overlap (`_fit_grid`).

    Args:
        latent_h, latent_w: Latent size.
        settings: The layout settings (the run settings are not used here).
        downscale: Pixels per latent unit; `align` the model's patch size in latent units.
        denoise_mask: MASK [H', W'] or [B', H', W'] of any size for scale_mode "mask" / "pixel" (B' is 1 or
            the latent's batch; checked by `check_guides`).
        content: Latent [B, C, H, W] that drives the quadtree when no `image` is given.
        image: IMAGE [B, H·downscale, W·downscale, C] that drives the quadtree (area-resized to the latent).
    """
    s = settings
    if s.layout == "grid":
        tiles = grid_layout(latent_h, latent_w, s.tile_width, s.tile_height, s.overlap, downscale, align)
        max_window = (max(t.h for t in tiles), max(t.w for t in tiles))
        tiles = _fit_grid(tiles, latent_h, latent_w, s.overlap, downscale, align)
    else:
        if image is not None:
            guide = image_to_latent_size(image, latent_h, latent_w)
        elif content is not None:
            guide = content
        else:
            raise ValueError("layout 'quadtree' needs content: the latent or an image")
        tiles = quadtree_layout(guide, s.min_tile, s.max_tile, s.threshold, s.criterion, downscale, align, s.overlap)
        max_window = (max(t.h for t in tiles), max(t.w for t in tiles))
    overlap = _window_overlap(s.overlap, downscale, align)
    if s.scale_mode == "uniform":
        scales = uniform_scales(tiles, s.max_denoise)
    elif s.scale_mode == "by_area":
        scales = scales_by_area(tiles, s.min_denoise, s.max_denoise)
    else:
        # the one intake of the user's mask: stretched to the latent, warnings logged once
        latent_mask = mask_to_latent_size(denoise_mask, latent_h, latent_w, downscale, per_sample=True)
        if not bool(denoise_mask.any()):
            log.warning(empty_mask_warning(s.min_denoise))
        if s.scale_mode == "pixel":
            return _pixel_plan(tiles, latent_mask, s.min_denoise, s.max_denoise, s.falloff, max_window, overlap)
        scales = scales_from_mask(tiles, latent_mask, s.min_denoise, s.max_denoise, s.falloff)
    scale_map = blend_map(tiles, scales, s.falloff, torch.float64)
    # exact 0 and 1 where every covering tile is 0 or 1 (the float64 sum of weights rounds)
    scale_map = scale_map.clamp(0, 1).to(torch.float32)
    for value in (0.0, 1.0):
        exact = blend_map(tiles, [float(x == value) for x in scales], s.falloff, torch.float64)
        scale_map = torch.where(exact >= 1 - 1e-9, torch.tensor(value), scale_map)
    return TilePlan(
        tiles,
        tuple(scales),
        scale_map,
        tuple(tile_weights(tiles, s.falloff, torch.float32)),
        max_window,
        overlap,
        s.falloff,
    )


def _window_overlap(overlap: int, downscale: int, align: int) -> int:
    """The user's overlap (pixels) in latent units, rounded up to the patch size."""
    return math.ceil(math.ceil(overlap / downscale) / align) * align


def _pixel_plan(
    tiles: TileLayout, mask: torch.Tensor, lo: float, hi: float, falloff: str, max_window: tuple[int, int], overlap: int
) -> TilePlan:
    """scale_mode pixel: scale = lerp(min, max, mask) per pixel ([B', H, W] float64 mask at the latent size).

    `torch.lerp` is exact at both ends, so mask 0 gives min_denoise and mask 1 max_denoise exactly.
    """
    scale = torch.lerp(torch.full_like(mask, lo), torch.full_like(mask, hi), mask).to(torch.float32)
    scale = scale[0] if scale.shape[0] == 1 else scale
    top = scale.reshape(-1, tiles.latent_h, tiles.latent_w).amax(dim=0)
    scales = tuple(float(top[t.slices].max()) for t in tiles.tiles)
    return TilePlan(
        tiles,
        scales,
        scale,
        tuple(tile_weights(tiles, falloff, torch.float32)),
        max_window,
        overlap,
        falloff,
        per_pixel=True,
    )
