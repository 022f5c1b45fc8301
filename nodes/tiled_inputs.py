"""Tiling inputs shared by SoluneTiledImg2Img, SoluneTiledSampler and SoluneTileMap."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..samplers.tiled import LAYOUTS, MODES, SCALE_MODES, TilePlan, check_finite, check_plan_inputs, make_plan
from ..tiling import CRITERIA, FALLOFFS

DEFAULTS = {
    "min_denoise": 0.3,
    "max_denoise": 0.6,
    "layout": "grid",
    "scale_mode": "uniform",
    "mode": "blend",
    "tile_width": 768,
    "tile_height": 768,
    "overlap": 64,
    "falloff": "cosine",
    "min_tile": 256,
    "max_tile": 1024,
    "threshold": 0.02,
    "criterion": "variance",
    "tiled_model": False,
    "tile_batch_size": 4,
}


def layout_inputs() -> list:
    """min/max denoise, layout, scale_mode, tile geometry, falloff and quadtree knobs."""
    d = DEFAULTS
    return [
        io.Float.Input("min_denoise", default=d["min_denoise"], min=0.0, max=1.0, step=0.01,
                       tooltip="Smallest denoise scale (by_area: the largest tiles; mask, pixel: where the mask is 0). "
                               "Unused by uniform."),
        io.Float.Input("max_denoise", default=d["max_denoise"], min=0.0, max=1.0, step=0.01,
                       tooltip="Largest denoise scale (uniform: every tile; by_area: the smallest tiles; mask, pixel: "
                               "where the mask is 1)."),
        io.Combo.Input("layout", options=list(LAYOUTS), default=d["layout"],
                       tooltip="grid: equal tiles of tile_width × tile_height. quadtree: small tiles where the image (or latent) is busy, large where it is flat."),
        io.Combo.Input("scale_mode", options=list(SCALE_MODES), default=d["scale_mode"],
                       tooltip="How tiles get their scale. uniform: max_denoise everywhere. by_area: small tiles max_denoise, the largest min_denoise. mask: mean of denoise_mask per tile, mapped to [min_denoise, max_denoise]. "
                               "pixel: every pixel its own scale min + (max − min)·mask, as soft as the mask "
                               "(no tile feathering)."),
        io.Int.Input("tile_width", default=d["tile_width"], min=16, max=16384, step=8,
                     tooltip="Grid tile width in pixels (rounded down to the model's latent factor and patch size; clamped to the image with a log note)."),
        io.Int.Input("tile_height", default=d["tile_height"], min=16, max=16384, step=8,
                     tooltip="Grid tile height in pixels (rounded like tile_width)."),
        io.Int.Input("overlap", default=d["overlap"], min=0, max=4096, step=8,
                     tooltip="Minimum overlap between neighbouring tiles in pixels; scales and model outputs are feathered across it."),
        io.Combo.Input("falloff", options=list(FALLOFFS), default=d["falloff"],
                       tooltip="Shape of the feather across overlaps; the weights always sum to exactly 1."),
        io.Int.Input("min_tile", default=d["min_tile"], min=16, max=16384, step=8,
                     tooltip="Quadtree: smallest tile side in pixels."),
        io.Int.Input("max_tile", default=d["max_tile"], min=16, max=16384, step=8,
                     tooltip="Quadtree: largest tile side in pixels."),
        io.Float.Input("threshold", default=d["threshold"], min=0.0, max=1000.0, step=0.001,
                       tooltip="Quadtree: split a tile while its busyness (criterion) exceeds this."),
        io.Combo.Input("criterion", options=list(CRITERIA), default=d["criterion"],
                       tooltip="Quadtree busyness: variance of the pixels, or gradient energy."),
    ]


def run_inputs() -> list:
    """mode, tiled_model, tile_batch_size."""
    d = DEFAULTS
    return [
        io.Combo.Input("mode", options=list(MODES), default=d["mode"],
                       tooltip="blend: every step x0 = m·model + (1−m)·original. strength: a tile of scale m is a stock img2img at denoise m inside this schedule (held on the re-noised original until its start)."),
        io.Boolean.Input("tiled_model", default=d["tiled_model"],
                         tooltip="Evaluate the model tile by tile (MultiDiffusion): less memory on large images, and tiles with scale 0 are never evaluated."),
        io.Int.Input("tile_batch_size", default=d["tile_batch_size"], min=1, max=256,
                     tooltip="Tiled evaluation: how many equal-size tiles go through the model at once."),
    ]


def guide_inputs() -> list:
    """Optional denoise_mask and image."""
    return [
        io.Mask.Input("denoise_mask", optional=True,
                      tooltip="Needed by scale_mode mask and pixel: 1 = change, 0 = keep. Any size (stretched to the "
                              "latent as ComfyUI does), batch 1 or the latent's."),
        io.Image.Input("image", optional=True,
                       tooltip="Drives the quadtree instead of the latent; must be the latent's pixel size."),
    ]


def check_inputs(node: str, **kw) -> str | None:
    """validate_inputs for the shared inputs: a message naming the node and input, or None."""
    error = check_plan_inputs(kw.get("min_denoise"), kw.get("max_denoise"), kw.get("layout"), kw.get("scale_mode"),
                              kw.get("falloff"), kw.get("criterion"), None, kw.get("mode"))
    return f"{node}: {error}" if error else None


def build_plan(node: str, samples: torch.Tensor, downscale: int, align: int, denoise_mask=None, image=None, **kw) -> TilePlan:
    """Validate everything (raising ValueError naming the node and input) and build the plan."""
    if samples.dim() != 4:
        raise ValueError(f"{node}: latent must be an image LATENT [B, C, H, W]; got shape {tuple(samples.shape)}")
    try:
        check_finite("latent", samples)
        error = check_plan_inputs(kw["min_denoise"], kw["max_denoise"], kw["layout"], kw["scale_mode"], kw["falloff"],
                                  kw["criterion"], denoise_mask is not None, kw.get("mode"))
        if error:
            raise ValueError(error)
        if image is not None:
            check_finite("image", image)
        return make_plan(
            samples.shape[-2], samples.shape[-1], min_denoise=kw["min_denoise"], max_denoise=kw["max_denoise"],
            layout=kw["layout"], scale_mode=kw["scale_mode"], tile_width=kw["tile_width"], tile_height=kw["tile_height"],
            overlap=kw["overlap"], falloff=kw["falloff"], min_tile=kw["min_tile"], max_tile=kw["max_tile"],
            threshold=kw["threshold"], criterion=kw["criterion"], downscale=downscale, align=align,
            batch=samples.shape[0], denoise_mask=denoise_mask, content=samples, image=image,
        )
    except ValueError as err:
        raise ValueError(f"{node}: {err}") from err
