"""The tile layout: a plain geometry object in latent units, and the uniform grid.

A `TileLayout` is a list of axis-aligned rectangles (`Tile`) over a latent of
`latent_h` x `latent_w`. Tiles never leave the latent (there is no padding) and
together they cover every latent pixel. Per-tile denoise scales live beside the
layout (see `solune.tiling.scales`), and weight windows are built from it (see
`solune.tiling.feather`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..checks import check_int

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """One rectangle of a layout, in latent units: rows y0..y0+h, columns x0..x0+w."""

    y0: int
    x0: int
    h: int
    w: int

    @property
    def y1(self) -> int:
        """One past the last row."""
        return self.y0 + self.h

    @property
    def x1(self) -> int:
        """One past the last column."""
        return self.x0 + self.w

    @property
    def area(self) -> int:
        """Number of latent pixels in the tile."""
        return self.h * self.w

    @property
    def size(self) -> tuple[int, int]:
        """(h, w)."""
        return (self.h, self.w)

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices, so that `x[..., *tile.slices]` is the tile's crop."""
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))


@dataclass(frozen=True)
class TileLayout:
    """Tiles covering a latent of `latent_h` x `latent_w`, all in latent units.

    Args:
        latent_h: Latent height.
        latent_w: Latent width.
        tiles: The tiles; each lies inside the latent and together they cover it.
        cores: Optional non-overlapping cells the tiles grew from (a quadtree's
            leaves before overlap was added), one per tile and inside it. They
            make `areas` reflect the content split rather than edge clamping.
        downscale: Pixels per latent unit (8 for SD/SDXL/Flux VAE latents).
        align: The model's patch size in latent units (2 for Flux/SD3, 1 for SD1.5).
    """

    latent_h: int
    latent_w: int
    tiles: tuple[Tile, ...]
    cores: tuple[Tile, ...] | None = None
    downscale: int = 8
    align: int = 1

    def __post_init__(self) -> None:
        check_int("latent_h", self.latent_h, 1)
        check_int("latent_w", self.latent_w, 1)
        check_int("downscale", self.downscale, 1)
        check_int("align", self.align, 1)
        object.__setattr__(self, "tiles", tuple(self.tiles))
        if not self.tiles:
            raise ValueError("tiles must hold at least one Tile; got none")
        for i, tile in enumerate(self.tiles):
            self._check_inside(f"tiles[{i}]", tile)
        if self.cores is not None:
            object.__setattr__(self, "cores", tuple(self.cores))
            if len(self.cores) != len(self.tiles):
                raise ValueError(f"cores must hold one Tile per tile ({len(self.tiles)}); got {len(self.cores)}")
            for i, (core, tile) in enumerate(zip(self.cores, self.tiles)):
                self._check_inside(f"cores[{i}]", core)
                if not (tile.y0 <= core.y0 and core.y1 <= tile.y1 and tile.x0 <= core.x0 and core.x1 <= tile.x1):
                    raise ValueError(f"cores[{i}]={core} must lie inside tiles[{i}]={tile}")
        covered = self.coverage()
        if int(covered.min()) == 0:
            ys, xs = np.nonzero(covered == 0)
            raise ValueError(
                f"tiles must cover the whole {self.latent_h}x{self.latent_w} latent; "
                f"latent pixel (y={ys[0]}, x={xs[0]}) and {len(ys) - 1} others are uncovered"
            )

    def _check_inside(self, name: str, tile: Tile) -> None:
        if not isinstance(tile, Tile):
            raise ValueError(f"{name} must be a Tile; got {type(tile).__name__}")
        for field in ("y0", "x0"):
            check_int(f"{name}.{field}", getattr(tile, field), 0)
        for field in ("h", "w"):
            check_int(f"{name}.{field}", getattr(tile, field), 1)
        if tile.y1 > self.latent_h or tile.x1 > self.latent_w:
            raise ValueError(
                f"{name}={tile} must lie inside the {self.latent_h}x{self.latent_w} latent "
                f"(it ends at y={tile.y1}, x={tile.x1})"
            )

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    def __getitem__(self, index: int) -> Tile:
        return self.tiles[index]

    @property
    def areas(self) -> tuple[int, ...]:
        """Per-tile content area: the core's area when cores are known, else the tile's."""
        return tuple(t.area for t in (self.cores if self.cores is not None else self.tiles))

    def coverage(self) -> np.ndarray:
        """How many tiles cover each latent pixel, as an int array [latent_h, latent_w]."""
        count = np.zeros((self.latent_h, self.latent_w), dtype=np.int64)
        for tile in self.tiles:
            count[tile.slices] += 1
        return count


def _tile_latent(name: str, pixels: int, downscale: int, align: int) -> int:
    """Pixels to latent units, rounded down to a multiple of `align`."""
    check_int(name, pixels, 1)
    return (pixels // downscale) // align * align


def _overlap_latent(overlap: int, downscale: int) -> int:
    """Overlap pixels to latent units, rounded up so the overlap is never less than asked."""
    check_int("overlap", overlap, 0)
    return math.ceil(overlap / downscale)


def _axis_positions(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int]]:
    """(start, size) of evenly spread tiles of `tile` units over `length`, last ending at the edge.

    Starts are multiples of `align`; consecutive starts are at most
    `tile - overlap` apart so neighbours overlap by at least `overlap`. When
    `length` is not a multiple of `align` the tiles ending at the edge are
    `length % align` larger (their start stays aligned).
    """
    if tile >= length:
        return [(0, length)]
    last = (length - tile) // align  # last start, in align units
    max_stride = (tile - overlap) // align  # >= 1, validated by the caller
    gaps = math.ceil(last / max_stride)
    if gaps == 0:
        return [(0, length)]
    starts = [(i * last + gaps // 2) // gaps * align for i in range(gaps + 1)]
    return [(s, tile if i < gaps else length - s) for i, s in enumerate(starts)]


def grid_layout(
    latent_h: int,
    latent_w: int,
    tile_width: int,
    tile_height: int,
    overlap: int,
    downscale: int = 8,
    align: int = 1,
) -> TileLayout:
    """A uniform grid of equal tiles that reach every edge without padding.

    Tile sizes are converted to latent units as `pixels // downscale`, rounded
    down to a multiple of `align`; the overlap as `ceil(overlap / downscale)`,
    so the actual overlap is never less than asked. Along each axis the first
    tile starts at 0, the last ends exactly at the edge, and the starts between
    are spread evenly (multiples of `align`), with as few tiles as keep every
    overlap >= the requested one. Tiles are listed row-major.

    A tile larger than the latent along an axis is clamped to the latent (one
    tile on that axis), with a `logging.warning` (shown to the user by the nodes):
    a big tile on a small image is a normal request, not an error. If the latent size is not a multiple of
    `align`, the tiles that end at the far edge are `latent % align` larger.

    Args:
        latent_h: Latent height (image height / downscale).
        latent_w: Latent width.
        tile_width: Tile width in pixels.
        tile_height: Tile height in pixels.
        overlap: Minimum overlap between neighbouring tiles, in pixels (>= 0).
        downscale: Pixels per latent unit (8 for SD/SDXL/Flux VAE latents).
        align: Patch size in latent units; tile starts and sizes are multiples.

    Raises:
        ValueError: On a non-positive size, a negative overlap, or a tile (on an
            axis that needs more than one tile) below max(2*align, overlap_latent
            + align) latent units, rounded up to a multiple of `align`; the
            message gives that minimum in pixels.
    """
    latent_h = check_int("latent_h", latent_h, 1)
    latent_w = check_int("latent_w", latent_w, 1)
    downscale = check_int("downscale", downscale, 1)
    align = check_int("align", align, 1)
    ov = _overlap_latent(overlap, downscale)
    minimum = max(2, math.ceil(ov / align) + 1) * align  # aligned, and tile - overlap >= align
    axes = []
    for name, pixels, length in (("tile_height", tile_height, latent_h), ("tile_width", tile_width, latent_w)):
        size = _tile_latent(name, pixels, downscale, align)
        if size >= length:
            if size > length:
                logger.warning(
                    "%s=%d px is larger than the image (%d px): one tile spans the image on that axis (the tile "
                    "is clamped to the image)",
                    name,
                    pixels,
                    length * downscale,
                )
            axes.append([(0, length)])
            continue
        if size < minimum:
            raise ValueError(
                f"{name}={pixels} px is {size} latent units (downscale={downscale}, align={align}); "
                f"with overlap={overlap} px the minimum is {minimum * downscale} px "
                f"(max(2*align, overlap+align) rounded up to align = {minimum} latent units)"
            )
        axes.append(_axis_positions(length, size, ov, align))
    tiles = tuple(Tile(y, x, h, w) for (y, h) in axes[0] for (x, w) in axes[1])
    return TileLayout(latent_h, latent_w, tiles, downscale=downscale, align=align)
