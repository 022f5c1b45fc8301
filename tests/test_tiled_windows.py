"""Tier 1: the active-window rule. The model sees exactly the active pixels grown by the margin,
covered by windows no larger than the user's tiles (counted pixel by pixel); the windows' feather is
a partition of unity there, so a pointwise denoiser evaluated by windows equals the whole image; an
all-active map evaluates the plan's own tiles, an empty one nothing."""

import pytest
import torch

from solune.samplers.tiled import PreserveState, TiledRun, TileSettings, grow, make_plan, window_set
from solune.samplers.tiled.evaluate import evaluate_windows
from solune.samplers.tiled.windows import cover
from solune.tiling import grid_layout, tile_weights


def plan_of(h, w, denoise_mask=None, align=1, **settings):
    return make_plan(h, w, TileSettings.from_inputs(**settings), denoise_mask=denoise_mask, align=align)


def pointwise(x):
    return torch.tanh(x) * 0.7 + x.square() * 0.1 - x[:, :1] * 0.2


class Counting:
    def __init__(self):
        self.area, self.calls = 0, 0
        self.seen = None

    def __call__(self, crops, windows, indices):
        self.calls += 1
        self.area += crops.shape[-1] * crops.shape[-2] * len(indices)
        for i in indices:
            t = windows.tiles[i]
            self.seen[t.slices] = True
        return pointwise(crops)


def test_grow_keeps_every_pixel_within_the_margin_along_both_axes():
    active = torch.zeros(32, 40, dtype=torch.bool)
    active[10, 12] = True
    assert int(grow(active, 3).sum()) == 7 * 7
    active[:] = False
    active[0, 0] = True
    assert int(grow(active, 3).sum()) == 4 * 4  # clipped at the image edge
    active[:] = False
    active[5:9, 20:30] = True
    assert int(grow(active, 2).sum()) == (4 + 4) * (10 + 4)
    assert torch.equal(grow(active, 0), active)
    with pytest.raises(ValueError, match="margin must be an integer >= 0"):
        grow(active, -1)


@pytest.mark.parametrize("a,b,margin", [(20, 24, 8), (13, 30, 4), (40, 40, 0)])
def test_a_corner_rectangle_is_evaluated_as_itself_grown_by_the_margin(a, b, margin):
    layout = grid_layout(64, 64, 512, 512, 64)  # 64x64 latent, tiles of up to 64 units
    active = torch.zeros(64, 64, dtype=torch.bool)
    active[:a, :b] = True
    ws = window_set(layout, tile_weights(layout), active, margin, 64, 64, 8)
    count = Counting()
    count.seen = torch.zeros(64, 64, dtype=torch.bool)
    x = torch.randn(2, 4, 64, 64)
    evaluate_windows(lambda c, i: count(c, ws, i), x, ws, torch.zeros(1), 4)
    assert count.area == (a + margin) * (b + margin) and count.calls == 1
    assert torch.equal(count.seen, grow(active, margin))


def l_shape(h, w, y, x):
    m = torch.ones(h, w, dtype=torch.bool)
    m[y:, x:] = False
    return m


@pytest.mark.parametrize(
    "active",
    [
        l_shape(128, 128, 64, 64),
        l_shape(96, 80, 20, 50),
        torch.rand(64, 72, generator=torch.Generator().manual_seed(0)) > 0.97,  # scattered pixels
    ],
)
@pytest.mark.parametrize("max_side,overlap,align", [(96, 8, 1), (32, 8, 1), (40, 8, 2)])
def test_windows_cover_the_grown_region_within_the_tile_size(active, max_side, overlap, align):
    margin = overlap
    e = grow(active, margin)
    tiles = cover(e, max_side, max_side, overlap, align)
    covered = torch.zeros_like(e)
    for t in tiles:
        assert t.h <= max_side and t.w <= max_side
        assert t.y0 % align == 0 and t.x0 % align == 0
        covered[t.slices] = True
    assert bool(covered[e].all())  # every pixel of E is evaluated


def test_an_l_shape_costs_about_its_area_not_its_bounding_box():
    # default 768 px tiles (96 units) on 1024 px: all but the bottom-right quarter changed
    active = l_shape(128, 128, 64, 64)
    e = grow(active, 8)
    tiles = cover(e, 96, 96, 8)
    area = sum(t.area for t in tiles)
    # E plus the overlap strips between windows: at most (E / A + 0.05) of the plan's 2x2 tiles of 68² (the
    # issue's target, in model work), where the windows are used instead of the tiles
    assert int(e.sum()) < area <= (int(e.sum()) / e.numel() + 0.05) * 4 * 68 * 68
    # the two windows of the top band share one size, and the bottom one is not widened to match
    sizes = sorted(t.size for t in tiles)
    assert len(tiles) == 3 and sizes[1] == sizes[2]


def test_every_pixel_active_evaluates_the_plans_own_tiles_and_none_active_nothing():
    plan = plan_of(40, 56, min_denoise=1.0, max_denoise=1.0, tile_width=128, tile_height=96, overlap=24)
    ws = window_set(plan.layout, plan.weights, torch.ones(40, 56, dtype=torch.bool), 3, *plan.max_window, plan.overlap)
    assert ws.tiles == plan.layout.tiles and all(a is b for a, b in zip(ws.weights, plan.weights))
    assert window_set(plan.layout, plan.weights, torch.zeros(40, 56, dtype=torch.bool), 3, 16, 16, 3) is None


def masks():
    g = torch.Generator().manual_seed(3)
    quarter = torch.zeros(320, 448)
    quarter[:160, :224] = 1.0
    blobs = (torch.rand(320 // 32, 448 // 32, generator=g) > 0.6).float()
    blobs = blobs.repeat_interleave(32, 0).repeat_interleave(32, 1)
    return {"quarter": quarter, "blobs": blobs, "ramp": torch.linspace(0, 1, 448).expand(320, 448).contiguous()}


@pytest.mark.parametrize("name", list(masks()))
@pytest.mark.parametrize("tile,align", [(128, 1), (96, 2), (256, 1)])
@pytest.mark.parametrize("chunks", [1, 2])
def test_window_evaluation_of_a_pointwise_denoiser_equals_whole_image_where_active(name, tile, align, chunks):
    plan = plan_of(
        40,
        56,
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        denoise_mask=masks()[name],
        tile_width=tile,
        tile_height=tile,
        overlap=24,
        align=align,
    )
    active = plan.scale_map > 0
    ws = window_set(plan.layout, plan.weights, active, plan.overlap, *plan.max_window, plan.overlap)
    total = torch.zeros(40, 56)
    for t, w in zip(ws.tiles, ws.weights):
        total[t.slices] += w
        assert t.h <= plan.max_window[0] and t.w <= plan.max_window[1]
    assert float((total[ws.covered] - 1).abs().max()) <= 1e-6 and bool(ws.covered[active].all())
    x = torch.randn(2 * chunks, 4, 40, 56, generator=torch.Generator().manual_seed(1))
    fill = torch.randn(1, 4, 40, 56)
    out = evaluate_windows(lambda c, i: pointwise(c), x, ws, fill, 3, chunks)
    assert float((out - pointwise(x))[..., ws.covered].abs().max()) <= 1e-5
    outside = torch.ones(40, 56, dtype=torch.bool)  # pixels no window reaches take the fill
    for t in ws.tiles:
        outside[t.slices] = False
    assert torch.equal(out[..., outside], fill.expand_as(out)[..., outside])


@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_a_run_evaluates_only_the_active_windows_and_keeps_tiled_equal_to_whole(mode):
    mask = torch.zeros(320, 448)
    mask[:160, :200] = 1.0
    plan = plan_of(
        40,
        56,
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        denoise_mask=mask,
        tile_width=256,
        tile_height=256,
        overlap=32,
    )
    x0 = torch.randn(1, 4, 40, 56, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(1, 4, 40, 56, generator=torch.Generator().manual_seed(3))
    sigmas = torch.tensor([3.0, 2.0, 1.2, 0.6, 0.0])
    results = {}
    for tiled in (False, True):
        state = PreserveState(x0, plan.scale_map, mode, sigmas, noise, lambda s, n, o: o + s.view(-1, 1, 1, 1) * n)
        run = TiledRun(state, plan)
        count = Counting()
        count.seen = torch.zeros(40, 56, dtype=torch.bool)
        x = x0 + sigmas[0] * noise
        for i in range(len(sigmas) - 1):
            s = sigmas[i] * torch.ones(1)
            run.enter(s)
            xi = run.hold_input(x, s)
            x0m = run.evaluate(count, xi, 4) if tiled else pointwise(xi)
            x0b = run.blend(x0m, s)
            run.leave()
            x = x + (x - x0b) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        results[tiled] = state.write_back(x)
        if tiled:  # every pixel active at some step, grown by the margin, went through the model
            active = torch.stack([state.phase(float(s)).active for s in sigmas[:-1]]).any(0)
            assert bool(active.any()) and bool(count.seen[grow(active, plan.overlap)].all())
            assert count.area < 4 * 40 * 56 * 0.8
    assert float((results[True] - results[False]).abs().max()) <= 1e-5
    zero = plan.scale_map == 0
    assert torch.equal(results[True][..., zero], x0[..., zero])
