"""Quadtree layout: splits only where content varies, respects min/max, alignment, determinism."""

from __future__ import annotations

import pytest
import torch

from solune.tiling import image_to_latent_size, quadtree_layout
from solune.tiling.quadtree import busyness


def _half_noise(h: int = 64, w: int = 64, channels: int = 4, seed: int = 0) -> torch.Tensor:
    """Left half unit noise, right half a constant: variance ~1 vs exactly 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((channels, h, w), 0.7)
    x[:, :, : w // 2] = torch.randn(channels, h, w // 2, generator=g)
    return x


@pytest.mark.parametrize("criterion", ["variance", "gradient"])
def test_quadtree_splits_only_the_noisy_half(criterion):
    # downscale 8: min_tile 64 px = 8 units, max_tile 256 px = 32 units -> 2x2 roots of 32
    layout = quadtree_layout(_half_noise(), 64, 256, 0.1, criterion=criterion, overlap=0)
    cores = layout.cores
    noisy = [c for c in cores if c.x1 <= 32]
    flat = [c for c in cores if c.x0 >= 32]
    assert len(noisy) + len(flat) == len(cores)  # no leaf straddles the boundary
    assert {c.size for c in noisy} == {(8, 8)}  # split down to min_tile
    assert len(noisy) == (64 // 8) * (32 // 8)
    assert [c.size for c in flat] == [(32, 32), (32, 32)]  # flat roots never split
    assert (layout.coverage() == 1).all()  # overlap 0: leaves partition the latent


def test_quadtree_threshold_above_content_keeps_the_roots():
    x = _half_noise().double()  # the statistic is computed in float64
    stat = busyness(x, "variance")
    for threshold in (stat + 1e-9, stat):  # splits only when the statistic *exceeds* it
        layout = quadtree_layout(x, 64, 512, threshold, overlap=0)
        assert [(t.y0, t.x0, t.h, t.w) for t in layout] == [(0, 0, 64, 64)]
    flat = quadtree_layout(torch.full((4, 64, 64), 3.0), 64, 512, 0.0, overlap=0)
    assert len(flat) == 1
    layout = quadtree_layout(x, 64, 512, stat - 1e-9, overlap=0)
    assert len(layout) > 1


def test_busyness_matches_formulas():
    x = torch.arange(12, dtype=torch.float64).reshape(1, 3, 4)  # rows step 4, columns step 1
    mean = x.mean()
    assert busyness(x, "variance") == pytest.approx(float(((x - mean) ** 2).mean()))
    assert busyness(x, "gradient") == pytest.approx(4.0**2 + 1.0**2)
    assert busyness(torch.ones(2, 5, 5), "variance") == 0.0


def test_quadtree_overlap_grows_leaves_and_clamps():
    layout = quadtree_layout(_half_noise(), 64, 256, 0.1, overlap=16)  # 2 latent units
    for core, tile in zip(layout.cores, layout.tiles):
        assert tile.y0 == max(core.y0 - 2, 0) and tile.x0 == max(core.x0 - 2, 0)
        assert tile.y1 == min(core.y1 + 2, 64) and tile.x1 == min(core.x1 + 2, 64)


def test_quadtree_alignment_and_min_max_respected():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 70, 46, generator=g) * torch.linspace(0, 2, 46)  # busier to the right
    layout = quadtree_layout(x, 48, 320, 0.3, align=2, overlap=24)  # min 6, max 40, overlap 4 units
    for core in layout.cores:
        assert core.y0 % 2 == 0 and core.x0 % 2 == 0
        assert core.h >= 6 and core.w >= 6
        assert core.h <= 40 and core.w <= 40
        assert core.h % 2 == 0 and core.w % 2 == 0  # 70 and 46 are even
    for tile in layout.tiles:
        assert tile.y0 % 2 == 0 and tile.x0 % 2 == 0
        assert tile.y1 <= 70 and tile.x1 <= 46
    assert len({c.size for c in layout.cores}) > 1  # it did adapt


def test_quadtree_is_deterministic_and_batch_mean():
    x = _half_noise(seed=5)
    a = quadtree_layout(x, 64, 256, 0.1)
    b = quadtree_layout(x.clone(), 64, 256, 0.1)
    assert a == b
    # a batch is averaged: two copies give the same layout as one
    assert quadtree_layout(torch.stack([x, x]), 64, 256, 0.1) == a
    assert [(c.y0, c.x0) for c in a.cores] == sorted((c.y0, c.x0) for c in a.cores)


def test_quadtree_from_image_resized_to_latent():
    # an IMAGE whose top half is a checkerboard, bottom half flat grey
    image = torch.full((1, 256, 256, 3), 0.5)
    checker = ((torch.arange(128)[:, None] // 4 + torch.arange(256)[None, :] // 4) % 2).float()
    image[0, :128, :, :] = checker[..., None]
    content = image_to_latent_size(image, 32, 32)  # 8 px blocks of 4 px checks average to 0.5 ...
    assert content.shape == (1, 3, 32, 32)
    assert torch.allclose(content, torch.full_like(content, 0.5))
    image[0, :128, :, :] = ((torch.arange(128)[:, None] // 8 + torch.arange(256)[None, :] // 8) % 2).float()[..., None]
    content = image_to_latent_size(image, 32, 32)  # ... 8 px checks survive as 0/1 latent pixels
    layout = quadtree_layout(content, 16, 128, 0.01, overlap=0)
    assert all(c.size == (2, 2) for c in layout.cores if c.y1 <= 16)
    assert all(c.size == (16, 16) for c in layout.cores if c.y0 >= 16)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(criterion="entropy"), r"criterion must be one of variance, gradient; got 'entropy'"),
        (dict(threshold=-1.0), r"threshold must be a number >= 0; got -1.0"),
        (dict(threshold=float("nan")), r"threshold must be a number >= 0; got nan"),
        (dict(min_tile=256, max_tile=128), r"max_tile=128 px is 16 latent units.*must be >= 256 px"),
        (dict(overlap=-1), r"overlap must be an integer >= 0; got -1"),
        (dict(content=torch.zeros(8, 8)), r"content must be a non-empty tensor \[C, H, W\]"),
        (dict(content=torch.full((1, 8, 8), float("inf"))), r"content must hold only finite values"),
    ],
)
def test_quadtree_validation_messages(kwargs, pattern):
    args = dict(content=torch.zeros(4, 32, 32), min_tile=64, max_tile=256, threshold=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        quadtree_layout(**args)
