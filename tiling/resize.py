"""Bring pixel-space guidance (an IMAGE, a MASK) to the latent grid.

Masks follow ComfyUI's convention (SetLatentNoiseMask, DifferentialDiffusion, KSampler's noise
mask): any size is stretched to the latent — area averaging along an axis that shrinks, bilinear
along one that grows — with batch 1 or the latent's batch.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..checks import check_finite, check_int

log = logging.getLogger(__name__)

# A mask whose aspect ratio is off the image's by more than this is still used (stretched), with a warning.
ASPECT_TOLERANCE = 0.01
# Float32 rounding of stock mask nodes (ImageBlur's normalised kernel gives 1 + 1e-6 inside a painted area):
# values this close outside [0, 1] are clamped onto it, anything further out is refused.
RANGE_TOLERANCE = 1e-5


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


def check_mask(mask: torch.Tensor, batch: int | None = None, name: str = "denoise_mask") -> None:
    """Raise a ValueError naming `name` unless `mask` is a MASK [H, W] or [B, H, W] with values in [0, 1].

    Args:
        mask: The user's mask (1 = change, 0 = keep).
        batch: The latent's batch; the mask's batch must then be 1 or this.
        name: The input's name in messages.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3) or min(mask.shape) < 1:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a non-empty MASK [H, W] or [B, H, W]; got {shape}")
    if batch is not None and mask.dim() == 3 and mask.shape[0] not in (1, batch):
        raise ValueError(f"{name} must have batch 1 or the latent's batch {batch}; got batch {mask.shape[0]}")
    check_finite(name, mask)
    lo, hi = float(mask.min()), float(mask.max())
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise ValueError(f"{name} must hold values in [0, 1] (1 = change, 0 = keep); got values in [{lo:g}, {hi:g}]")


def _warn_about(mask: torch.Tensor, latent_h: int, latent_w: int, downscale: int, name: str) -> None:
    h, w = mask.shape[-2:]
    image_h, image_w = latent_h * downscale, latent_w * downscale
    if (h // downscale, w // downscale) == (latent_h, latent_w) and (h, w) != (image_h, image_w):
        log.warning(
            "%s (%d×%d px) is slightly larger than the image (%d×%d px): VAE Encode cut the picture to a multiple "
            "of %d px (dropping its last %d column(s) and %d row(s)), so the mask is squeezed by that much to "
            "fit and its edges move by up to %d px; crop or scale the picture to a multiple of %d px before VAE "
            "Encode for an exact fit",
            name,
            w,
            h,
            image_w,
            image_h,
            downscale,
            w - image_w,
            h - image_h,
            downscale - 1,
            downscale,
        )
    elif abs((w / h) / (latent_w / latent_h) - 1.0) > ASPECT_TOLERANCE:
        log.warning(
            "%s of %d×%d px has another aspect ratio than the image (%d×%d px): it is stretched to the image, so "
            "the painted areas move; paint the mask on the picture you encode (it is stretched to the latent "
            "(%d×%d) as ComfyUI stretches masks)",
            name,
            w,
            h,
            image_w,
            image_h,
            latent_w,
            latent_h,
        )


def resize_mask(mask: torch.Tensor, latent_h: int, latent_w: int) -> torch.Tensor:
    """A checked MASK [B, H, W] of any size stretched to [B, latent_h, latent_w] (float64).

    Per axis: area averaging when it shrinks, bilinear (half-pixel centres) when it grows, the
    identity when it keeps its size. Values within `RANGE_TOLERANCE` outside [0, 1] are clamped
    onto it first. Zeros stay exactly 0 and ones exactly 1 (an area mean of equal values is that
    value; bilinear weights of equal values sum to 1 up to one ulp, so the result is clamped).
    """
    x = mask.reshape(-1, 1, *mask.shape[-2:]).to(torch.float64).clamp(0.0, 1.0)
    h, w = x.shape[-2:]
    shrunk = (min(h, latent_h), min(w, latent_w))
    if shrunk != (h, w):
        x = F.interpolate(x, size=shrunk, mode="area")
    if shrunk != (latent_h, latent_w):
        x = F.interpolate(x, size=(latent_h, latent_w), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return x[:, 0]


def mask_to_latent_size(
    mask: torch.Tensor,
    latent_h: int,
    latent_w: int,
    downscale: int = 8,
    *,
    batch: int | None = None,
    per_sample: bool = False,
    warn: bool = True,
    name: str = "denoise_mask",
) -> torch.Tensor:
    """A user's MASK as a latent-size map: [latent_h, latent_w], or [B', latent_h, latent_w] with `per_sample`.

    ComfyUI's convention: any size (stretched, see `resize_mask`), batch 1 or the latent's batch,
    values in [0, 1]. Without `per_sample` a batch is averaged into one map (a tile layout serves
    the whole batch). With `warn`, logs a warning when the mask is the size of a picture that VAE
    Encode cut to a multiple of `downscale`, or else when its aspect ratio differs from the image's by
    more than 1 % (an all-zero mask is the plan's to explain: it knows what zero means there).

    Args:
        mask: MASK tensor [H, W] or [B, H, W].
        latent_h: Latent height.
        latent_w: Latent width.
        downscale: Pixels per latent unit (for the image size in messages).
        batch: The latent's batch (checked against the mask's when given).
        per_sample: Keep the mask's batch (1 or `batch`) instead of averaging it.
        warn: Log the size warnings.
        name: The input's name in messages.
    """
    latent_h = check_int("latent_h", latent_h, 1)
    latent_w = check_int("latent_w", latent_w, 1)
    downscale = check_int("downscale", downscale, 1)
    check_mask(mask, batch, name)
    if warn:
        _warn_about(mask, latent_h, latent_w, downscale, name)
    resized = resize_mask(mask.detach().cpu(), latent_h, latent_w)
    if per_sample:
        return resized
    return resized[0] if resized.shape[0] == 1 else resized.mean(dim=0)
