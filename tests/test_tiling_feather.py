"""Feathered weights: exact partition of unity, edge handling, golden falloffs, blend maps."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from solune.samplers.tiled import evaluate_tiled
from solune.tiling import TileLayout, blend_map, grid_layout, quadtree_layout, tile_weights
from solune.tiling.feather import overlap_bands, tile_windows
from solune.tiling.layout import Tile


def _random_layouts(n: int, seed: int = 0) -> list[TileLayout]:
    """Grids (odd sizes, exact fits, overlap 0, clamped tiles) and quadtrees."""
    rng = random.Random(seed)
    layouts = [
        grid_layout(64, 96, 256, 256, 0),  # tiles exactly fit, no overlap
        grid_layout(37, 53, 128, 96, 0),  # odd sizes, overlap 0
        grid_layout(31, 29, 512, 512, 64),  # one clamped tile
        grid_layout(33, 45, 64, 80, 16, align=2),  # edge tiles take the remainder
    ]
    while len(layouts) < n:
        h, w = rng.randint(1, 90), rng.randint(1, 90)
        align = rng.choice([1, 2])
        if rng.random() < 0.5:
            ov = rng.choice([0, 8, 16, 40])
            minimum = max(2, math.ceil(math.ceil(ov / 8) / align) + 1) * align * 8
            layouts.append(
                grid_layout(
                    h, w, rng.randint(minimum, minimum + 240), rng.randint(minimum, minimum + 240), ov, align=align
                )
            )
        else:
            g = torch.Generator().manual_seed(rng.randint(0, 10**6))
            content = torch.randn(2, h, w, generator=g) * torch.rand(1, h, 1, generator=g) ** 3
            layouts.append(
                quadtree_layout(content, 32, 256, rng.uniform(0.0, 0.5), align=align, overlap=rng.choice([0, 8, 24]))
            )
    return layouts


LAYOUTS = _random_layouts(48)


def _weight_sum(layout: TileLayout, weights: list[torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(layout.latent_h, layout.latent_w, dtype=torch.float64)
    for tile, weight in zip(layout.tiles, weights):
        total[tile.slices] += weight.double()
    return total


@pytest.mark.parametrize("falloff", ["cosine", "gaussian"])
def test_weights_sum_to_one_everywhere(falloff):
    for layout in LAYOUTS:
        w64 = tile_weights(layout, falloff, torch.float64)
        w32 = tile_weights(layout, falloff, torch.float32)
        assert all(w.dtype == torch.float32 for w in w32)
        assert all((w > 0).all() for w in w64)  # every covering tile contributes
        assert (_weight_sum(layout, w64) - 1).abs().max() <= 1e-12
        assert (_weight_sum(layout, w32) - 1).abs().max() <= 1e-6


@pytest.mark.parametrize("falloff", ["cosine", "gaussian"])
def test_pointwise_function_tile_by_tile_equals_whole_image(falloff):
    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.square() - 0.3 * x.abs() + x.clamp(min=0.1)

    g = torch.Generator().manual_seed(7)
    for layout in LAYOUTS[:24]:
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
            x = torch.randn(2, 3, layout.latent_h, layout.latent_w, generator=g, dtype=torch.float64).to(dtype)
            weights = tile_weights(layout, falloff, dtype)
            # the run's own path: batches of equal size (3 at most), cropped, evaluated and feathered
            blended = evaluate_tiled(
                lambda tiles, _: f(tiles), x, layout, weights, [True] * len(layout), torch.zeros(()), 3
            )
            assert blended.dtype == dtype
            assert (blended - f(x)).abs().max() <= tol


def test_overlap_zero_gives_weight_exactly_one():
    layout = grid_layout(64, 96, 256, 256, 0)  # 2x3 tiles that exactly fit
    assert (layout.coverage() == 1).all()
    assert all(b == (0, 0, 0, 0) for b in overlap_bands(layout))
    assert all(bool((w == 1).all()) for w in tile_weights(layout))


def test_cosine_crossfade_golden_values():
    # two tiles overlapping on columns 8..11: tile 1 rises as 0.5 - 0.5 cos(pi (k + 0.5) / 4)
    layout = TileLayout(4, 20, (Tile(0, 0, 4, 12), Tile(0, 8, 4, 12)))
    assert overlap_bands(layout) == [(0, 0, 0, 4), (0, 0, 4, 0)]
    w0, w1 = tile_weights(layout, "cosine", torch.float64)
    rise = torch.tensor([0.5 - 0.5 * math.cos(math.pi * (k + 0.5) / 4) for k in range(4)], dtype=torch.float64)
    for row in range(4):  # top and bottom are image edges: no vertical falloff
        assert torch.allclose(w1[row, :4], rise, rtol=0, atol=1e-15)
        assert torch.allclose(w0[row, 8:], 1 - rise, rtol=0, atol=1e-15)
        assert (w0[row, :8] == 1).all() and (w1[row, 4:] == 1).all()


def test_gaussian_crossfade_golden_values():
    layout = TileLayout(3, 20, (Tile(0, 0, 3, 12), Tile(0, 8, 3, 12)))
    _, w1 = tile_weights(layout, "gaussian", torch.float64)

    def g(t: float) -> float:
        return math.exp(-0.5 * ((1 - t) / 0.3) ** 2)

    want = torch.tensor(
        [g((k + 0.5) / 4) / (g((k + 0.5) / 4) + g(1 - (k + 0.5) / 4)) for k in range(4)], dtype=torch.float64
    )
    assert torch.allclose(w1[1, :4], want, rtol=0, atol=1e-15)
    assert (w1[:, :4].diff(dim=1) > 0).all()  # rises monotonically across the band


@pytest.mark.parametrize("falloff", ["cosine", "gaussian"])
def test_windows_fall_off_only_towards_neighbours_not_image_edges(falloff):
    layout = grid_layout(40, 40, 192, 192, 64)  # 2x2 tiles of 24 with 8 units of overlap
    assert [(t.y0, t.x0) for t in layout] == [(0, 0), (0, 16), (16, 0), (16, 16)]
    windows = tile_windows(layout, falloff)
    for tile, window in zip(layout.tiles, windows):
        assert (window > 0).all() and (window <= 1).all()
        rows = slice(0, 16) if tile.y0 == 0 else slice(8, 24)  # away from the neighbour's band
        cols = slice(0, 16) if tile.x0 == 0 else slice(8, 24)
        assert (window[rows, cols] == 1).all()  # full weight up to the image edges
        band_col = window[rows, 23] if tile.x0 == 0 else window[rows, 0]
        assert (band_col < 0.5).all()  # the side facing a neighbour falls off


def test_blend_map_exact_where_one_tile_covers_and_zero_for_zero_tiles():
    g = torch.Generator().manual_seed(4)
    for layout in LAYOUTS:
        values = torch.rand(len(layout), generator=g, dtype=torch.float64)
        values[torch.rand(len(layout), generator=g) < 0.4] = 0.0
        for falloff in ("cosine", "gaussian"):
            m = blend_map(layout, values.tolist(), falloff, torch.float64)
            m32 = blend_map(layout, values, falloff)
            assert m32.dtype == torch.float32
            count = torch.from_numpy(layout.coverage())
            lo_np = np.full((layout.latent_h, layout.latent_w), np.inf)
            hi_np = np.full_like(lo_np, -np.inf)
            for tile, v in zip(layout.tiles, values.tolist()):
                np.minimum(lo_np[tile.slices], v, out=lo_np[tile.slices])
                np.maximum(hi_np[tile.slices], v, out=hi_np[tile.slices])
            lo, hi = torch.from_numpy(lo_np), torch.from_numpy(hi_np)
            positive = hi > 0  # some covering tile has a positive value
            assert (m[~positive] == 0).all() and (m32[~positive] == 0).all()
            single = count == 1
            assert (m[single] == lo[single]).all()
            assert (m32[single] == lo[single].float()).all()
            assert (m >= lo - 1e-15).all() and (m <= hi + 1e-15).all()


def test_blend_map_is_a_weighted_mean_in_the_band():
    layout = TileLayout(2, 20, (Tile(0, 0, 2, 12), Tile(0, 8, 2, 12)))
    m = blend_map(layout, [0.2, 0.8], "cosine", torch.float64)
    rise = torch.tensor([0.5 - 0.5 * math.cos(math.pi * (k + 0.5) / 4) for k in range(4)], dtype=torch.float64)
    assert torch.allclose(m[0, 8:12], 0.2 + 0.6 * rise, rtol=0, atol=1e-15)
    assert (m[:, :8] == 0.2).all() and (m[:, 12:] == 0.8).all()


def test_feather_validation_messages():
    layout = grid_layout(16, 16, 64, 64, 16)
    with pytest.raises(ValueError, match=r"falloff must be one of cosine, gaussian; got 'linear'"):
        tile_weights(layout, "linear")
    with pytest.raises(ValueError, match=r"falloff must be one of"):
        blend_map(layout, [1.0] * len(layout), "box")
    with pytest.raises(ValueError, match=rf"per_tile_values must hold one value per tile \({len(layout)}\); got 2"):
        blend_map(layout, [1.0, 0.5])
    with pytest.raises(ValueError, match=r"per_tile_values must be finite"):
        blend_map(layout, [float("nan")] * len(layout))
    with pytest.raises(ValueError, match=r"dtype must be a floating dtype; got torch.int64"):
        tile_weights(layout, dtype=torch.int64)
