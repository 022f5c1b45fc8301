"""Tier 1: scale_mode pixel with analytic denoisers. Every pixel's scale is
min + (max − min)·mask at the latent size, without tile feathering; where it is 0 the original
comes back exactly (every sampler written here, all three prediction types, both modes, write-back
included), where the mask is 1 everywhere the run is the stock one bit for bit, and a soft ramp of
m gives the analytic blend m·c + (1 − m)·x0_orig with a denoiser whose answer is the constant c."""

import pytest
import torch
from test_tiled_preserve import SAMPLERS, inputs, make_state, run, schedule

from solune.samplers.tiled import PreserveState, TileSettings, active_tiles, make_plan
from solune.samplers.tiled.preserve import start_sigmas
from solune.velocity import make_prediction

PREDICTIONS = ["epsilon", "sol_v", "lune_flow"]
MODES = ["blend", "strength"]


def soft_mask(h, w):
    """Latent-size mask: 0 on the left third, a linear ramp over the middle third, 1 on the right."""
    x = torch.arange(w, dtype=torch.float64)
    row = ((x - w / 3) / (w / 3)).clamp(0, 1)
    return row.expand(h, w).clone()


def pixel_plan(mask, lo=0.0, hi=1.0, size=None):
    h, w = size or mask.shape[-2:]
    settings = TileSettings(
        min_denoise=lo, max_denoise=hi, scale_mode="pixel", tile_width=64, tile_height=64, overlap=16
    )
    return make_plan(h, w, settings, denoise_mask=mask)


def test_the_scale_is_the_mask_mapped_to_min_max_pixel_by_pixel_without_feathering():
    mask = soft_mask(8, 12)
    plan = pixel_plan(mask, 0.2, 0.7)
    assert plan.per_pixel and plan.scale_map.shape == (8, 12)
    torch.testing.assert_close(plan.scale_map, (0.2 + 0.5 * mask).to(torch.float32), rtol=0, atol=1e-7)
    assert torch.equal(plan.scale_map[:, 0], torch.full((8,), 0.2))
    assert torch.equal(plan.scale_map[:, -1], torch.full((8,), 0.7))
    # a pixel-size mask with constant 8x8 blocks gives the same map (area averaging is exact there)
    big = mask.repeat_interleave(8, 0).repeat_interleave(8, 1)
    assert torch.equal(pixel_plan(big, 0.2, 0.7, size=(8, 12)).scale_map, plan.scale_map)


def test_each_tiles_scale_is_the_largest_over_its_footprint_and_zero_tiles_are_inactive():
    mask = torch.zeros(16, 32, dtype=torch.float64)
    mask[:, 28:] = torch.linspace(0.25, 1.0, 4, dtype=torch.float64)
    plan = pixel_plan(mask)
    assert len(plan.layout) > 2
    active = active_tiles(plan.layout, plan.scale_map[None, None])
    for tile, scale, on in zip(plan.layout.tiles, plan.scales, active):
        assert scale == float(plan.scale_map[tile.slices].max())
        assert on == (tile.x1 > 28)
    assert any(active) and not all(active)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_pixels_at_mask_zero_return_the_original_exactly(prediction, mode, sampler):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs(8, 12)
    mask = soft_mask(8, 12)
    sigmas = schedule(obj, 4, 0.6)
    state = make_state(obj, x0_orig, pixel_plan(mask).scale_map, mode, sigmas, noise)
    out = run(obj, x0_orig, noise, sigmas, sampler, state)
    zero = mask == 0
    assert zero.sum() == 8 * 5  # columns 0..4 (x ≤ w/3)
    assert torch.equal(out[..., zero], x0_orig[..., zero])
    assert float((out - x0_orig)[..., :, -1].abs().mean()) > 0.1  # mask-1 pixels did follow the model


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_mask_one_everywhere_is_the_stock_run_bit_for_bit(prediction, mode, sampler):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs(8, 12)
    sigmas = schedule(obj, 4, 0.6)
    state = make_state(obj, x0_orig, pixel_plan(torch.ones(8 * 8, 12 * 8), size=(8, 12)).scale_map, mode, sigmas, noise)
    assert torch.equal(run(obj, x0_orig, noise, sigmas, sampler, state), run(obj, x0_orig, noise, sigmas, sampler))


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_a_soft_ramp_in_blend_mode_gives_the_analytic_blend(prediction, sampler):
    """With x0_model ≡ c, every step's target is the constant T = m·c + (1 − m)·x0_orig; each of
    these samplers scales x − T by σ_next/σ (plus noise that vanishes at σ = 0), so the run ends at T."""
    obj = make_prediction(prediction)
    x0_orig, noise = inputs(8, 12)
    c = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(5))
    mask = soft_mask(8, 12)
    plan = pixel_plan(mask, 0.0, 1.0)
    sigmas = schedule(obj, 6, 0.8)
    state = make_state(obj, x0_orig, plan.scale_map, "blend", sigmas, noise)
    x = obj.noise_scaling(sigmas[0], noise, x0_orig)
    model = lambda x, s: state.blend(c.expand_as(x).clone(), s)
    out = state.write_back(obj.inverse_noise_scaling(sigmas[-1], SAMPLERS[sampler](model, x, sigmas)))
    m = mask.to(torch.float32)
    torch.testing.assert_close(out, m * c + (1 - m) * x0_orig, rtol=0, atol=1e-5)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_a_soft_ramp_in_strength_mode_starts_each_pixel_where_a_stock_img2img_at_denoise_m_would(prediction):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs(8, 12)
    mask = soft_mask(8, 12)
    plan = pixel_plan(mask)
    sigmas = schedule(obj, 8, 1.0)
    state = make_state(obj, x0_orig, plan.scale_map, "strength", sigmas, noise)
    out = run(obj, x0_orig, noise, sigmas, "euler", state)
    starts = start_sigmas(sigmas, plan.scale_map)
    checked = 0
    for col in range(12):
        m = float(plan.scale_map[0, col])
        k = 8 - int(m * 8 + 0.5)
        assert float(starts[0, col]) == float(sigmas[k])
        if k == 8:  # never starts: the original
            assert torch.equal(out[..., col], x0_orig[..., col])
            continue
        stock = run(obj, x0_orig, noise, sigmas[k:], "euler")  # a stock img2img starting at sigmas[k]
        torch.testing.assert_close(out[..., col], stock[..., col], rtol=0, atol=2e-5)
        checked += 1
    assert checked >= 6  # the ramp spans several start steps


@pytest.mark.parametrize("mode", MODES)
def test_a_mask_with_the_latents_batch_gives_each_sample_its_own_scale(mode):
    obj = make_prediction("epsilon")
    g = torch.Generator().manual_seed(4)
    x0_orig, noise = torch.randn(2, 4, 8, 12, generator=g), torch.randn(2, 4, 8, 12, generator=g)
    mask = torch.stack([soft_mask(8, 12), soft_mask(8, 12).flip(-1)])
    plan = pixel_plan(mask)
    assert plan.scale_map.shape == (2, 8, 12)
    sigmas = schedule(obj, 4, 0.6)
    out = run(obj, x0_orig, noise, sigmas, "euler", make_state(obj, x0_orig, plan.scale_map, mode, sigmas, noise))
    for b in range(2):
        zero = mask[b] == 0
        assert torch.equal(out[b][:, zero], x0_orig[b][:, zero])
        assert float((out[b] - x0_orig[b])[:, mask[b] == 1].abs().mean()) > 0.1


def test_an_all_zero_mask_keeps_everything_and_the_model_weight_is_zero_everywhere():
    h, w = 8, 12  # LoadImage's 64×64 placeholder on a 64×96 px image
    plan = make_plan(
        h, w, TileSettings(min_denoise=0.0, max_denoise=0.75, scale_mode="pixel"), denoise_mask=torch.zeros(1, 64, 64)
    )
    assert torch.equal(plan.scale_map, torch.zeros(h, w)) and set(plan.scales) == {0.0}
    state = PreserveState(torch.zeros(1, 4, h, w), plan.scale_map, "blend")
    phase = state.phase()
    assert phase.every == 0 and not bool(phase.active.any())
