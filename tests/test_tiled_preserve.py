"""Tier 1: per-pixel preservation (blend / strength) with the exact Gaussian-data denoiser and small
k-diffusion-style samplers written here: scale 0 returns the original exactly, scale 1 is the
stock run bit for bit, mixed scales keep scale-0 tiles and let scale-1 tiles follow the model, and
a strength-mode pixel is a stock img2img at denoise m inside the schedule."""

import pytest
import torch
from analytic import GaussianData

from solune.samplers.tiled import PreserveState, TileSettings, make_plan
from solune.samplers.tiled.preserve import blend_x0, start_sigmas
from solune.velocity import make_prediction

DATA = GaussianData(mu=[0.5, -1.0, 2.0, 0.0], std=[1.0, 0.5, 0.25, 2.0])
PREDICTIONS = ["epsilon", "sol_v", "lune_flow"]


def schedule(obj, steps, denoise=1.0):
    """KSampler-style: int(steps/denoise) σ of a simple schedule, the last steps+1 kept."""
    total = int(steps / denoise)
    if obj.frame == "flow":
        s = obj.sigma(torch.linspace(1000.0, 0.0, total + 1, dtype=torch.float64)[:-1])
        s = torch.cat([s, torch.zeros(1, dtype=torch.float64)])
    else:
        table = obj.sigmas.double()
        idx = torch.linspace(len(table) - 1, 0, total).round().long()
        s = torch.cat([table[idx], torch.zeros(1, dtype=torch.float64)])
    return s[-(steps + 1) :].to(torch.float32)


def denoiser(obj):
    """x0 = the exact posterior mean (pointwise per pixel, like ComfyUI's x0 from any model)."""

    def f(x, sigma):
        A, B = obj.coefficients(sigma.to(torch.float64), x.ndim, x.to(torch.float64))
        return DATA.posterior_mean(x.to(torch.float64), A, B).to(x.dtype)

    return f


def euler(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        s = sigmas[i] * torch.ones(x.shape[0])
        d = (x - model(x, s)) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def euler_ancestral(model, x, sigmas, gen):
    for i in range(len(sigmas) - 1):
        s = sigmas[i] * torch.ones(x.shape[0])
        denoised = model(x, s)
        up = min(
            float(sigmas[i + 1]),
            (float(sigmas[i + 1]) ** 2 * (float(sigmas[i]) ** 2 - float(sigmas[i + 1]) ** 2) / float(sigmas[i]) ** 2)
            ** 0.5,
        )
        down = (float(sigmas[i + 1]) ** 2 - up**2) ** 0.5
        x = x + (x - denoised) / sigmas[i] * (down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + torch.randn(x.shape, generator=gen) * up
    return x


def heun(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        s = sigmas[i] * torch.ones(x.shape[0])
        d = (x - model(x, s)) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = (x2 - model(x2, sigmas[i + 1] * torch.ones(x.shape[0]))) / sigmas[i + 1]
            x = x + (d + d2) / 2 * dt
    return x


SAMPLERS = {
    "euler": lambda m, x, s: euler(m, x, s),
    "euler_ancestral": lambda m, x, s: euler_ancestral(m, x, s, torch.Generator().manual_seed(3)),
    "heun": lambda m, x, s: heun(m, x, s),
}


def run(obj, x0_orig, noise, sigmas, sampler, state=None):
    """A KSampler-like run: noise scaling, the sampler, inverse scaling, and the hooks if `state`."""
    f = denoiser(obj)
    if state is None:
        model = f
    else:

        def model(x, sigma):
            return state.blend(f(state.hold_input(x, sigma), sigma), sigma)

    x = obj.noise_scaling(sigmas[0], noise, x0_orig)
    out = obj.inverse_noise_scaling(sigmas[-1], SAMPLERS[sampler](model, x, sigmas))
    return out if state is None else state.write_back(out)


def make_state(obj, x0_orig, scale, mode, sigmas, noise):
    return PreserveState(
        x0_orig, scale, mode, sigmas, noise, lambda s, n, x0: obj.noise_scaling(s.view(-1, 1, 1, 1), n, x0)
    )


def inputs(h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, h, w, generator=g), torch.randn(1, 4, h, w, generator=g)


@pytest.mark.parametrize("mode", ["blend", "strength"])
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("denoise", [0.3, 0.6, 1.0])
def test_scale_zero_returns_the_original_exactly(prediction, mode, sampler, denoise):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs()
    sigmas = schedule(obj, 4, denoise)
    state = make_state(obj, x0_orig, torch.zeros(8, 8), mode, sigmas, noise)
    out = run(obj, x0_orig, noise, sigmas, sampler, state)
    assert float((out - x0_orig).abs().max()) <= 1e-5


@pytest.mark.parametrize("mode", ["blend", "strength"])
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_scale_one_is_the_stock_run_bit_for_bit(prediction, mode, sampler):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs()
    sigmas = schedule(obj, 4, 0.6)
    state = make_state(obj, x0_orig, torch.ones(8, 8), mode, sigmas, noise)
    assert torch.equal(run(obj, x0_orig, noise, sigmas, sampler, state), run(obj, x0_orig, noise, sigmas, sampler))


def test_blend_is_the_convex_combination_and_exact_at_the_ends():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    m = torch.rand(6, 6, generator=g)
    m[0], m[1] = 0.0, 1.0
    out = blend_x0(a, b, m)
    torch.testing.assert_close(out, m * a + (1 - m) * b, rtol=0, atol=1e-6)
    assert torch.equal(out[..., 0, :], b[..., 0, :]) and torch.equal(out[..., 1, :], a[..., 1, :])
    assert blend_x0(a, b, torch.ones(6, 6), every=1.0) is a  # the caller knows it from CPU data
    assert torch.equal(blend_x0(a, b, torch.ones(6, 6)), a) and torch.equal(
        blend_x0(a, b, torch.zeros(6, 6), every=0.0), b
    )


def test_blend_velocity_is_the_weighted_model_and_preserve_velocities():
    """v = m·v_model + (1 − m)·v_preserve with v_preserve = (x − x0_orig)/σ."""
    g = torch.Generator().manual_seed(1)
    x, x0m, x0o = (torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64) for _ in range(3))
    m, sigma = torch.rand(5, 5, generator=g, dtype=torch.float64), 0.7
    v = (x - blend_x0(x0m, x0o, m)) / sigma
    torch.testing.assert_close(v, m * (x - x0m) / sigma + (1 - m) * (x - x0o) / sigma)


@pytest.mark.parametrize("mode", ["blend", "strength"])
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_mixed_scales_keep_zero_tiles_and_let_one_tiles_follow_the_model(prediction, mode):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs(16, 24)
    sampled = torch.randn(1, 4, 16, 24, generator=torch.Generator().manual_seed(9))  # another latent of the same size
    mask = torch.zeros(16, 24)
    mask[:, 12:] = 1.0
    settings = TileSettings(
        min_denoise=0.0, max_denoise=1.0, scale_mode="mask", tile_width=96, tile_height=128, overlap=16
    )
    plan = make_plan(16, 24, settings, denoise_mask=mask)
    sigmas = schedule(obj, 4, 0.6)
    state = make_state(obj, x0_orig, plan.scale_map, mode, sigmas, noise)
    f = denoiser(obj)
    x = obj.noise_scaling(sigmas[0], noise, sampled)
    out = state.write_back(
        obj.inverse_noise_scaling(
            sigmas[-1], euler(lambda x, s: state.blend(f(state.hold_input(x, s), s), s), x, sigmas)
        )
    )
    stock = obj.inverse_noise_scaling(sigmas[-1], euler(f, x, sigmas))
    zero, one = plan.scale_map == 0, plan.scale_map == 1
    assert zero[:, :4].all() and one[:, -4:].all()  # outside the feather band
    assert torch.equal(out[..., zero], x0_orig[..., zero])  # the node's latent, not the sampled one
    torch.testing.assert_close(out[..., one], stock[..., one], rtol=0, atol=1e-6)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("m", [0.25, 0.5, 0.75])
def test_strength_pixel_is_a_stock_img2img_at_denoise_m_inside_the_schedule(prediction, m):
    obj = make_prediction(prediction)
    x0_orig, noise = inputs()
    sigmas = schedule(obj, 8, 1.0)
    scale = torch.full((8, 8), m)
    state = make_state(obj, x0_orig, scale, "strength", sigmas, noise)
    out = run(obj, x0_orig, noise, sigmas, "euler", state)
    k = 8 - round(m * 8)
    assert float(start_sigmas(sigmas, scale)[0, 0]) == float(sigmas[k])
    stock = run(obj, x0_orig, noise, sigmas[k:], "euler")  # a stock img2img starting at sigmas[k]
    torch.testing.assert_close(out, stock, rtol=0, atol=2e-5)


def test_state_rejects_a_scale_map_of_another_size_and_a_bad_mode():
    with pytest.raises(ValueError, match="scale must be"):
        PreserveState(torch.zeros(1, 4, 8, 8), torch.zeros(4, 4), "blend")
    with pytest.raises(ValueError, match="mode must be one of"):
        PreserveState(torch.zeros(1, 4, 8, 8), torch.zeros(8, 8), "soft")
