"""Tier 1: an edit model's reference latents under a tiled evaluation: a reference the size of the
sampled latent is cropped to each tile exactly as the input is (chunk-major), any other is passed
whole with its rows repeated for the tiles, and anything that is not per-row passes untouched."""

import torch

from solune.samplers.tiled.evaluate import crop_tiles, repeat_rows, tile_references
from solune.tiling import grid_layout


def test_a_reference_the_latent_size_is_cropped_and_others_pass_whole():
    layout = grid_layout(8, 16, 48, 64, 16)  # one row of tiles
    g = torch.Generator().manual_seed(0)
    rows, chunks, indices = 2, 2, [1, 2]
    same = torch.randn(rows, 16, 8, 16, generator=g)
    framed = torch.randn(rows, 16, 1, 8, 16, generator=g)  # a frame axis, as Qwen-Image's
    other = torch.randn(rows, 16, 4, 6, generator=g)
    single = torch.randn(1, 16, 8, 16, generator=g)  # not per row: left as is
    got = tile_references([same, framed, other, single], layout, indices, rows, chunks)
    assert torch.equal(got[0], crop_tiles(same, layout, indices, chunks))
    assert torch.equal(got[1], crop_tiles(framed, layout, indices, chunks)) and got[1].dim() == 5
    assert torch.equal(got[2], repeat_rows(other, len(indices), chunks))
    assert got[3] is single
    # the crop of tile 1 (chunk 0, first row) is the tile's own region of the reference
    t = layout.tiles[1]
    assert torch.equal(got[0][0], same[0, :, t.y0 : t.y1, t.x0 : t.x1])
    assert got[2].shape == (rows * len(indices), 16, 4, 6)
