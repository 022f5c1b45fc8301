"""Tier 1: latents with a frame axis [B, C, 1, H, W] (Qwen-Image and other families whose latent
format is a video format) go through the tiled hook's maths exactly as their [B, C, H, W] picture:
a whole sampling loop (hold, tiled evaluation with cond/uncond chunks and cropped conditioning,
blend, write-back) gives bit for bit the 4-D result with the frame axis added; the plan is made over
H and W; the original follows the sampled latent's layout; video latents (T > 1) are refused."""

import pytest
import torch

from solune.samplers.tiled import PreserveState, TiledRun, TileSettings, make_plan, tile_args
from solune.samplers.tiled.frames import as_sampled, frame_count, image_latent


def pointwise(x):
    return torch.tanh(x) * 0.7 + x.square() * 0.1 - x[:, :1] * 0.2


def per_row(v, like):
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def run_loop(mode, tiled, plan, x0, noise, context, sigmas, chunks=2):
    """k-diffusion Euler with cond/uncond batched like ComfyUI; works for any latent rank."""
    state = PreserveState(x0, plan.scale_map, mode, sigmas, noise, lambda s, n, o: o + per_row(s, o) * n)
    run = TiledRun(state, plan)

    def model(x_in, sigma, ctx):
        return pointwise(x_in) + per_row(ctx.mean(dim=(1, 2)), x_in) * 0.1 + per_row(sigma, x_in) * 0.01

    x = x0 + sigmas[0] * noise
    s_in = x.new_ones([x0.shape[0]])
    calls = []
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i] * s_in
        run.enter(sigma)
        xi = run.hold_input(x, sigma)
        x_cat, s_cat = torch.cat([xi] * chunks), torch.cat([sigma] * chunks)
        if tiled:

            def denoise(crops, windows, idx, s_cat=s_cat, rows=x_cat.shape[0]):
                calls.append(tuple(crops.shape))
                s_t, c_t = tile_args((s_cat, context), windows, idx, rows, chunks)
                return model(crops, s_t, c_t)

            out = run.evaluate(denoise, x_cat, 3, chunks)
        else:
            out = model(x_cat, s_cat, context)
        cond, uncond = out.chunk(chunks)
        x0_b = run.blend(uncond + (cond - uncond) * 3.0, sigma)
        run.leave()
        x = x + (x - x0_b) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return state.write_back(x), calls


def setup(scale_mode):
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(160, 224)
    mask[:80, :100] = 1.0
    if scale_mode == "pixel":  # one soft map per sample: [B, H, W]
        mask = torch.stack([mask, mask.flip(-1)])
        mask[0, 80:, 100:160] = torch.linspace(0.0, 1.0, 60).expand(80, 60)
    settings = TileSettings.from_inputs(
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode=scale_mode,
        tile_width=128,
        tile_height=128,
        overlap=32,
    )
    plan = make_plan(20, 28, settings, denoise_mask=mask)
    x0, noise = torch.randn(2, 4, 20, 28, generator=g), torch.randn(2, 4, 20, 28, generator=g)
    context = torch.randn(4, 3, 8, generator=g)
    return plan, x0, noise, context, torch.tensor([3.0, 2.0, 1.2, 0.6, 0.0])


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("scale_mode", ["mask", "pixel"])
@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_a_one_frame_latent_samples_bit_for_bit_as_its_picture(mode, scale_mode, tiled):
    plan, x0, noise, context, sigmas = setup(scale_mode)
    flat, flat_calls = run_loop(mode, tiled, plan, x0, noise, context, sigmas)
    framed, framed_calls = run_loop(mode, tiled, plan, x0.unsqueeze(2), noise.unsqueeze(2), context, sigmas)
    assert framed.shape == (2, 4, 1, 20, 28)
    assert torch.equal(framed[:, :, 0], flat)
    # the same tiles, cut over H and W with the frame axis kept
    assert [c[:2] + c[3:] for c in framed_calls] == [c[:2] + c[2:] for c in flat_calls]
    assert all(len(c) == 5 and c[2] == 1 for c in framed_calls)
    if tiled:
        assert flat_calls and any(c[-2:] != (20, 28) for c in flat_calls)
    zero = plan.scale_map == 0
    zero = zero if zero.dim() == 2 else zero.all(dim=0)
    assert zero.any() and torch.equal(framed[:, :, 0][..., zero], x0[..., zero])


def test_the_plan_is_made_over_height_and_width_of_a_one_frame_latent():
    latent = torch.randn(1, 16, 1, 6, 10)
    assert frame_count(latent) == 1 and frame_count(latent[:, :, 0]) is None
    assert torch.equal(image_latent(latent), latent[:, :, 0])
    assert image_latent(latent[:, :, 0]) is not None and image_latent(latent[:, :, 0]).shape == (1, 16, 6, 10)


def test_the_original_follows_the_sampled_layout():
    four, five = torch.randn(1, 16, 6, 10), torch.randn(2, 16, 1, 6, 10)
    assert torch.equal(as_sampled(four, five.shape), four.unsqueeze(2))
    assert torch.equal(as_sampled(five, four.shape), five[:, :, 0])
    assert as_sampled(four, four.shape) is four
    assert as_sampled(four, (1, 16, 1, 6, 12)) is None  # another size
    assert as_sampled(four, (1, 4, 1, 6, 10)) is None  # other channels
    assert as_sampled(four, (1, 16, 3, 6, 10)) is None  # video


@pytest.mark.parametrize(
    "shape,needle",
    [((1, 16, 3, 8, 8), "3 frames"), ((1, 16, 8), "shape (1, 16, 8)"), ((1, 1, 16, 1, 8, 8), "[B, C, 1, H, W]")],
)
def test_video_and_other_latents_are_refused_naming_the_family_and_shape(shape, needle):
    with pytest.raises(ValueError, match="latent must be an image LATENT for QwenImage") as err:
        image_latent(torch.zeros(shape), "latent", "QwenImage")
    assert needle in str(err.value) and str(shape) in str(err.value)
