"""Tier 1: tile-by-tile evaluation is an exact partition of unity (a pointwise denoiser gives the
whole-image result), tiles with zero weight over their footprint are never evaluated, batching
groups equal tiles, and conditioning is cropped or repeated in ComfyUI's cond/uncond order."""

import pytest
import torch

from solune.samplers.tiled import TileSettings, active_tiles, evaluate_tiled, make_plan, tile_args
from solune.samplers.tiled.evaluate import active_batches, crop_tiles, repeat_rows, spatial
from solune.tiling import grid_layout, quadtree_layout, tile_weights


def pointwise(x):
    """A position-independent (per-pixel) nonlinear denoiser."""
    return torch.tanh(x) * 0.7 + x.square() * 0.1 - x[:, :1] * 0.2


class Counting:
    def __init__(self):
        self.area, self.calls, self.shapes = 0, 0, []

    def __call__(self, x_tiles, indices):
        self.calls += 1
        self.area += x_tiles.shape[-1] * x_tiles.shape[-2] * len(indices)
        self.shapes.append(tuple(x_tiles.shape))
        return pointwise(x_tiles)


LAYOUTS = {
    "grid": lambda: grid_layout(40, 56, 128, 96, 24),
    "grid_aligned": lambda: grid_layout(40, 56, 128, 96, 24, align=2),
    "quadtree": lambda: quadtree_layout(
        torch.randn(4, 40, 56, generator=torch.Generator().manual_seed(0)).cumsum(-1), 64, 256, 0.5, overlap=16
    ),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("chunks,batch", [(1, 1), (2, 2), (2, 3)])
@pytest.mark.parametrize("channels", [4, 16])
def test_tiled_pointwise_evaluation_equals_whole_image(name, chunks, batch, channels):
    layout = LAYOUTS[name]()
    x = torch.randn(chunks * batch, channels, 40, 56, generator=torch.Generator().manual_seed(1))
    out = evaluate_tiled(Counting(), x, layout, tile_weights(layout), [True] * len(layout), torch.zeros(1), 3, chunks)
    assert float((out - pointwise(x)).abs().max()) <= 1e-5


def test_skipped_tiles_never_reach_the_model_and_take_the_fill():
    settings = TileSettings(
        min_denoise=0.0, max_denoise=1.0, scale_mode="mask", tile_width=128, tile_height=96, overlap=24
    )
    plan = make_plan(40, 56, settings, denoise_mask=(torch.arange(56) >= 40).float().expand(40, 56))
    layout = plan.layout
    active = active_tiles(layout, plan.scale_map[None, None])
    assert 0 < sum(active) < len(layout)
    for i, tile in enumerate(layout.tiles):
        assert active[i] == bool((plan.scale_map[tile.slices] > 0).any())
    x = torch.randn(2, 4, 40, 56)
    fill = torch.randn(1, 4, 40, 56)
    count = Counting()
    out = evaluate_tiled(count, x, layout, plan.weights, active, fill, 2, 2)
    assert count.area == sum(t.area for t, a in zip(layout.tiles, active) if a) * 1  # per tile, not per row
    zero = plan.scale_map == 0
    covered_by_skipped_only = torch.ones(40, 56, dtype=torch.bool)
    for t, a in zip(layout.tiles, active):
        if a:
            covered_by_skipped_only[t.slices] = False
    assert covered_by_skipped_only.any()
    assert torch.equal(out[..., covered_by_skipped_only], fill.expand_as(out)[..., covered_by_skipped_only])
    one = plan.scale_map == 1
    torch.testing.assert_close(out[..., one], pointwise(x)[..., one], rtol=0, atol=1e-5)
    assert zero.any()


def test_every_tile_at_zero_never_calls_the_model():
    layout = grid_layout(32, 32, 128, 128, 16)
    count = Counting()
    fill = torch.randn(1, 4, 32, 32)
    out = evaluate_tiled(count, torch.randn(1, 4, 32, 32), layout, tile_weights(layout), [False] * len(layout), fill, 4)
    assert count.calls == 0
    torch.testing.assert_close(out, fill, rtol=0, atol=1e-6)


def test_batches_hold_equal_tiles_up_to_the_batch_size_and_report_progress():
    layout = grid_layout(40, 56, 128, 96, 24)
    seen = []
    count = Counting()
    evaluate_tiled(
        count,
        torch.randn(1, 4, 40, 56),
        layout,
        tile_weights(layout),
        [True] * len(layout),
        torch.zeros(1),
        4,
        progress=lambda d, t: seen.append((d, t)),
    )
    batches = active_batches(layout, [True] * len(layout), 4)
    assert all(len(b) <= 4 and len({layout.tiles[i].size for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(layout)))
    assert seen == [(i + 1, len(batches)) for i in range(len(batches))]
    assert count.calls == len(batches)


def test_conditioning_is_cropped_or_repeated_in_cond_uncond_order():
    layout = grid_layout(16, 16, 64, 64, 16)
    idx = [0, 1]
    x = torch.arange(2 * 1 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    crops = crop_tiles(x, layout, idx, chunks=2)  # [chunk0: t0, t1; chunk1: t0, t1]
    t0, t1 = layout.tiles[0].slices, layout.tiles[1].slices
    assert torch.equal(crops[1], x[0][:, t1[0], t1[1]]) and torch.equal(crops[2], x[1][:, t0[0], t0[1]])
    ctx = torch.tensor([[1.0], [2.0]])
    assert repeat_rows(ctx, 2, chunks=2).flatten().tolist() == [1.0, 1.0, 2.0, 2.0]
    half = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)  # a residual at 1/2 size
    args = tile_args({"t": torch.tensor([5.0, 6.0]), "hint": half, "n": 3, "l": [ctx]}, layout, idx, 2, 2)
    assert args["t"].tolist() == [5.0, 5.0, 6.0, 6.0] and args["n"] == 3
    assert args["hint"].shape == (4, 1, 4, 4) and args["l"][0].shape == (4, 1)


def test_a_per_row_tensor_of_four_axes_not_of_the_latents_aspect_is_repeated_not_cropped():
    """HiDream's `encoder_hidden_states_llama3` [B, 32 layers, tokens, 4096] is per-row text, not spatial:
    each tile gets its row whole; a tensor of the latent's aspect is cropped (on the latent grid: the
    latent's size or 1/k of it) or refused (off it: a picture in pixels), never silently repeated."""
    layout = grid_layout(16, 16, 64, 64, 16)
    idx = [0, 1]
    llama = torch.randn(2, 32, 16, 4096)  # the tokens happen to match the latent height
    args = tile_args({"llama": llama, "hint": torch.randn(2, 1, 16, 16)}, layout, idx, 2, 2)
    assert torch.equal(args["llama"], repeat_rows(llama, 2, chunks=2)) and args["llama"].shape == (4, 32, 16, 4096)
    assert args["hint"].shape == (4, 1, *layout.tiles[0].size)
    assert spatial((2, 1, 8, 8), layout) and spatial((2, 1, 16, 16), layout) and spatial((2, 3, 128, 128), layout)
    assert not spatial((2, 32, 16, 4096), layout) and not spatial((2, 1, 8, 16), layout)
    with pytest.raises(ValueError, match="not the latent size"):  # pixels: the latent's aspect, off its grid
        tile_args({"pixels": torch.randn(2, 3, 128, 128)}, layout, idx, 2, 2)


def test_a_fractional_spatial_input_that_tiles_cannot_split_is_refused():
    layout = grid_layout(16, 16, 72, 72, 16)  # 9-unit tiles: not divisible by 2
    with pytest.raises(ValueError, match="multiples of"):
        crop_tiles(torch.zeros(1, 1, 8, 8), layout, [1])
