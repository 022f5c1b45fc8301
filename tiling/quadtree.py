"""Content-adaptive layout: a quadtree that splits where the content is busy."""

from __future__ import annotations

import math

import torch

from ..checks import check_choice, check_finite, check_int, check_number
from .layout import Tile, TileLayout, _overlap_latent

CRITERIA = ("variance", "gradient")


def _content_2d(content: torch.Tensor) -> torch.Tensor:
    """[C, H, W] or [B, C, H, W] -> [C, H, W] float64 (a batch is averaged)."""
    if content.dim() not in (3, 4) or min(content.shape) < 1:
        raise ValueError(
            f"content must be a non-empty tensor [C, H, W] or [B, C, H, W]; got shape {tuple(content.shape)}"
        )
    check_finite("content", content)
    content = content.to(torch.float64)
    return content.mean(dim=0) if content.dim() == 4 else content


def busyness(patch: torch.Tensor, criterion: str) -> float:
    """How much `patch[C, h, w]` varies: the split statistic of `quadtree_layout`.

    Args:
        patch: Content crop [C, h, w].
        criterion: "variance": per-channel population variance over the pixels,
            averaged over channels. "gradient": mean squared forward difference
            along rows plus along columns, averaged over channels (an axis of
            length 1 contributes 0).
    """
    if check_choice("criterion", criterion, CRITERIA) == "variance":
        return float(patch.flatten(1).var(dim=1, unbiased=False).mean())
    energy = 0.0
    if patch.shape[-2] > 1:
        energy += float(patch.diff(dim=-2).square().mean())
    if patch.shape[-1] > 1:
        energy += float(patch.diff(dim=-1).square().mean())
    return energy


def _split_axis(start: int, length: int, parts: int, align: int) -> list[tuple[int, int]]:
    """(start, size) of `parts` near-equal cells over [start, start+length), starts aligned.

    Cells hold whole multiples of `align`; the last one also takes `length % align`.
    """
    units = length // align
    cuts = [start + (i * units + parts // 2) // parts * align for i in range(parts)] + [start + length]
    return [(cuts[i], cuts[i + 1] - cuts[i]) for i in range(parts)]


def quadtree_layout(
    content: torch.Tensor,
    min_tile: int,
    max_tile: int,
    threshold: float,
    criterion: str = "variance",
    downscale: int = 8,
    align: int = 1,
    overlap: int = 64,
) -> TileLayout:
    """Tiles that are small where `content` is busy and large where it is flat.

    1. The latent is cut into a coarse grid of near-equal roots no larger than
       `max_tile` (starts aligned to `align`).
    2. A node splits while `busyness(node) > threshold` and its halves would stay
       >= `min_tile`: into 4 when both axes can halve, into 2 when only one can.
       Halves are cut at a multiple of `align` from the node's start.
    3. Each leaf grows by the overlap on every side, clamped to the latent; the
       leaves are kept as the layout's `cores` (so `areas` reflects the split).

    Leaves come out sorted by (y0, x0); the result depends only on the inputs.

    Args:
        content: The latent [C, H, W] or [B, C, H, W] (a batch is averaged), or an
            IMAGE brought to latent size with `image_to_latent_size`. Its H, W
            are the latent size.
        min_tile: Smallest leaf side in pixels; rounded up to a multiple of
            `align` latent units, at least 2*align.
        max_tile: Largest root side in pixels; rounded down to a multiple of
            `align` latent units, at least the rounded `min_tile`.
        threshold: Split when the statistic exceeds this (finite, >= 0).
        criterion: "variance" or "gradient" (see `busyness`).
        downscale: Pixels per latent unit.
        align: Patch size in latent units.
        overlap: Growth of each leaf on every side, in pixels; converted as
            ceil(overlap / downscale) rounded up to a multiple of `align`.
    """
    # 1. validate everything before any work
    downscale = check_int("downscale", downscale, 1)
    align = check_int("align", align, 1)
    check_choice("criterion", criterion, CRITERIA)
    threshold = check_number("threshold", threshold, 0.0)
    check_int("min_tile", min_tile, 1)
    check_int("max_tile", max_tile, 1)
    min_lat = max(math.ceil(min_tile / (downscale * align)) * align, 2 * align)
    max_lat = max_tile // downscale // align * align
    if max_lat < min_lat:
        raise ValueError(
            f"max_tile={max_tile} px is {max_lat} latent units, below the smallest leaf of {min_lat} units; "
            f"max_tile must be >= {min_lat * downscale} px (min_tile={min_tile}, align={align}, downscale={downscale})"
        )
    ov = math.ceil(_overlap_latent(overlap, downscale) / align) * align
    x = _content_2d(content)
    height, width = x.shape[-2:]

    # 2. coarse roots, then split busy nodes depth first
    rows = _split_axis(0, height, math.ceil(height / max_lat), align)
    cols = _split_axis(0, width, math.ceil(width / max_lat), align)
    stack = [Tile(y, xx, h, w) for (y, h) in reversed(rows) for (xx, w) in reversed(cols)]
    leaves: list[Tile] = []
    while stack:
        node = stack.pop()
        split_h = (node.h // align) // 2 * align >= min_lat
        split_w = (node.w // align) // 2 * align >= min_lat
        if (split_h or split_w) and busyness(x[:, node.y0 : node.y1, node.x0 : node.x1], criterion) > threshold:
            ys = _split_axis(node.y0, node.h, 2, align) if split_h else [(node.y0, node.h)]
            xs = _split_axis(node.x0, node.w, 2, align) if split_w else [(node.x0, node.w)]
            stack.extend(Tile(y, xx, h, w) for (y, h) in reversed(ys) for (xx, w) in reversed(xs))
        else:
            leaves.append(node)
    leaves.sort(key=lambda t: (t.y0, t.x0))

    # 3. grow by the overlap, clamped to the latent
    tiles = []
    for leaf in leaves:
        y0, x0 = max(leaf.y0 - ov, 0), max(leaf.x0 - ov, 0)
        y1, x1 = min(leaf.y1 + ov, height), min(leaf.x1 + ov, width)
        tiles.append(Tile(y0, x0, y1 - y0, x1 - x0))
    return TileLayout(height, width, tuple(tiles), cores=tuple(leaves), downscale=downscale, align=align)
