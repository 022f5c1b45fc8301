"""Tile-by-tile (MultiDiffusion-style) evaluation of a denoiser, with skipping and batching.

A model input x [B, C, H, W] is cut into the tiles of a `TileLayout`; tiles of one size are
stacked into batches of up to `batch_size`, evaluated by `denoise(x_tiles, indices)`, and the
results are accumulated with the layout's feather weights (a partition of unity), so a pointwise
denoiser gives exactly what it gives on the whole image. Tiles marked inactive are not evaluated;
they contribute `fill` (the clean original) instead.

Batch order: ComfyUI batches cond and uncond together and attention patches split the batch into
`chunks` equal parts, so a batch of n tiles of an input with B = chunks·b rows is laid out
chunk-major: [chunk 0: tile 0 (b rows), …, tile n−1; chunk 1: …]. Every per-row tensor passed along
(σ, text conditioning) is repeated the same way (`tile_args`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ...tiling import TileLayout


def active_batches(layout: TileLayout, active: Sequence[bool], batch_size: int) -> list[list[int]]:
    """Indices of active tiles grouped by tile size, at most `batch_size` per group, layout order."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, tile in enumerate(layout.tiles):
        if active[i]:
            by_size.setdefault(tile.size, []).append(i)
    return [g[s : s + batch_size] for g in by_size.values() for s in range(0, len(g), batch_size)]


def active_tiles(layout: TileLayout, weight: torch.Tensor) -> list[bool]:
    """True for each tile where `weight[..., H, W]` is non-zero somewhere in its footprint."""
    w = (weight != 0).reshape(-1, layout.latent_h, layout.latent_w).any(dim=0)
    return [bool(w[t.slices].any()) for t in layout.tiles]


def _split(v: torch.Tensor, chunks: int) -> torch.Tensor:
    return v.reshape(chunks, v.shape[0] // chunks, *v.shape[1:])


def crop_tiles(x: torch.Tensor, layout: TileLayout, indices: Sequence[int], chunks: int = 1) -> torch.Tensor:
    """Crops of a spatial tensor [B, ..., h·k, w·k] under `indices`, chunk-major [B·n, ...].

    The tensor may be at the latent size or an integer fraction 1/k of it (ControlNet residuals);
    then every tile's origin and size must be multiples of k.
    """
    H, W = x.shape[-2:]
    if layout.latent_h % H or layout.latent_w % W or layout.latent_h // H != layout.latent_w // W:
        raise ValueError(
            f"a spatial input of size {(H, W)} is not the latent size {(layout.latent_h, layout.latent_w)} "
            f"or an integer fraction of it; it cannot be cropped to tiles"
        )
    k = layout.latent_h // H
    crops = []
    for i in indices:
        t = layout.tiles[i]
        if k > 1 and (t.y0 % k or t.x0 % k or t.h % k or t.w % k):
            raise ValueError(
                f"tile {i} {t} cannot be cropped from a spatial input at 1/{k} of the latent size; "
                f"use tile sizes, overlap and image size that are multiples of {k * layout.downscale} px"
            )
        crops.append(_split(x[..., t.y0 // k : t.y1 // k, t.x0 // k : t.x1 // k], chunks))
    out = torch.stack(crops, dim=1)  # [chunks, n, b, ...]
    return out.reshape(-1, *out.shape[3:])


def repeat_rows(v: torch.Tensor, n: int, chunks: int = 1) -> torch.Tensor:
    """A per-row tensor [B, ...] repeated for n tiles in chunk-major order [B·n, ...]."""
    s = _split(v, chunks)
    return s.unsqueeze(1).expand(chunks, n, *s.shape[1:]).reshape(-1, *v.shape[1:])


def tile_args(value, layout: TileLayout, indices: Sequence[int], batch: int, chunks: int = 1):
    """Bring any model argument to a tile batch: spatial tensors (4-D or more, batch rows) are
    cropped, other per-row tensors repeated, containers walked, everything else passed as is."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 or value.shape[0] != batch:
            return value
        if value.dim() >= 4:
            return crop_tiles(value, layout, indices, chunks)
        return repeat_rows(value, len(indices), chunks)
    if isinstance(value, dict):
        return {k: tile_args(v, layout, indices, batch, chunks) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(tile_args(v, layout, indices, batch, chunks) for v in value)
    return value


def evaluate_tiled(
    denoise: Callable[[torch.Tensor, list[int]], torch.Tensor],
    x: torch.Tensor,
    layout: TileLayout,
    weights: Sequence[torch.Tensor],
    active: Sequence[bool],
    fill: torch.Tensor,
    batch_size: int,
    chunks: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """x0 of the whole input from tile batches: Σ_tiles weight_i · denoise(tile_i).

    Args:
        denoise: `denoise(x_tiles [B·n, C, h, w], indices)` → x0 of the same shape.
        x: Model input [B, C, H, W] at the layout's latent size, B a multiple of `chunks`.
        layout: The tile layout.
        weights: Per-tile feather weights [h, w] (`tile_weights`), summing to 1 per pixel.
        active: Per tile, whether to evaluate it; inactive tiles take `fill`.
        fill: x0 for inactive tiles, broadcastable to x.
        batch_size: Largest number of tiles per `denoise` call.
        chunks: How many equal sub-batches x holds (cond/uncond); see the module docstring.
        progress: Called as `progress(done, total)` after each tile batch.
    """
    if tuple(x.shape[-2:]) != (layout.latent_h, layout.latent_w):
        raise ValueError(f"x must be {(layout.latent_h, layout.latent_w)} spatially; got shape {tuple(x.shape)}")
    if chunks < 1 or x.shape[0] % chunks:
        raise ValueError(f"x's batch {x.shape[0]} must be a multiple of chunks={chunks}")
    batches = active_batches(layout, active, batch_size)
    acc_dtype = torch.float64  # weighted sums of float32 crops lose bits
    out = torch.zeros(x.shape, dtype=acc_dtype, device=x.device)
    fill = fill.to(out).expand_as(out)
    evaluated = torch.zeros(x.shape[-2:], dtype=torch.bool, device=x.device)  # pixels any active tile covers
    for i, tile in enumerate(layout.tiles):
        if active[i]:
            evaluated[tile.slices] = True
        else:
            region = (..., slice(tile.y0, tile.y1), slice(tile.x0, tile.x1))
            out[region] += fill[region] * weights[i].to(out)
    b = x.shape[0] // chunks
    for done, indices in enumerate(batches, start=1):
        result = denoise(crop_tiles(x, layout, indices, chunks), indices)
        result = result.reshape(chunks, len(indices), b, *result.shape[1:]).to(out)
        for j, i in enumerate(indices):
            tile = layout.tiles[i]
            region = (..., slice(tile.y0, tile.y1), slice(tile.x0, tile.x1))
            out[region] += result[:, j].reshape(-1, *result.shape[3:]) * weights[i].to(out)
        if progress is not None:
            progress(done, len(batches))
    # where only skipped tiles reach, the fill itself (a sum of weights is 1 only to rounding)
    return torch.where(evaluated, out, fill).to(x.dtype)
