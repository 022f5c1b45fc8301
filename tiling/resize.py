"""Bring pixel-space guidance (an IMAGE, a MASK) to the latent grid by area averaging."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_finite, check_int


def area_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Area-average (or, when enlarging, repeat) `x[B, C, H, W]` to `[B, C, height, width]`.

    Computed in float64. When H and W are exact multiples of the target this is
    the plain mean over each `H/height` x `W/width` block.

    Args:
        x: A 4-D tensor [B, C, H, W].
        height: Target height (>= 1).
        width: Target width (>= 1).
    """
    height = check_int("height", height, 1)
    width = check_int("width", width, 1)
    if x.dim() != 4 or min(x.shape) < 1:
        raise ValueError(f"x must be a non-empty 4-D tensor [B, C, H, W]; got shape {tuple(x.shape)}")
    return F.interpolate(x.to(torch.float64), size=(height, width), mode="area")


def image_to_latent_size(image: torch.Tensor, latent_h: int, latent_w: int) -> torch.Tensor:
    """A ComfyUI IMAGE [B, H, W, C] (pixels) as content [B, C, latent_h, latent_w] (float64).

    Use it to drive `quadtree_layout` by the image rather than by the latent.

    Args:
        image: IMAGE tensor [B, H, W, C]; any pixel size, finite values.
        latent_h: Latent height to resize to.
        latent_w: Latent width to resize to.
    """
    if image.dim() != 4 or min(image.shape) < 1:
        raise ValueError(f"image must be a non-empty IMAGE tensor [B, H, W, C]; got shape {tuple(image.shape)}")
    check_finite("image", image)
    return area_resize(image.movedim(-1, 1), latent_h, latent_w)


def mask_to_latent_size(mask: torch.Tensor, latent_h: int, latent_w: int, downscale: int = 8) -> torch.Tensor:
    """A ComfyUI MASK [H, W] or [B, H, W] as one latent-size map [latent_h, latent_w] (float64).

    The mask may be at pixel size (latent * downscale) or already at latent
    size; a batch is averaged into one map (a layout serves the whole batch).
    Values must be finite and in [0, 1].

    Args:
        mask: MASK tensor [H, W] or [B, H, W].
        latent_h: Latent height.
        latent_w: Latent width.
        downscale: Pixels per latent unit.
    """
    latent_h = check_int("latent_h", latent_h, 1)
    latent_w = check_int("latent_w", latent_w, 1)
    downscale = check_int("downscale", downscale, 1)
    if mask.dim() not in (2, 3) or min(mask.shape) < 1:
        raise ValueError(f"mask must be a non-empty MASK tensor [H, W] or [B, H, W]; got shape {tuple(mask.shape)}")
    allowed = ((latent_h * downscale, latent_w * downscale), (latent_h, latent_w))
    if tuple(mask.shape[-2:]) not in allowed:
        raise ValueError(
            f"mask size {tuple(mask.shape[-2:])} must match the image {allowed[0]} "
            f"or the latent {allowed[1]} (H, W)"
        )
    check_finite("mask", mask)
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"mask values must lie in [0, 1]; got range [{lo}, {hi}]")
    batch = mask.reshape(-1, 1, *mask.shape[-2:]).mean(dim=0, keepdim=True, dtype=torch.float64)
    return area_resize(batch, latent_h, latent_w)[0, 0]
