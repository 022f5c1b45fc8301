"""Grid layout: equal tiles, inside the latent, edges reached, overlap kept, origins aligned."""

from __future__ import annotations

import logging
import math
import random

import pytest

from solune.samplers.tiled import TileSettings
from solune.samplers.tiled.evaluate import active_batches
from solune.tiling import TileLayout, grid_layout
from solune.tiling.layout import Tile


def _axis(layout: TileLayout, axis: str) -> list[tuple[int, int]]:
    """Distinct (start, size) along one axis of a row-major grid."""
    if axis == "y":
        return sorted({(t.y0, t.h) for t in layout})
    return sorted({(t.x0, t.w) for t in layout})


def _random_cases(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        downscale = rng.choice([8, 16])
        align = rng.choice([1, 2])
        latent_h, latent_w = rng.randint(1, 200), rng.randint(1, 200)
        overlap = rng.choice([0, 8, 24, 64, 100])
        minimum = max(2, math.ceil(math.ceil(overlap / downscale) / align) + 1) * align * downscale
        tile_h = rng.randint(minimum, minimum + 1200)
        tile_w = rng.randint(minimum, minimum + 1200)
        yield latent_h, latent_w, tile_w, tile_h, overlap, downscale, align


@pytest.mark.parametrize("case", list(_random_cases(300)))
def test_grid_tiles_equal_inside_and_cover_edges(case):
    latent_h, latent_w, tile_w, tile_h, overlap, downscale, align = case
    layout = grid_layout(latent_h, latent_w, tile_w, tile_h, overlap, downscale, align)
    assert (layout.coverage() >= 1).all()
    for axis, length, pixels in (("y", latent_h, tile_h), ("x", latent_w, tile_w)):
        spans = _axis(layout, axis)
        starts = [s for s, _ in spans]
        sizes = {size for _, size in spans}
        # first tile at 0, last tile ends exactly at the edge, all inside
        assert starts[0] == 0
        assert spans[-1][0] + spans[-1][1] == length
        assert all(s + size <= length for s, size in spans)
        # origins are multiples of align
        assert all(s % align == 0 for s in starts)
        requested = pixels // downscale // align * align
        if requested >= length:  # clamped: one tile spanning the axis
            assert spans == [(0, length)]
            continue
        if length % align == 0:
            assert sizes == {requested}  # all tiles equal, sizes aligned
        else:  # only the edge tile takes the remainder
            assert {size for _, size in spans[:-1]} <= {requested}
            assert spans[-1][1] == requested + length % align
        # neighbours overlap by at least the requested overlap (latent, rounded up)
        want = math.ceil(overlap / downscale)
        for (s0, n0), (s1, _) in zip(spans, spans[1:]):
            assert s0 + n0 - s1 >= want
    # the grid is the full product of rows and columns, row-major
    ys, xs = _axis(layout, "y"), _axis(layout, "x")
    assert [(t.y0, t.x0) for t in layout] == [(y, x) for y, _ in ys for x, _ in xs]


def test_grid_known_layout():
    # 1024x768 px, 512 px tiles, 64 px overlap at downscale 8:
    # height 128 = 64 + 64 -> 2 tiles would overlap 0 < 8, so 3 tiles at 0, 32, 64;
    # width 96 -> 2 tiles at 0 and 32 (overlap 32 >= 8).
    layout = grid_layout(128, 96, 512, 512, 64)
    assert [(t.y0, t.x0, t.h, t.w) for t in layout] == [
        (0, 0, 64, 64),
        (0, 32, 64, 64),
        (32, 0, 64, 64),
        (32, 32, 64, 64),
        (64, 0, 64, 64),
        (64, 32, 64, 64),
    ]


def test_grid_overlap_zero_tiles_that_exactly_fit_partition_the_latent():
    layout = grid_layout(64, 96, 256, 256, 0)
    assert len(layout) == 2 * 3
    assert (layout.coverage() == 1).all()


def test_grid_alignment_two():
    layout = grid_layout(100, 70, 200, 136, 24, downscale=8, align=2)
    for t in layout:
        assert t.y0 % 2 == 0 and t.x0 % 2 == 0
        assert t.h % 2 == 0 and t.w % 2 == 0
    assert {t.size for t in layout} == {(16, 24)}  # 136 // 8 = 17 -> 16; 200 // 8 = 25 -> 24


def test_grid_tile_larger_than_image_is_clamped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="solune.tiling.layout"):
        layout = grid_layout(40, 30, 1024, 1024, 64)
    assert [(t.y0, t.x0, t.h, t.w) for t in layout] == [(0, 0, 40, 30)]
    assert [r.getMessage() for r in caplog.records] == [
        "tile_height=1024 px is larger than the image (320 px): one tile spans the image on that axis (the tile is "
        "clamped to the image)",
        "tile_width=1024 px is larger than the image (240 px): one tile spans the image on that axis (the tile is "
        "clamped to the image)",
    ]


def test_grid_tile_below_minimum_names_the_minimum_in_pixels():
    # overlap 64 px = 8 latent units, align 2 -> minimum max(4, 10) = 10 units = 80 px
    with pytest.raises(ValueError, match=r"tile_width=64 px.*minimum is 80 px"):
        grid_layout(100, 100, 64, 512, 64, downscale=8, align=2)
    # no overlap, align 1 -> minimum 2 units = 16 px
    with pytest.raises(ValueError, match=r"tile_height=8 px.*minimum is 16 px"):
        grid_layout(100, 100, 512, 8, 0)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(latent_h=0), r"latent_h must be an integer >= 1; got 0"),
        (dict(latent_w=2.5), r"latent_w must be an integer >= 1; got 2.5"),
        (dict(overlap=-8), r"overlap must be an integer >= 0; got -8"),
        (dict(tile_width=0), r"tile_width must be an integer >= 1; got 0"),
        (dict(align=0), r"align must be an integer >= 1; got 0"),
        (dict(downscale=True), r"downscale must be an integer >= 1; got True"),
    ],
)
def test_grid_validation_messages(kwargs, pattern):
    args = dict(latent_h=64, latent_w=64, tile_width=256, tile_height=256, overlap=32)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        grid_layout(**args)


def test_layout_rejects_tiles_outside_or_uncovered_pixels():
    with pytest.raises(ValueError, match=r"tiles\[1\].*must lie inside the 8x8 latent"):
        TileLayout(8, 8, (Tile(0, 0, 8, 8), Tile(4, 4, 5, 4)))
    with pytest.raises(ValueError, match=r"must cover the whole 8x8 latent.*\(y=0, x=4\)"):
        TileLayout(8, 8, (Tile(0, 0, 8, 4),))
    with pytest.raises(ValueError, match=r"at least one Tile"):
        TileLayout(8, 8, ())


def test_layout_batches_group_equal_sizes_in_order():
    layout = TileLayout(
        8, 12, (Tile(0, 0, 4, 4), Tile(0, 4, 4, 8), Tile(4, 0, 4, 4), Tile(4, 4, 4, 4), Tile(4, 8, 4, 4))
    )
    every = [True] * len(layout)
    assert active_batches(layout, every, 2) == [[0, 2], [3, 4], [1]]
    assert active_batches(layout, every, 10) == [[0, 2, 3, 4], [1]]
    with pytest.raises(ValueError, match=r"tile_batch_size must be an integer in \[1, 256\]; got 0"):
        TileSettings(tile_batch_size=0)
