"""Which latent each regional VAE pass reads and writes, in latent units (pure torch).

A refine changes only the pixels whose per-pixel scale is non-zero, so the VAE never needs the rest:

* the **decoder** produces the changed pixels: the latent cells holding a changed pixel (`changed_cells`),
  covered by tiles (`vae_pass`) that each read their cells grown by the decoder's `context`;
* the **model** reads the windows the tiled hook evaluates (`model_region`: the union over every active
  set the run can have, each grown by the hook's own margin; the whole latent without `tiled_model`);
* the **encoder** produces what those two read (`encode_needed`), again tile by tile, each tile reading its
  pixels grown by the encoder's `context`.

A `VaePass` is the tile list of one pass: per tile the latent it writes (`writes`, overlapping neighbours
by about `overlap` and feathered across it) and the latent it reads (`reads`: the write grown by `context`,
clamped to the latent). Memory is bounded by the tile size, never by the image. Nothing outside the
tiles is read or written; `read_map` / `write_map` say exactly which cells those are, for the nodes'
plans and the tests that count them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..checks import check_int
from ..samplers.tiled import TilePlan, plan_windows
from ..samplers.tiled.preserve import start_sigmas
from ..samplers.tiled.settings import MODES
from ..samplers.tiled.windows import cover
from ..tiling import Tile, overlap_bands, tile_window

#: largest VAE tile side written, latent units (1024 pixels for an 8× VAE: a 1024² picture, or any region of
#: it, is one pass, as ComfyUI's whole-image VAEDecode makes it; larger ones are cut, so memory stays bounded)
VAE_TILE = 128
#: overlap of neighbouring VAE tiles, latent units: their outputs are feathered across it (no seam)
VAE_OVERLAP = 8
#: context each encoder tile reads around what it writes, latent units (64 pixels for an 8× VAE)
ENCODE_CONTEXT = 8
#: context each decoder tile reads around what it writes, latent units
DECODE_CONTEXT = 8


class _Tiles:
    """What `overlap_bands` reads of a layout."""

    def __init__(self, tiles):
        self.tiles = tuple(tiles)


def _scaled(tile: Tile, unit: int) -> Tile:
    return Tile(tile.y0 * unit, tile.x0 * unit, tile.h * unit, tile.w * unit)


def _grown(tile: Tile, by: int, h: int, w: int) -> Tile:
    y0, x0 = max(0, tile.y0 - by), max(0, tile.x0 - by)
    y1, x1 = min(h, tile.y1 + by), min(w, tile.x1 + by)
    return Tile(y0, x0, y1 - y0, x1 - x0)


def _paint(tiles, h: int, w: int) -> torch.Tensor:
    out = torch.zeros(h, w, dtype=torch.bool)
    for t in tiles:
        out[t.slices] = True
    return out


@dataclass(frozen=True)
class VaePass:
    """The tiles of one regional VAE pass over a latent of latent_h × latent_w (latent units).

    `writes[i]` is the latent (encoder) or the pixels' latent cells (decoder) tile i produces;
    `reads[i]` the latent cells whose pixels (encoder) or latent (decoder) it reads. Tile outputs
    are accumulated in list order with `ratio(i, unit)`, which makes them a feathered partition of
    unity over the written cells, exact where one tile writes (and wherever all tiles agree).
    """

    latent_h: int
    latent_w: int
    writes: tuple[Tile, ...]
    reads: tuple[Tile, ...]
    falloff: str = "cosine"

    def __len__(self) -> int:
        return len(self.writes)

    def write_map(self) -> torch.Tensor:
        """CPU bool [latent_h, latent_w]: the cells some tile writes."""
        return _paint(self.writes, self.latent_h, self.latent_w)

    def read_map(self) -> torch.Tensor:
        """CPU bool [latent_h, latent_w]: the cells some tile reads."""
        return _paint(self.reads, self.latent_h, self.latent_w)

    def read_area(self) -> int:
        """Cells read, summed over tiles (context and overlaps counted per tile): the pass's cost."""
        return sum(t.area for t in self.reads)

    def ratios(self, unit: int = 1) -> Iterator[torch.Tensor]:
        """Per tile in order, float32 [h·unit, w·unit]: its share in the running mean at `unit` pixels per cell.

        out = lerp(out, result_i, ratio_i) tile after tile gives Σ wᵢ·resultᵢ with feather weights wᵢ
        that sum to 1 on every written pixel: the raw window of tile i divided by the sum of the raw
        windows of tiles 0..i (float64), so it is exactly 1 where tile i is the first to write, and
        the mean is exact wherever the tiles agree (lerp(a, a, r) = a). Built one tile at a time from
        that tile's neighbours (memory: one tile).
        """
        tiles = [_scaled(t, unit) for t in self.writes]
        bands = overlap_bands(_Tiles(tiles)) if tiles else []
        for i, me in enumerate(tiles):
            own = tile_window(me, bands[i], self.falloff)
            total = own.clone()
            for j in range(i):
                t = tiles[j]
                y0, x0, y1, x1 = max(t.y0, me.y0), max(t.x0, me.x0), min(t.y1, me.y1), min(t.x1, me.x1)
                if y0 >= y1 or x0 >= x1:
                    continue
                win = tile_window(t, bands[j], self.falloff)
                total[y0 - me.y0 : y1 - me.y0, x0 - me.x0 : x1 - me.x0] += win[
                    y0 - t.y0 : y1 - t.y0, x0 - t.x0 : x1 - t.x0
                ]
            yield (own / total).to(torch.float32)


def vae_pass(needed: torch.Tensor, *, tile: int = VAE_TILE, overlap: int = VAE_OVERLAP, context: int = 0) -> VaePass:
    """Tiles (each at most `tile` × `tile` cells) that write every cell of `needed` and read `context` more.

    The tiles cover `needed` closely (two far-apart regions are two small tiles); where one tile over its
    bounding box would fit and read no more than they do (context and overlaps counted), that one tile.

    Args:
        needed: CPU bool [h, w]: the cells the pass must produce.
        tile: Largest tile side written, latent units.
        overlap: Overlap of neighbouring tiles, latent units (feathered across).
        context: Cells read on each side beyond what a tile writes (the network's receptive field), clamped
            to the latent.
    """
    tile = check_int("tile", tile, 2, hint="latent units")
    overlap = check_int("overlap", overlap, 0, tile - 1, hint="latent units")
    context = check_int("context", context, 0, hint="latent units")
    if needed.dim() != 2 or needed.dtype != torch.bool:
        raise ValueError(f"needed must be a bool map [h, w]; got {needed.dtype} of shape {tuple(needed.shape)}")
    h, w = needed.shape
    if not bool(needed.any()):
        return VaePass(h, w, (), ())
    needed = needed.cpu()
    writes = tuple(cover(needed, tile, tile, overlap))
    reads = tuple(_grown(t, context, h, w) for t in writes)
    ys, xs = torch.nonzero(needed, as_tuple=True)
    box = Tile(int(ys.min()), int(xs.min()), int(ys.max()) - int(ys.min()) + 1, int(xs.max()) - int(xs.min()) + 1)
    if len(writes) > 1 and box.h <= tile and box.w <= tile:  # one tile over it all, where that reads less
        read = _grown(box, context, h, w)
        if read.area <= sum(r.area for r in reads):
            writes, reads = (box,), (read,)
    return VaePass(h, w, writes, reads)


def changed_cells(scale: torch.Tensor, downscale: int) -> torch.Tensor:
    """CPU bool [h, w]: the latent cells (downscale × downscale pixels) holding a pixel of non-zero scale.

    Args:
        scale: Per-pixel scale [H, W] or [B, H, W] with H = h·downscale, W = w·downscale (any sample counts).
        downscale: Pixels per latent cell.
    """
    downscale = check_int("downscale", downscale, 1)
    s = scale.reshape(-1, *scale.shape[-2:])
    if s.shape[-2] % downscale or s.shape[-1] % downscale:
        raise ValueError(f"scale must be a multiple of {downscale} pixels per side; got shape {tuple(scale.shape)}")
    changed = (s != 0).any(dim=0).to(torch.float32)[None, None]
    return (F.max_pool2d(changed, downscale, stride=downscale)[0, 0] > 0).cpu()


def model_region(plan: TilePlan, mode: str, tiled_model: bool, sigmas: torch.Tensor | None = None) -> torch.Tensor:
    """CPU bool [h, w]: every latent cell the tiled hook sends through the model during a run.

    Without `tiled_model` the model sees the whole latent (when anything is active). With it, the union
    of the hook's windows (`plan_windows`, margin included) over every active set of the run: in blend
    mode the pixels of non-zero scale; in strength mode each superlevel set of the pixels' start σ above
    the schedule's last σ (a pixel joins at σ_start and stays; `preserve.start_sigmas`).

    Args:
        plan: The hook's plan (`make_plan`).
        mode: "blend" or "strength".
        tiled_model: The hook's tiled_model setting.
        sigmas: The run's schedule (strength mode), as the sampler will use it.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    layout = plan.layout
    h, w = layout.latent_h, layout.latent_w
    scale = plan.scale_map.reshape(-1, h, w).cpu()
    nonzero = (scale != 0).any(dim=0)
    if not bool(nonzero.any()):
        return torch.zeros(h, w, dtype=torch.bool)
    if not tiled_model:
        return torch.ones(h, w, dtype=torch.bool)
    if mode == "blend":
        actives = [nonzero]
    else:
        if sigmas is None:
            raise ValueError("sigmas are needed in strength mode (where each pixel joins the schedule)")
        start = start_sigmas(sigmas, scale)
        last = float(sigmas.detach().flatten()[-1].cpu())
        levels = sorted({v for v in start.unique().tolist() if v > last or last > 0})
        actives = [(start >= v).any(dim=0) for v in levels]
    region = torch.zeros(h, w, dtype=torch.bool)
    for active in actives:
        windows = plan_windows(plan, active)
        if windows is not None:
            region |= _paint(windows.tiles, h, w)
    return region


def encode_needed(model_cells: torch.Tensor, decode: VaePass) -> torch.Tensor:
    """CPU bool [h, w]: the latent the encoder must produce: what the model reads and what the decoder reads."""
    return model_cells.cpu() | decode.read_map()


__all__ = [
    "DECODE_CONTEXT",
    "ENCODE_CONTEXT",
    "VAE_OVERLAP",
    "VAE_TILE",
    "VaePass",
    "changed_cells",
    "encode_needed",
    "model_region",
    "vae_pass",
]
