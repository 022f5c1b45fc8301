"""Window-by-window (MultiDiffusion-style) evaluation of a denoiser, with batching, in float32.

A model input x [B, C, H, W] is cut into the windows of a `WindowSet` (`evaluate_windows`; the
hook's windows come from `windows.window_set`) or the tiles of a `TileLayout` (`evaluate_tiled`);
crops of one size are stacked into batches of up to `batch_size`, evaluated by the caller's
`denoise(x_crops, indices)`, and accumulated as a running weighted mean with the feather weights
(a partition of unity), so a pointwise denoiser gives exactly what it gives on the whole image.
Pixels no window covers (or, per tile, skipped tiles' share) take `fill` (the clean original).

Batch order: ComfyUI batches cond and uncond together and attention patches split the batch into
`chunks` equal parts, so a batch of n tiles of an input with B = chunks·b rows is laid out
chunk-major: [chunk 0: tile 0 (b rows), …, tile n−1; chunk 1: …]. Every per-row tensor passed along
(σ, text conditioning, 4-D ones such as HiDream's per-layer Llama states too) is repeated the same
way; spatial ones (the latent's aspect) are cropped alike (`tile_args`).
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
    """True for each tile where `weight[..., H, W]` is non-zero somewhere in its footprint.

    Reads the weight on the host once per tile: for CPU data (plans, tests), not for per-step work
    on a device (the hook decides activity with `PreserveState.phase` and `windows.window_set`).
    """
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


def spatial(shape: Sequence[int], layout: TileLayout) -> bool:
    """Whether a per-row tensor of 4+ axes is a picture over the latent: its last two axes have the latent's
    aspect (H·w = W·h). Those are cut like the latent (`crop_tiles`, which refuses a size off the latent
    grid, e.g. pixels); any other (HiDream's Llama states [B, layers, tokens, width]) is per-row text."""
    H, W = shape[-2:]
    return H * layout.latent_w == W * layout.latent_h


def tile_args(value, layout: TileLayout, indices: Sequence[int], batch: int, chunks: int = 1):
    """Bring any model argument to a tile batch: spatial tensors (4-D or more, batch rows, the latent's
    aspect: `spatial`) are cropped, other per-row tensors repeated (HiDream's Llama hidden states
    [B, layers, tokens, width] are 4-D, not spatial), containers walked, everything else passed as is."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 or value.shape[0] != batch:
            return value
        if value.dim() >= 4 and spatial(value.shape, layout):
            return crop_tiles(value, layout, indices, chunks)
        return repeat_rows(value, len(indices), chunks)
    if isinstance(value, dict):
        return {k: tile_args(v, layout, indices, batch, chunks) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(tile_args(v, layout, indices, batch, chunks) for v in value)
    return value


def tile_references(refs, layout: TileLayout, indices: Sequence[int], batch: int, chunks: int = 1) -> list:
    """Reference latents (an edit model's `ref_latents`) for a tile batch: a reference the size of the
    sampled latent (pixel-aligned with it) is cropped to each tile like the input; any other (a
    reference picture of another size) is passed whole, its rows repeated for the tiles."""
    size = (layout.latent_h, layout.latent_w)
    out = []
    for r in refs:
        if isinstance(r, torch.Tensor) and r.dim() >= 4 and r.shape[0] == batch and tuple(r.shape[-2:]) == size:
            out.append(crop_tiles(r, layout, indices, chunks))
        elif isinstance(r, torch.Tensor) and r.dim() >= 1 and r.shape[0] == batch:
            out.append(repeat_rows(r, len(indices), chunks))
        else:
            out.append(r)
    return out


def evaluate_windows(
    denoise: Callable[[torch.Tensor, list[int]], torch.Tensor],
    x: torch.Tensor,
    windows,
    fill: torch.Tensor,
    batch_size: int,
    chunks: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """x0 of the whole input from window batches: Σ_windows weight_j · denoise(window_j), `fill` elsewhere.

    Accumulates in float32 (float64 only for a float64 x, which lives on the CPU) on x's device as a
    running weighted mean (`WindowSet.ratios`), so a pointwise denoiser gives exactly its
    whole-image values; the ratios come from the CPU once per
    device (`WindowSet.weights_on`), so nothing here reads a device tensor on the host.

    Args:
        denoise: `denoise(x_crops [B·n, C, h, w], indices)` → x0 of the same shape; `indices` index
            `windows.tiles` (crop conditioning with `tile_args(value, windows, indices, ...)`).
        x: Model input [B, C, H, W] at the windows' latent size, B a multiple of `chunks`.
        windows: A `WindowSet`.
        fill: x0 outside the windows, broadcastable to x.
        batch_size: Largest number of windows per `denoise` call (equal sizes are batched).
        chunks: How many equal sub-batches x holds (cond/uncond); see the module docstring.
        progress: Called as `progress(done, total)` after each batch.
    """
    if tuple(x.shape[-2:]) != (windows.latent_h, windows.latent_w):
        raise ValueError(f"x must be {(windows.latent_h, windows.latent_w)} spatially; got shape {tuple(x.shape)}")
    if chunks < 1 or x.shape[0] % chunks:
        raise ValueError(f"x's batch {x.shape[0]} must be a multiple of chunks={chunks}")
    batches = active_batches(windows, [True] * len(windows), batch_size)  # in sequence: `WindowSet.order()`
    ratios, _ = windows.weights_on(x.device)
    acc = torch.promote_types(x.dtype, torch.float32)
    out = fill.to(x.device, acc).expand(x.shape).clone()
    b = x.shape[0] // chunks
    for done, indices in enumerate(batches, start=1):
        result = denoise(crop_tiles(x, windows, indices, chunks), indices)
        result = result.to(acc).reshape(chunks, len(indices), b, *result.shape[1:])
        for j, i in enumerate(indices):
            t = windows.tiles[i]
            view = out[..., t.y0 : t.y1, t.x0 : t.x1]
            view.copy_(torch.lerp(view, result[:, j].reshape(-1, *result.shape[3:]), ratios[i].to(acc)))
        if progress is not None:
            progress(done, len(batches))
    return out.to(x.dtype)


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
    """x0 of the whole input from the layout's tiles: Σ_active tiles weight_i · denoise(tile_i).

    Pixels that only inactive tiles cover take `fill`. Same arguments as `evaluate_windows`, plus the
    layout, its per-tile feather weights [h, w] (summing to 1 per pixel) and a per-tile `active` flag.
    """
    from .windows import WindowSet

    keep = [i for i, a in enumerate(active) if a]
    covered = torch.zeros(layout.latent_h, layout.latent_w, dtype=torch.bool)
    base = torch.zeros(layout.latent_h, layout.latent_w, dtype=torch.float64)
    for i, tile in enumerate(layout.tiles):
        if active[i]:
            covered[tile.slices] = True
        else:  # a skipped tile's share is the fill's
            base[tile.slices] += weights[i].to(torch.float64)
    subset = WindowSet(
        layout.latent_h,
        layout.latent_w,
        tuple(layout.tiles[i] for i in keep),
        tuple(weights[i] for i in keep),
        covered,
        layout.downscale,
        base,
    )
    return evaluate_windows(
        lambda crops, indices: denoise(crops, [keep[j] for j in indices]), x, subset, fill, batch_size, chunks, progress
    )
