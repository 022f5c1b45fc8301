"""Tier 1: the regional VAE passes and the stitch with analytic stand-ins for the VAE.

The encoder stand-in is linear (8×8 average pooling: a pixel→latent map), the decoder a nearest upsample
(latent→pixel), and one stand-in has a receptive field (a 3×3 box filter of the latent) so that the
context margins matter. Every pass is wrapped to record the exact boxes it reads; the tests count the
pixels and latent cells read and written and compare them with the geometry's own maps."""

import math

import pytest
import torch
import torch.nn.functional as F

from solune.image import (
    DECODE_CONTEXT,
    ENCODE_CONTEXT,
    band_weight,
    changed_cells,
    decode_regional,
    encode_needed,
    encode_regional,
    model_region,
    stitch,
    vae_pass,
)
from solune.samplers.tiled import PreserveState, TiledRun, TileSettings, make_plan
from solune.tiling import Tile

D = 8  # pixels per latent cell


def encode_pool(pixels):
    """A linear encoder: 8×8 average of each channel ([B, H, W, 3] → [B, 3, H/8, W/8])."""
    return F.avg_pool2d(pixels.movedim(-1, 1), D)


def decode_nearest(latent):
    """A decoder: nearest upsample ([B, 3, h, w] → [B, 8h, 8w, 3])."""
    return latent.repeat_interleave(D, -2).repeat_interleave(D, -1).movedim(1, -1)


def decode_blurred(latent):
    """A decoder with a receptive field of one latent cell each side (3×3 box filter, zero padding)."""
    k = torch.full((latent.shape[1], 1, 3, 3), 1 / 9)
    return decode_nearest(F.conv2d(latent, k, padding=1, groups=latent.shape[1]))


class Recorder:
    """Wraps a VAE function and counts what it reads (in the units of its input's spatial dims)."""

    def __init__(self, fn, channels_last: bool):
        self.fn, self.channels_last, self.shapes = fn, channels_last, []

    def __call__(self, x):
        self.shapes.append(tuple(x.shape[1:3]) if self.channels_last else tuple(x.shape[-2:]))
        return self.fn(x)

    @property
    def read(self) -> int:
        return sum(h * w for h, w in self.shapes)


def two_regions(h=48, w=64):
    """Latent-size needed map: two small blocks in opposite corners."""
    m = torch.zeros(h, w, dtype=torch.bool)
    m[2:7, 3:9] = True
    m[40:46, 55:62] = True
    return m


def grown(m: torch.Tensor, by: int) -> torch.Tensor:
    return F.max_pool2d(m[None, None].float(), 2 * by + 1, stride=1, padding=by)[0, 0] > 0


def test_a_pass_writes_every_needed_cell_and_reads_only_its_tiles_grown_by_the_context():
    needed = two_regions()
    p = vae_pass(needed, tile=16, overlap=4, context=3)
    writes, reads = p.write_map(), p.read_map()
    assert bool(writes[needed].all())
    for write, read in zip(p.writes, p.reads):
        assert write.h <= 16 and write.w <= 16
        assert (read.y0, read.x0) == (max(0, write.y0 - 3), max(0, write.x0 - 3))
        assert (read.y1, read.x1) == (min(48, write.y1 + 3), min(64, write.x1 + 3))
    assert not bool(reads[~grown(writes, 3)].any())
    # two corners: nothing in between is read (a bounding box would span the whole latent)
    assert int(reads.sum()) <= (5 + 6 + 2) * (6 + 6 + 2) + (6 + 6 + 2) * (7 + 6 + 2)
    assert p.read_area() < 0.1 * 48 * 64


def test_no_needed_cell_means_no_tile():
    p = vae_pass(torch.zeros(8, 8, dtype=torch.bool))
    assert len(p) == 0 and not bool(p.read_map().any())


def test_large_regions_are_cut_into_bounded_tiles():
    needed = torch.ones(100, 140, dtype=torch.bool)
    p = vae_pass(needed, tile=32, overlap=8, context=8)
    assert bool(p.write_map().all())
    assert all(r.h <= 32 + 16 and r.w <= 32 + 16 for r in p.reads)  # memory: one tile + context
    assert len(p) >= math.ceil(100 / 32) * math.ceil(140 / 32)


def test_ratios_form_an_exact_partition_of_unity_over_the_written_cells():
    needed = torch.zeros(40, 60, dtype=torch.bool)
    needed[5:35, 4:56] = True
    p = vae_pass(needed, tile=16, overlap=6)
    for unit in (1, D):
        # the running lerp with a constant per tile: where all tiles give 1, the result is exactly 1
        out = torch.zeros(40 * unit, 60 * unit, dtype=torch.float32)
        share = torch.zeros(len(p), 40 * unit, 60 * unit, dtype=torch.float64)
        for i, (t, r) in enumerate(zip(p.writes, p.ratios(unit))):
            rows, cols = slice(t.y0 * unit, t.y1 * unit), slice(t.x0 * unit, t.x1 * unit)
            out[rows, cols] = torch.lerp(out[rows, cols], torch.ones(()), r)
            share[:, rows, cols] *= 1 - r.to(torch.float64)
            share[i, rows, cols] = r.to(torch.float64)
        written = p.write_map().repeat_interleave(unit, 0).repeat_interleave(unit, 1)
        assert torch.equal(out[written], torch.ones(int(written.sum())))
        torch.testing.assert_close(share.sum(0)[written], torch.ones(int(written.sum()), dtype=torch.float64))
        assert bool((share >= 0).all())


def test_the_regional_encode_equals_the_whole_image_encode_on_what_it_writes_and_reads_nothing_else():
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(2, 48 * D, 64 * D, 3, generator=gen)
    needed = two_regions()
    p = vae_pass(needed, tile=16, overlap=4, context=2)
    enc = Recorder(encode_pool, channels_last=True)
    latent = encode_regional(pixels, p, enc, D, 3)
    full = encode_pool(pixels)
    written = p.write_map()
    assert torch.equal(latent[..., written], full[..., written])
    assert torch.equal(latent[..., ~written], torch.zeros_like(latent[..., ~written]))
    # pixels read: exactly the tiles' read boxes
    assert enc.shapes == [(r.h * D, r.w * D) for r in p.reads]
    assert enc.read == p.read_area() * D * D


def test_the_regional_decode_equals_the_whole_decode_on_what_it_writes():
    gen = torch.Generator().manual_seed(1)
    latent = torch.randn(1, 3, 48, 64, generator=gen)
    p = vae_pass(two_regions(), tile=16, overlap=4, context=DECODE_CONTEXT)
    dec = Recorder(decode_nearest, channels_last=False)
    pixels = decode_regional(latent, p, dec, D)
    full = decode_nearest(latent)
    written = p.write_map().repeat_interleave(D, 0).repeat_interleave(D, 1)
    assert torch.equal(pixels[:, written], full[:, written])
    assert dec.shapes == [r.size for r in p.reads]
    assert dec.read == p.read_area()


def test_the_context_margin_carries_the_decoders_receptive_field():
    gen = torch.Generator().manual_seed(2)
    latent = torch.randn(1, 3, 48, 64, generator=gen)
    full = decode_blurred(latent)
    needed = torch.zeros(48, 64, dtype=torch.bool)
    needed[10:40, 8:60] = True
    written = needed.repeat_interleave(D, 0).repeat_interleave(D, 1)
    with_context = decode_regional(latent, vae_pass(needed, tile=16, overlap=4, context=1), decode_blurred, D)
    without = decode_regional(latent, vae_pass(needed, tile=16, overlap=4, context=0), decode_blurred, D)
    torch.testing.assert_close(with_context[:, written], full[:, written], rtol=0, atol=1e-6)
    assert float((without[:, written] - full[:, written]).abs().max()) > 1e-2


def test_band_weight_is_exactly_zero_where_nothing_changed_and_one_beyond_the_band():
    changed = torch.zeros(2, 96, 120, dtype=torch.bool)
    changed[0, 20:70, 30:100] = True
    changed[0, :30, 110:] = True  # reaches the picture's edge
    changed[1, 40:90, 10:60] = True
    for blend in (0, 1, 6, 7, 16):
        w = band_weight(changed, blend)
        r = math.ceil(blend / 2)
        assert torch.equal(w[~changed], torch.zeros(int((~changed).sum())))
        # exactly 1 where no unchanged pixel lies within 2r (Chebyshev); the edge does not count as unchanged
        deep = ~grown(~changed[0], 2 * r) if r else changed[0]
        deep = deep & changed[0]
        assert torch.equal(w[0][deep], torch.ones(int(deep.sum())))
        assert bool((w[0][changed[0] & ~deep] < 1).all())
        assert bool(((w >= 0) & (w <= 1)).all())


def test_band_weight_is_smooth_and_monotone_across_the_band():
    changed = torch.zeros(64, 200, dtype=torch.bool)
    changed[:, 100:] = True
    blend = 32
    w = band_weight(changed, blend)
    row = w[32]
    assert torch.equal(row[:100], torch.zeros(100))
    assert torch.equal(row[100 + blend :], torch.ones(100 - blend))
    band = row[99 : 101 + blend]
    steps = band[1:] - band[:-1]
    assert bool((steps >= 0).all())  # monotone
    assert float(steps.max()) < 2.0 / blend  # no step: at most 1.5× the mean slope (smoothstep's peak)
    assert float(steps[0]) < 0.01 and float(steps[-1]) < 0.01  # flat at both ends
    # the same along the other axis and in the middle of the picture: no seam anywhere
    assert torch.equal(w, w[32:33].expand_as(w))


def test_the_stitch_keeps_the_original_bit_for_bit_and_takes_the_decode_beyond_the_band():
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(1, 80, 96, 3, generator=gen)
    decoded = torch.rand(1, 80, 96, 3, generator=gen)
    changed = torch.zeros(80, 96, dtype=torch.bool)
    changed[16:64, 24:80] = True
    w = band_weight(changed, 8)
    out = stitch(image, decoded, w)
    assert torch.equal(out[0][w == 0], image[0][w == 0])
    assert torch.equal(out[0][w == 1], decoded[0][w == 1])
    mid = (w > 0) & (w < 1)
    lo, hi = torch.minimum(image, decoded)[0][mid], torch.maximum(image, decoded)[0][mid]
    assert bool(((out[0][mid] >= lo) & (out[0][mid] <= hi)).all())


def test_changed_cells_are_the_latent_cells_holding_a_non_zero_scale():
    scale = torch.zeros(2, 32, 48)
    scale[0, 9, 17] = 0.25  # cell (1, 2)
    scale[1, 31, 0] = 1.0  # cell (3, 0)
    cells = changed_cells(scale, D)
    assert cells.shape == (4, 6) and int(cells.sum()) == 2 and bool(cells[1, 2]) and bool(cells[3, 0])
    with pytest.raises(ValueError, match="multiple of 8"):
        changed_cells(torch.zeros(30, 48), D)


def plan_with_mask(mask, tiled=True, **kw):
    settings = TileSettings(
        min_denoise=0.0, max_denoise=1.0, scale_mode="pixel", tile_width=128, tile_height=128, overlap=32, **kw
    )
    return make_plan(mask.shape[-2], mask.shape[-1], settings, denoise_mask=mask)


def corner_mask(h=48, w=64):
    m = torch.zeros(h, w, dtype=torch.float64)
    m[:8, :8] = torch.linspace(0.1, 1.0, 8, dtype=torch.float64)  # soft: many start steps in strength mode
    m[-6:, -10:] = 1.0
    return m


def evaluated_windows(plan, mode, sigmas):
    """The union of the windows the hook's own TiledRun evaluates at every σ of the schedule and between."""
    h, w = plan.layout.latent_h, plan.layout.latent_w
    state = PreserveState(
        torch.zeros(1, 4, h, w), plan.scale_map, mode, sigmas, torch.zeros(1, 4, h, w), lambda s, n, x: x
    )
    run = TiledRun(state, plan)
    union = torch.zeros(h, w, dtype=torch.bool)
    probes = list(sigmas[:-1]) + [(a + b) / 2 for a, b in zip(sigmas[:-1], sigmas[1:])]
    for sigma in probes:
        run.enter(torch.tensor([float(sigma)]))
        windows = run.windows()
        run.leave()
        for t in windows.tiles if windows is not None else ():
            union[t.slices] = True
    return union


@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_the_model_region_holds_every_window_the_hook_evaluates_and_misses_the_far_latent(mode):
    plan = plan_with_mask(corner_mask())
    sigmas = torch.linspace(10.0, 0.0, 9)
    region = model_region(plan, mode, True, sigmas)
    seen = evaluated_windows(plan, mode, sigmas)
    assert bool(seen.any()) and not bool(seen[~region].any())
    assert float(region.float().mean()) < 0.5  # two corners: most of the latent is never read
    # the hook's margin is inside: every non-zero pixel has the plan's overlap of context around it
    assert bool(region[grown(plan.scale_map != 0, plan.overlap)].all())


def test_without_tiled_model_the_model_reads_everything_and_nothing_when_all_scales_are_zero():
    plan = plan_with_mask(corner_mask())
    assert bool(model_region(plan, "blend", False).all())
    zero = plan_with_mask(torch.zeros(48, 64, dtype=torch.float64))
    assert not bool(model_region(zero, "blend", True).any())
    assert not bool(model_region(zero, "strength", False, torch.linspace(1, 0, 5)).any())
    with pytest.raises(ValueError, match="sigmas"):
        model_region(plan, "strength", True)


def test_the_encode_covers_what_the_model_and_the_decoder_read_and_a_refine_reads_a_fraction():
    """The whole geometry of a refine of two small corners, counted in pixels read per pass."""
    plan = plan_with_mask(corner_mask())
    scale_px = plan.scale_map.repeat_interleave(D, 0).repeat_interleave(D, 1)
    decode = vae_pass(changed_cells(scale_px, D), context=DECODE_CONTEXT)
    model = model_region(plan, "blend", True)
    needed = encode_needed(model, decode)
    encode = vae_pass(needed, context=ENCODE_CONTEXT)
    assert bool(encode.write_map()[model].all()) and bool(encode.write_map()[decode.read_map()].all())
    pixels = torch.rand(1, 48 * D, 64 * D, 3)
    enc = Recorder(encode_pool, channels_last=True)
    latent = encode_regional(pixels, encode, enc, D, 3)
    dec = Recorder(decode_nearest, channels_last=False)
    decoded = decode_regional(latent, decode, dec, D)
    total = 48 * 64
    assert enc.read == encode.read_area() * D * D and dec.read == decode.read_area()
    assert enc.read < 0.8 * total * D * D and dec.read < 0.5 * total
    # where the decoder writes, its input was encoded exactly as a whole-image pass would
    written = decode.write_map().repeat_interleave(D, 0).repeat_interleave(D, 1)
    assert torch.equal(decoded[:, written], decode_nearest(encode_pool(pixels))[:, written])


def test_one_tile_over_the_bounding_box_replaces_a_cover_that_would_read_more():
    """An L of three quarters of a 64² latent: covered closely, its tiles' contexts and overlaps read more
    than the whole latent; one tile over its bounding box (the whole latent) reads it once."""
    needed = torch.ones(64, 64, dtype=torch.bool)
    needed[32:, 32:] = False
    close = vae_pass(needed, tile=63, overlap=8, context=8)  # the bounding box does not fit: the close cover
    assert len(close) > 1 and close.read_area() > 64 * 64
    p = vae_pass(needed, tile=64, overlap=8, context=8)
    assert p.writes == (Tile(0, 0, 64, 64),) and p.read_area() == 64 * 64
    # two far corners: the close cover reads far less than their bounding box, and is kept
    corners = vae_pass(two_regions(), tile=64, overlap=4, context=3)
    assert len(corners) == 2 and corners.read_area() < 0.1 * 48 * 64
