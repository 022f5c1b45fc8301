"""The active-window rule: which part of the latent a tiled evaluation sends through the model.

Given the pixels whose weight is non-zero at the current σ (the *active* pixels, a CPU bool map
[H, W]) and a context `margin` (latent units), the model is evaluated only on

    E = grow(active, margin): every pixel within `margin` of an active pixel along both axes,

covered by windows no larger than the user's tiles (`max_h` × `max_w`) that overlap like tiles
(`overlap`) and are blended with their own partition-of-unity feather. The windows come from a
guillotine cut of E's bounding box (`cover`): a box is cut where that shrinks the bounding boxes
of the two parts most, until a part fits a window and E fills most of it; parts that E fills but
that are too large are split evenly like a grid. Each part then grows by half the overlap into
its neighbours, so neighbouring windows overlap by the user's overlap and no strip is evaluated
twice beyond it. Windows nearly as large as the largest (by area) grow to its size so that they
batch with it, and when the windows would cost more than `WORTH` of the plan's own tiles that
reach E, those tiles are evaluated instead (equal tiles batch; model calls have a fixed cost).

When every pixel is active the windows are the plan's own tiles and feather weights, so
all-regenerated runs evaluate exactly what they did before this rule existed. Where the plan's
own tiles are cheaper — those reaching E, or (small tiles, where the margin would reach into
tiles at weight 0) those holding an active pixel — they are evaluated instead, so the evaluated
area never exceeds that of the tiles holding an active pixel.

Everything here runs on the CPU once per active set (once per run in blend mode, once per
schedule step where a pixel starts in strength mode); `WindowSet.weights_on` keeps one device
copy per device, so per-step work never reads a device tensor on the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...checks import check_int
from ...tiling import Tile, TileLayout, tile_windows
from .evaluate import active_batches

# Below this fraction of E inside a box that fits a window, the box is cut further.
FILL = 0.8
# Windows at least this fraction of the largest one (per axis, by area) grow to its size, so they batch.
SNAP = 0.8
# Windows that would evaluate more than this fraction of the plan's own tiles that reach E give way
# to those tiles (equal sizes batch; a few percent of area is not worth more model calls).
WORTH = 0.9


@dataclass
class WindowSet:
    """Windows over a latent [latent_h, latent_w] with float32 weights summing to 1 on `covered`.

    Duck-types the `TileLayout` fields that `crop_tiles` / `tile_args` read (latent_h, latent_w,
    tiles, downscale), so conditioning is cropped to windows the same way as to tiles. `base` is
    the weight [H, W] that the fill keeps where windows cover (None: 0; the per-tile evaluation of
    a layout with skipped tiles gives the skipped tiles' share to the fill).
    """

    latent_h: int
    latent_w: int
    tiles: tuple[Tile, ...]
    weights: tuple[torch.Tensor, ...]
    covered: torch.Tensor  # CPU bool [H, W]: pixels some window evaluates
    downscale: int = 8
    base: torch.Tensor | None = None
    _device: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def area(self) -> int:
        """Latent pixels evaluated per row of the model input (overlaps counted per window)."""
        return sum(t.area for t in self.tiles)

    def order(self) -> list[int]:
        """The order `evaluate_windows` evaluates and accumulates windows in (its `active_batches`, in
        sequence): by size (first appearance), then index."""
        return [i for batch in active_batches(self, [True] * len(self), max(1, len(self))) for i in batch]

    def ratios(self) -> tuple[torch.Tensor, ...]:
        """Per window, r = w / (base + Σ of the weights accumulated so far, this one included) [h, w].

        Accumulating `out = lerp(out, result, r)` window by window (out starting at the fill) gives
        the weighted mean Σ w·result + base·fill, and where every window gives the same value (a
        pointwise denoiser) it gives that value exactly: lerp(a, a, r) = a, lerp(·, b, 1) = b.
        Computed in float64 on the CPU, returned as float32.
        """
        cum = torch.zeros(self.latent_h, self.latent_w, dtype=torch.float64)
        if self.base is not None:
            cum += self.base.to(torch.float64)
        out: list[torch.Tensor | None] = [None] * len(self.tiles)
        for i in self.order():
            t, w = self.tiles[i], self.weights[i].to(torch.float64)
            cum[t.slices] += w
            out[i] = (w / cum[t.slices]).to(torch.float32)
        return tuple(out)

    def weights_on(self, device: torch.device) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(`ratios`, covered) on `device`, computed and copied once per device and kept."""
        key = str(device)
        if key not in self._device:
            self._device[key] = (tuple(r.to(device) for r in self.ratios()), self.covered.to(device))
        return self._device[key]


def grow(active: torch.Tensor, margin: int) -> torch.Tensor:
    """Pixels within `margin` latent units of an active pixel along each axis (a square dilation)."""
    margin = check_int("margin", margin, 0, hint="latent units")
    if active.dim() != 2 or active.dtype != torch.bool:
        raise ValueError(f"active must be a bool map [H, W], got {active.dtype} of shape {tuple(active.shape)}")
    if margin == 0:
        return active.clone()
    grown = F.max_pool2d(active[None, None].to(torch.float32), 2 * margin + 1, stride=1, padding=margin)
    return grown[0, 0] > 0


def _bbox(e: np.ndarray, y0: int, x0: int, y1: int, x1: int, align: int, h: int, w: int):
    """Bounding box (aligned outwards, clamped) of E inside [y0, y1) × [x0, x1), or None."""
    sub = e[y0:y1, x0:x1]
    rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
    if rows.size == 0:
        return None
    by0, bx0 = (y0 + int(rows[0])) // align * align, (x0 + int(cols[0])) // align * align
    by1 = min(-(-(y0 + int(rows[-1]) + 1) // align) * align, h)
    bx1 = min(-(-(x0 + int(cols[-1]) + 1) // align) * align, w)
    return max(by0, y0), max(bx0, x0), min(by1, y1), min(bx1, x1)


def _best_cut(e: np.ndarray, box, axis: int, min_side: int, align: int):
    """(cost, position) of the cut along `axis` that minimises the parts' bounding-box areas."""
    y0, x0, y1, x1 = box
    sub = e[y0:y1, x0:x1] if axis == 0 else e[y0:y1, x0:x1].T
    n, m = sub.shape
    if n < 2 * min_side:
        return None
    idx = np.arange(m)
    has = sub.any(axis=1)
    first = np.where(has, np.where(sub, idx, m).min(axis=1), m)
    last = np.where(has, np.where(sub, idx, -1).max(axis=1), -1)
    pos = np.arange(n)

    def part_costs(first, last, has):
        lo_c, hi_c = np.minimum.accumulate(first), np.maximum.accumulate(last)
        lo_r = np.minimum.accumulate(np.where(has, pos, n))
        hi_r = np.maximum.accumulate(np.where(has, pos, -1))
        return np.where(hi_r >= 0, (hi_r - lo_r + 1) * (hi_c - lo_c + 1), 0)

    head = part_costs(first, last, has)  # head[k]: rows 0..k
    tail = part_costs(first[::-1], last[::-1], has[::-1])[::-1]  # tail[k]: rows k..n-1
    cuts = np.arange(min_side, n - min_side + 1)
    cuts = cuts[cuts % align == 0]
    if cuts.size == 0:
        return None
    cost = head[cuts - 1] + tail[cuts]
    k = int(np.argmin(cost))
    return int(cost[k]), int(cuts[k]) + (y0 if axis == 0 else x0)


def _even_parts(start: int, stop: int, size: int, align: int) -> list[tuple[int, int]]:
    """[start, stop) split into the fewest near-equal aligned parts of at most `size`."""
    length = stop - start
    parts = max(1, math.ceil(length / size))
    units = length // align
    cuts = [start + (i * units // parts) * align for i in range(parts)] + [stop]
    return [(cuts[i], cuts[i + 1]) for i in range(parts) if cuts[i + 1] > cuts[i]]


def cover(evaluated: torch.Tensor, max_h: int, max_w: int, overlap: int, align: int = 1) -> list[Tile]:
    """Windows (each at most max_h × max_w, overlapping by about `overlap`) that cover `evaluated`.

    Args:
        evaluated: CPU bool map [H, W] of the pixels that must be evaluated (E).
        max_h, max_w: Largest window, latent units (the user's tile size).
        overlap: Overlap of neighbouring windows, latent units (the user's overlap).
        align: The model's patch size: window origins and sizes are multiples of it (except at
            the latent's far edge, like tiles).
    """
    e = evaluated.cpu().numpy().astype(bool)
    h, w = e.shape
    grow_by = math.ceil(math.ceil(overlap / 2) / align) * align
    core_h = max(align, (max_h - 2 * grow_by) // align * align)
    core_w = max(align, (max_w - 2 * grow_by) // align * align)
    min_side = max(overlap, 2 * align, 2)
    leaves: list[tuple[int, int, int, int]] = []
    stack = [(0, 0, h, w)]
    while stack:
        box = _bbox(e, *stack.pop(), align, h, w)
        if box is None:
            continue
        y0, x0, y1, x1 = box
        area = (y1 - y0) * (x1 - x0)
        gy0, gx0, gy1, gx1 = _grow_box(e, box, grow_by)
        fits = gy1 - gy0 <= max_h and gx1 - gx0 <= max_w
        if fits and e[y0:y1, x0:x1].sum() >= FILL * area:
            leaves.append(box)
            continue
        cut_y, cut_x = _best_cut(e, box, 0, min_side, align), _best_cut(e, box, 1, min_side, align)
        best = min((c for c in (cut_y, cut_x) if c is not None), default=None)
        if best is not None and best[0] < area * 0.95:
            pos = best[1]
            if best is cut_y:
                stack += [(y0, x0, pos, x1), (pos, x0, y1, x1)]
            else:
                stack += [(y0, x0, y1, pos), (y0, pos, y1, x1)]
        elif fits:
            leaves.append(box)
        else:
            stack += [
                (a, b, c, d)
                for a, c in _even_parts(y0, y1, core_h, align)
                for b, d in _even_parts(x0, x1, core_w, align)
            ]
    boxes = [_grow_box(e, box, grow_by) for box in sorted(leaves)]
    # windows nearly the size of the largest one (by area) grow to its size, so that they batch with it
    big_h, big_w = max(((b[2] - b[0], b[3] - b[1]) for b in boxes), key=lambda s: s[0] * s[1], default=(0, 0))
    windows = []
    for y0, x0, y1, x1 in boxes:
        h_, w_ = y1 - y0, x1 - x0
        if (h_, w_) != (big_h, big_w) and SNAP * big_h <= h_ <= big_h and SNAP * big_w <= w_ <= big_w:
            y0, y1 = _widen(y0, y1, big_h, h, align)
            x0, x1 = _widen(x0, x1, big_w, w, align)
        windows.append(Tile(y0, x0, y1 - y0, x1 - x0))
    return windows


def _widen(start: int, stop: int, size: int, length: int, align: int) -> tuple[int, int]:
    """[start, stop) widened to `size` (both ends, kept inside [0, length), the start aligned)."""
    extra = size - (stop - start)
    start = max(0, (start - extra // 2) // align * align)
    stop = start + size
    if stop > length:
        stop, start = length, max(0, (length - size) // align * align)
    return start, stop


def _grow_box(e: np.ndarray, box, by: int):
    """A leaf grown by `by` into its neighbours: on each side where E continues past it, not into the rest."""
    h, w = e.shape
    y0, x0, y1, x1 = box
    top = y0 > 0 and e[max(0, y0 - by) : y0, x0:x1].any()
    bottom = y1 < h and e[y1 : y1 + by, x0:x1].any()
    left = x0 > 0 and e[y0:y1, max(0, x0 - by) : x0].any()
    right = x1 < w and e[y0:y1, x1 : x1 + by].any()
    return (
        max(0, y0 - by) if top else y0,
        max(0, x0 - by) if left else x0,
        min(h, y1 + by) if bottom else y1,
        min(w, x1 + by) if right else x1,
    )


class _Tiles:
    """The part of a TileLayout that `overlap_bands` / `tile_windows` read."""

    def __init__(self, tiles):
        self.tiles = tuple(tiles)


def window_set(
    layout: TileLayout,
    weights,
    active: torch.Tensor,
    margin: int,
    max_h: int,
    max_w: int,
    overlap: int,
    falloff: str = "cosine",
) -> WindowSet | None:
    """The windows that evaluate `active` (CPU bool [H, W]) with `margin` of context; None if nothing is active.

    Args:
        layout, weights: The plan's tiles and their feather weights (used when every pixel is active).
        active: Pixels whose weight is non-zero.
        margin: Context kept around active pixels, latent units.
        max_h, max_w: Largest window (the user's tile size), latent units.
        overlap: Overlap of neighbouring windows, latent units.
        falloff: Feather shape of the windows' own partition of unity.
    """
    H, W = layout.latent_h, layout.latent_w
    if tuple(active.shape) != (H, W):
        raise ValueError(f"active must be the latent's size {(H, W)}, got shape {tuple(active.shape)}")
    active = active.cpu()
    if not bool(active.any()):
        return None
    if bool(active.all()):
        every = torch.ones(H, W, dtype=torch.bool)
        return WindowSet(H, W, tuple(layout.tiles), tuple(weights), every, layout.downscale)
    evaluated = grow(active, margin)
    tiles = cover(evaluated, max_h, max_w, overlap, layout.align)
    keep = [i for i, t in enumerate(layout.tiles) if bool(evaluated[t.slices].any())]
    own = [i for i, t in enumerate(layout.tiles) if bool(active[t.slices].any())]
    area = sum(t.area for t in tiles)
    keep_area = sum(layout.tiles[i].area for i in keep)
    own_area = sum(layout.tiles[i].area for i in own)
    if own_area < min(area, keep_area):
        # cheaper still: the plan's tiles that hold an active pixel (small tiles, where the margin would
        # reach into tiles at weight 0). Their weights sum to 1 on the active pixels, and each active
        # pixel keeps its whole tile as context; the rest of those tiles is blended at weight 0.
        covered = torch.zeros(H, W, dtype=torch.bool)
        for i in own:
            covered[layout.tiles[i].slices] = True
        return WindowSet(
            H, W, tuple(layout.tiles[i] for i in own), tuple(weights[i] for i in own), covered, layout.downscale
        )
    if area > WORTH * keep_area:
        # no cheaper than the plan's own tiles that reach E: evaluate those, with their weights (which
        # sum to 1 on E, since every tile covering a pixel of E reaches E)
        return WindowSet(
            H, W, tuple(layout.tiles[i] for i in keep), tuple(weights[i] for i in keep), evaluated, layout.downscale
        )
    raw = tile_windows(_Tiles(tiles), falloff)
    total = torch.zeros(H, W, dtype=torch.float64)
    for t, r in zip(tiles, raw):
        total[t.slices] += r
    covered = total > 0
    norm = tuple((r / total[t.slices]).to(torch.float32) for t, r in zip(tiles, raw))
    return WindowSet(H, W, tuple(tiles), norm, covered, layout.downscale)


__all__ = ["FILL", "SNAP", "WORTH", "WindowSet", "cover", "grow", "window_set"]
