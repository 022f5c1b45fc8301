"""Per-tile denoise scales: uniform, by-area monotonicity, mask averaging, validation."""

from __future__ import annotations

import pytest
import torch

from solune.tiling import TileLayout, grid_layout, quadtree_layout, scales_by_area, scales_from_mask, uniform_scales
from solune.tiling.layout import Tile


def _quadtree() -> TileLayout:
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(4, 64, 64)
    x[:, :32, :32] = torch.randn(4, 32, 32, generator=g)  # one noisy quadrant
    x[:, 32:48, 48:] = 1.0  # one quadrant made of flat 16x16 blocks: splits exactly once
    x[:, 48:, 32:48] = 1.0
    return quadtree_layout(x, 64, 256, 0.1, overlap=16)


def test_uniform_scales():
    layout = grid_layout(64, 64, 256, 256, 32)
    assert uniform_scales(layout) == (1.0,) * len(layout)
    assert uniform_scales(layout, 0.35) == (0.35,) * len(layout)
    with pytest.raises(ValueError, match=r"denoise must be a number in \[0, 1\]; got 1.5"):
        uniform_scales(layout, 1.5)


def test_by_area_largest_gets_min_smallest_gets_max_and_is_monotone():
    layout = _quadtree()
    areas = layout.areas
    assert len(set(areas)) >= 3  # several levels
    scales = scales_by_area(layout, 0.2, 0.8)
    small, large = min(areas), max(areas)
    for area, scale in zip(areas, scales):
        if area == large:
            assert scale == pytest.approx(0.2, abs=1e-15)
        if area == small:
            assert scale == pytest.approx(0.8, abs=1e-15)
        # linear in area between the extremes
        assert scale == pytest.approx(0.8 - (area - small) / (large - small) * 0.6, abs=1e-12)
    # strictly decreasing in area
    order = sorted(set(areas))
    by_area = {a: s for a, s in zip(areas, scales)}
    assert all(by_area[a] > by_area[b] for a, b in zip(order, order[1:]))


def test_by_area_uses_leaf_area_not_edge_clamped_tile_area():
    layout = _quadtree()
    scales = scales_by_area(layout, 0.0, 1.0)
    # equal leaves get equal scales even though edge tiles are clamped smaller
    by_leaf = {}
    for core, scale in zip(layout.cores, scales):
        by_leaf.setdefault(core.size, set()).add(scale)
    assert all(len(v) == 1 for v in by_leaf.values())
    assert len({t.area for t in layout.tiles}) > len(by_leaf)


def test_by_area_equal_areas_give_max_denoise():
    layout = grid_layout(96, 96, 256, 256, 64)
    assert len({t.area for t in layout}) == 1
    assert scales_by_area(layout, 0.1, 0.6) == (0.6,) * len(layout)


def _owned(starts, stops, length):
    """Per tile along one axis of a grid: [from, to) it owns. A symmetric feather crosses over in the
    middle of an overlap band; an odd band's middle pixel goes to the earlier tile."""
    cuts = [0] + [-(-(stops[j - 1] + starts[j]) // 2) for j in range(1, len(starts))] + [length]
    return {s: (cuts[j], cuts[j + 1]) for j, s in enumerate(starts)}


@pytest.mark.parametrize("falloff", ["cosine", "gaussian"])
def test_from_mask_averages_the_mask_over_the_part_each_tile_owns(falloff):
    layout = grid_layout(32, 48, 128, 128, 40)  # 16x16 tiles, overlap 5 latent units (odd bands)
    mask = torch.zeros(1, 32 * 8, 48 * 8)
    mask[:, :, : 22 * 8] = 1.0  # columns < 22 are white
    scales = scales_from_mask(layout, mask, 0.25, 0.75, falloff)
    xs = sorted({t.x0 for t in layout})
    owned = _owned(xs, [next(t.x1 for t in layout if t.x0 == x) for x in xs], 48)
    for tile, scale in zip(layout, scales):
        a, b = owned[tile.x0]
        white = max(0, min(b, 22) - a) / (b - a)
        assert scale == pytest.approx(0.25 + white * 0.5, abs=1e-12)
    assert any(0.25 < s < 0.75 for s in scales)  # a tile whose own part straddles the edge gets a blend


def test_a_tile_whose_own_part_the_mask_leaves_at_zero_gets_min_denoise():
    # the case: default 768 px tiles on 1024² (2x2 after fitting), the top-left quarter changed;
    # the changed quarter reaches 32 px into the other tiles' overlaps, which they do not own
    layout = grid_layout(128, 128, 544, 544, 64)
    assert len(layout) == 4
    mask = torch.zeros(1024, 1024)
    mask[:512, :512] = 1.0
    assert scales_from_mask(layout, mask, 0.0, 1.0) == (1.0, 0.0, 0.0, 0.0)


def test_from_mask_half_white_gives_one_on_that_half():
    layout = grid_layout(64, 64, 128, 128, 0)
    mask = torch.zeros(64 * 8, 64 * 8)
    mask[:256] = 1.0
    scales = scales_from_mask(layout, mask)
    for tile, scale in zip(layout, scales):
        assert scale == (1.0 if tile.y1 <= 32 else 0.0)


def test_from_mask_latent_size_and_batch_mean():
    layout = grid_layout(16, 16, 64, 64, 16)
    g = torch.Generator().manual_seed(2)
    small = torch.rand(16, 16, generator=g, dtype=torch.float64)
    big = small.repeat_interleave(8, 0).repeat_interleave(8, 1)
    assert scales_from_mask(layout, small) == pytest.approx(scales_from_mask(layout, big), abs=1e-12)
    batch = torch.stack([small, 1 - small])  # mean is 0.5 everywhere
    assert scales_from_mask(layout, batch, 0.0, 0.5) == pytest.approx((0.25,) * len(layout), abs=1e-12)


@pytest.mark.parametrize(
    "mask, lo, hi, pattern",
    [
        (
            torch.zeros(2, 2, 16, 16),
            0.0,
            1.0,
            r"denoise_mask must be a non-empty MASK \[H, W\] or \[B, H, W\]; got \(2, 2, 16, 16\)",
        ),
        (torch.full((16, 16), float("nan")), 0.0, 1.0, r"denoise_mask must hold only finite values; got 256 NaN"),
        (torch.full((16, 16), 2.0), 0.0, 1.0, r"denoise_mask must hold values in \[0, 1\].*; got values in \[2, 2\]"),
        (torch.zeros(16, 16), 0.8, 0.2, r"min_denoise must be <= max_denoise \(0.2\); got 0.8"),
        (torch.zeros(16, 16), -0.1, 0.2, r"min_denoise must be a number in \[0, 1\]; got -0.1"),
        (torch.zeros(16, 16), 0.0, float("inf"), r"max_denoise must be a number in \[0, 1\]; got inf"),
    ],
)
def test_from_mask_validation_messages(mask, lo, hi, pattern):
    layout = grid_layout(16, 16, 64, 64, 16)
    with pytest.raises(ValueError, match=pattern):
        scales_from_mask(layout, mask, lo, hi)


def test_by_area_validation_messages():
    layout = TileLayout(4, 4, (Tile(0, 0, 4, 4),))
    with pytest.raises(ValueError, match=r"min_denoise must be <= max_denoise"):
        scales_by_area(layout, 0.9, 0.1)
    with pytest.raises(ValueError, match=r"max_denoise must be a number in \[0, 1\]; got '1'"):
        scales_by_area(layout, 0.0, "1")
