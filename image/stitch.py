"""The stitch: decoded pixels where the picture changed, the original bit for bit everywhere else.

`band_weight(changed, blend)` is the decoded picture's weight per pixel: 0 wherever the scale is 0
(so those pixels are the input's, exactly), rising smoothly and monotonically across a band of
`2·ceil(blend / 2)` pixels inside the changed area, and exactly 1 deeper in (the decoded picture
itself). Beyond the picture's edge continues the edge pixel: a change that reaches the edge does not
fade there. Built from integer counts, so 0 and 1 are exact:

1. erode the changed area by r = ceil(blend / 2) (a square of side 2r + 1 all changed);
2. t = share of eroded pixels in the square of side 2r + 1 around each pixel (a box filter): 0 outside
   the changed area, 1 once every unchanged pixel is more than 2r away, linear in between along an axis;
3. weight = t²·(3 − 2t) (smoothstep: flat at both ends of the band, so no visible step at its edges).

`stitch(image, decoded, weight)` = lerp(image, decoded, weight), exact at weight 0 and 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..checks import check_int


def band_weight(changed: torch.Tensor, blend: int) -> torch.Tensor:
    """float32 weight of the decoded picture, the shape of `changed` (bool [H, W] or [B, H, W]).

    Args:
        changed: True where the per-pixel scale is non-zero.
        blend: Band width in pixels (rounded up to even), inside the changed area.
    """
    blend = check_int("blend", blend, 0, hint="pixels")
    if changed.dtype != torch.bool or changed.dim() not in (2, 3):
        raise ValueError(f"changed must be a bool map [H, W] or [B, H, W]; got {changed.dtype} {tuple(changed.shape)}")
    r = math.ceil(blend / 2)
    c = changed.reshape(-1, 1, *changed.shape[-2:]).to(torch.float32)
    if r == 0:
        return c.reshape(changed.shape)
    k = 2 * r + 1
    # beyond the edge continues the edge pixel's own state (2r: the reach of steps 1 and 2 together)
    c = F.pad(c, (2 * r,) * 4, mode="replicate")
    # 1. eroded = no unchanged pixel within r
    eroded = 1.0 - F.max_pool2d(1.0 - c, k, stride=1, padding=r)
    # 2. box share of eroded pixels (integer sums: exact 0 and 1), cropped back to the picture
    count = F.avg_pool2d(eroded, k, stride=1, divisor_override=1)[..., r:-r, r:-r]
    t = count / float(k * k)
    # 3. smoothstep
    return (t * t * (3.0 - 2.0 * t)).reshape(changed.shape)


def stitch(image: torch.Tensor, decoded: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """image [B, H, W, C] where weight is 0, decoded where 1, lerp between (weight [H, W] or [B or 1, H, W])."""
    if tuple(weight.shape[-2:]) != tuple(image.shape[1:3]) or tuple(decoded.shape) != tuple(image.shape):
        raise ValueError(
            f"image {tuple(image.shape)}, decoded {tuple(decoded.shape)} and weight {tuple(weight.shape)} must "
            "share the picture size"
        )
    w = weight.reshape(-1, *weight.shape[-2:])[..., None].to(image.device, torch.float32)
    return torch.lerp(image.to(torch.float32), decoded.to(image.device, torch.float32), w)


__all__ = ["band_weight", "stitch"]
