"""Tier 2, in process: scale_mode pixel in a real ComfyUI — pixels at mask 0 come back unchanged
for every KSampler sampler, all three prediction types and both modes; mask 1 everywhere is the
stock KSampler bit for bit; with tiled_model, tiles whose footprint is all scale 0 are never
evaluated; LoadImage's 64×64 all-zero placeholder is used as it is (with a warning); a mask of the
latent's batch keeps each sample's own zeros; the tile map shows the per-pixel scale."""

from __future__ import annotations

import logging

import pytest
import torch
from comfy_sampling_helpers import ksample
from tiled_comfy_helpers import standin_model, tiled_patch

pytestmark = pytest.mark.comfyui

PREDICTIONS = ["epsilon", "sol_v", "lune_flow"]


def latent(h=8, w=12, seed=0, batch=1):
    return torch.randn(batch, 4, h, w, generator=torch.Generator().manual_seed(seed))


def soft_mask(h, w):
    """A pixel-size MASK [1, 8h, 8w]: 0 on the left third, a cosine ramp, 1 on the right third."""
    x = torch.arange(w * 8, dtype=torch.float32) + 0.5
    t = ((x - w * 8 / 3) / (w * 8 / 3)).clamp(0, 1)
    return (0.5 - 0.5 * torch.cos(torch.pi * t)).expand(1, h * 8, w * 8).clone()


def kept(mask, h, w):
    """Latent pixels whose whole 8×8 block of the mask is 0."""
    return mask[0].reshape(h, 8, w, 8).amax(dim=(1, 3)) == 0


PIXEL = {
    "min_denoise": 0.0,
    "max_denoise": 1.0,
    "scale_mode": "pixel",
    "tile_width": 64,
    "tile_height": 64,
    "overlap": 16,
}


@pytest.mark.parametrize("mode", ["blend", "strength"])
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_pixels_at_mask_zero_come_back_unchanged_for_every_sampler(comfy, prediction, mode):
    import comfy.samplers

    lat, mask = latent(), soft_mask(8, 12)
    keep = kept(mask, 8, 12)
    assert 0 < int(keep.sum()) < keep.numel()
    patched = tiled_patch(standin_model(prediction), lat, **PIXEL, denoise_mask=mask, mode=mode)
    failures = []
    for sampler in comfy.samplers.KSampler.SAMPLERS:
        out = ksample(patched, lat, sampler=sampler, steps=3, denoise=0.6)
        err = float((out - lat)[..., keep].abs().max())
        moved = float((out - lat)[..., :, -1].abs().mean())
        if err > 1e-5 or moved < 1e-2:
            failures.append((sampler, err, moved))
    assert not failures


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_mask_one_everywhere_is_the_stock_ksampler_bit_for_bit(comfy, prediction):
    lat = latent()
    model = standin_model(prediction)
    for mode in ("blend", "strength"):
        patched = tiled_patch(model, lat, **PIXEL, denoise_mask=torch.ones(1, 64, 96), mode=mode)
        for sampler in ("euler", "dpmpp_2m", "uni_pc", "euler_ancestral"):
            assert torch.equal(
                ksample(patched, lat, sampler=sampler, steps=3, denoise=0.6),
                ksample(model, lat, sampler=sampler, steps=3, denoise=0.6),
            ), (mode, sampler)


@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_tiles_whose_footprint_is_all_scale_zero_are_never_evaluated(comfy, mode):
    from solune.samplers.tiled import TileSettings, make_plan, window_set

    lat = latent(16, 32, seed=3)
    model = standin_model("epsilon", pointwise=True)
    net = model.model.diffusion_model
    mask = torch.zeros(1, 16 * 8, 32 * 8)
    mask[..., 26 * 8 :] = torch.linspace(0.2, 1.0, 6 * 8)  # only the right 6 latent columns change
    plan = make_plan(16, 32, TileSettings(**PIXEL), denoise_mask=mask)
    evaluated = sum(t.area for t, s in zip(plan.layout.tiles, plan.scales) if s > 0)
    assert 0 < evaluated < 16 * 32
    windows = window_set(plan.layout, plan.weights, plan.scale_map > 0, plan.overlap, *plan.max_window, plan.overlap)
    assert 0 < windows.area <= evaluated  # the windows over m > 0 plus the margin: never more than those tiles
    net.calls.clear()
    tiled = ksample(
        tiled_patch(model, lat, **PIXEL, denoise_mask=mask, mode=mode, tiled_model=True),
        lat,
        steps=3,
        cfg=1.0,
        denoise=0.6,
    )
    area = sum(b * h * w for b, _, h, w in net.calls)
    if mode == "blend":
        assert area == 3 * windows.area  # 3 Euler evaluations, batch 1
    else:  # strength: a pixel is evaluated (with its margin) from the step where its scale starts
        assert 0 < area <= 3 * evaluated
    whole = ksample(tiled_patch(model, lat, **PIXEL, denoise_mask=mask, mode=mode), lat, steps=3, cfg=1.0, denoise=0.6)
    assert float((whole - tiled).abs().max()) <= 1e-5  # a pointwise network: tiled = whole
    assert float((tiled - lat)[..., :24].abs().max()) <= 1e-5


def test_loadimages_all_zero_placeholder_is_used_as_it_is_with_a_warning(comfy, caplog):
    lat = latent(8, 12)  # a 96×64 px picture without alpha: LoadImage gives a 64×64 zero mask
    model = standin_model("epsilon")
    net = model.model.diffusion_model
    with caplog.at_level(logging.WARNING, logger="solune"):
        patched = tiled_patch(
            model, lat, **{**PIXEL, "max_denoise": 0.75}, denoise_mask=torch.zeros(1, 64, 64), tiled_model=True
        )
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "all zero" in messages and "64×64 px" in messages and "96×64 px" in messages
    net.calls.clear()
    out = ksample(patched, lat, steps=3, denoise=0.6)
    assert net.calls == [] and float((out - lat).abs().max()) <= 1e-5


@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_a_mask_of_the_latents_batch_keeps_each_samples_own_zeros(comfy, mode):
    lat = latent(8, 12, seed=4, batch=2)
    one = soft_mask(8, 12)
    masks = torch.cat([one, one.flip(-1)])
    patched = tiled_patch(standin_model("sol_v"), lat, **PIXEL, denoise_mask=masks, mode=mode, tiled_model=True)
    out = ksample(patched, lat, sampler="dpmpp_2m", steps=3, denoise=0.6)
    for b in range(2):
        keep = kept(masks[b : b + 1], 8, 12)
        assert float((out[b] - lat[b])[:, keep].abs().max()) <= 1e-5
        assert float((out[b] - lat[b])[:, ~keep].abs().mean()) > 1e-2


def test_the_tile_map_shows_the_per_pixel_scale(comfy):
    from solune.nodes.tile_map import SoluneTileMap
    from solune.samplers.tiled import TileSettings, make_plan

    kw = {**PIXEL, "min_denoise": 0.2, "max_denoise": 0.9}
    mask = soft_mask(8, 12)
    image, scale = SoluneTileMap.execute(latent={"samples": latent()}, denoise_mask=mask, **kw).result
    plan = make_plan(8, 12, TileSettings(**kw), denoise_mask=mask)
    assert image.shape == (1, 64, 96, 3) and scale.shape == (1, 64, 96)
    assert torch.equal(scale[0, ::8, ::8], plan.scale_map)
    assert float(scale[0, 30, 4]) == pytest.approx(0.2) and float(scale[0, 30, 92]) == pytest.approx(0.9)
    # shading is the scale itself, pixel by pixel (off the borders), not one grey per tile
    grey = (image[0, ..., 0] == image[0, ..., 1]) & (image[0, ..., 1] == image[0, ..., 2])  # not a border
    assert grey.float().mean() > 0.8
    assert torch.equal(image[0, ..., 1][grey], scale[0][grey]) and len(set(image[0, 30, :, 1].tolist())) > 6


def test_the_hooks_scale_output_is_the_per_pixel_scale_the_run_uses(comfy):
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img
    from solune.samplers.tiled import TileSettings, make_plan

    lat, mask = latent(), soft_mask(8, 12)
    model = standin_model("epsilon")
    patched, tile_map, scale = SoluneTiledImg2Img.execute(
        model=model, latent={"samples": lat}, **PIXEL, denoise_mask=mask
    ).result
    plan = make_plan(8, 12, TileSettings(**PIXEL), denoise_mask=mask)
    assert tile_map.shape == (1, 64, 96, 3) and scale.shape == (1, 64, 96)
    assert torch.equal(scale[0, ::8, ::8], plan.scale_map) and len(set(scale[0, 30].tolist())) > 4
    out = ksample(patched, lat, sampler="dpmpp_2m", steps=3, denoise=0.6)
    zero = scale[0, ::8, ::8] == 0
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5
