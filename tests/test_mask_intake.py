"""Tier 1: a user's MASK reaches the latent as ComfyUI brings it there (SetLatentNoiseMask,
DifferentialDiffusion, KSampler's noise mask): any size, area averaging when it shrinks, bilinear
when it grows, batch 1 or the latent's batch; an aspect ratio off by more than 1 % and an all-zero
mask are used with one logged warning each; values outside [0, 1], NaN and a missing mask are
refused naming `denoise_mask`, before anything runs."""

import logging

import pytest
import torch

from solune.samplers.tiled import TileSettings, check_guides, make_plan
from solune.tiling import mask_to_latent_size

LOGGER = "solune.tiling.resize"


def plan(mask, h=8, w=12, scale_mode="pixel", batch=1):
    """What the nodes do: check the tensors at the boundary, then build the plan."""
    settings = TileSettings(min_denoise=0.0, max_denoise=1.0, scale_mode=scale_mode)
    check_guides(settings, torch.zeros(batch, 4, h, w), 8, denoise_mask=mask)
    return make_plan(h, w, settings, denoise_mask=mask)


def test_a_shrinking_axis_is_area_averaged():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(1, 16, 24, generator=g, dtype=torch.float64)
    out = mask_to_latent_size(mask, 8, 12)  # exact 2x: the mean of each 2x2 block
    assert torch.allclose(out, mask[0].reshape(8, 2, 12, 2).mean(dim=(1, 3)), rtol=0, atol=1e-15)
    # 3 → 2 columns: windows [0, 2) and [1, 3) (adaptive average pooling)
    row = torch.tensor([[0.0, 0.6, 0.9]], dtype=torch.float64)
    assert torch.allclose(mask_to_latent_size(row, 1, 2), torch.tensor([[0.3, 0.75]], dtype=torch.float64), atol=1e-15)


def test_a_growing_axis_is_bilinear_with_half_pixel_centres():
    row = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    # 2 → 4: output centres sit at input positions -0.25, 0.25, 0.75, 1.25 (the ends clamp)
    out = mask_to_latent_size(row, 1, 4)
    assert torch.allclose(out, torch.tensor([[0.0, 0.25, 0.75, 1.0]], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("size", [(64, 64), (100, 37), (5, 7), (64, 96)])
def test_zeros_and_ones_stay_exact_at_any_size(size):
    for value in (0.0, 1.0):
        out = mask_to_latent_size(torch.full((1, *size), value), 8, 12, warn=False)
        assert torch.equal(out, torch.full((8, 12), value, dtype=torch.float64))


def test_float32_rounding_of_stock_mask_nodes_is_clamped_onto_the_range():
    mask = torch.full((1, 64, 96), 1.0 + 1.1e-6)  # what ImageBlur leaves inside a painted area
    mask[..., :32] = -1e-7
    out = mask_to_latent_size(mask, 8, 12)
    assert torch.equal(out[:, :4], torch.zeros(8, 4, dtype=torch.float64))
    assert torch.equal(out[:, 4:], torch.ones(8, 8, dtype=torch.float64))


def test_the_latent_size_is_used_as_it_is():
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(8, 12, generator=g, dtype=torch.float64)
    assert torch.equal(mask_to_latent_size(mask, 8, 12), mask)


def test_batch_one_or_the_latents_batch_and_no_other():
    masks = torch.stack([torch.zeros(8, 12), torch.ones(8, 12)])
    assert plan(masks, batch=2).scale_map.shape == (2, 8, 12)
    assert plan(masks[:1], batch=2).scale_map.shape == (8, 12)
    with pytest.raises(ValueError, match=r"denoise_mask must have batch 1 or the latent's batch 3; got batch 2"):
        plan(masks, batch=3)
    # scale_mode mask averages a batch into one map (a tile layout serves the whole batch)
    assert set(plan(masks, scale_mode="mask", batch=2).scales) == {0.5}


def test_an_aspect_ratio_off_by_more_than_one_percent_is_stretched_with_one_warning(caplog):
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1.0
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p = plan(mask)  # the image is 96×64 px
    warnings = [r.getMessage() for r in caplog.records if "aspect ratio" in r.getMessage()]
    assert len(warnings) == 1 and "64×64 px" in warnings[0] and "96×64 px" in warnings[0]
    assert torch.equal(p.scale_map[:, :5], torch.zeros(8, 5)) and torch.equal(p.scale_map[:, 7:], torch.ones(8, 5))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        plan(torch.zeros(1, 128, 193) + 0.5)  # 0.5 % off: no warning
    assert [r for r in caplog.records if "denoise_mask" in r.getMessage()] == []


def test_an_all_zero_mask_is_used_as_it_is_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p = plan(torch.zeros(1, 64, 64), scale_mode="mask")  # LoadImage's placeholder
    assert set(p.scales) == {0.0} and torch.equal(p.scale_map, torch.zeros(8, 12))
    zero = [r.getMessage() for r in caplog.records if "all zero" in r.getMessage()]
    assert len(zero) == 1 and "denoise_mask" in zero[0] and "keeps the original" in zero[0]


@pytest.mark.parametrize("scale_mode", ["mask", "pixel"])
@pytest.mark.parametrize(
    "mask, pattern",
    [
        (torch.full((1, 64, 96), 1.5), r"denoise_mask must hold values in \[0, 1\] .*; got values in \[1.5, 1.5\]"),
        (
            torch.full((1, 64, 96), -0.25),
            r"denoise_mask must hold values in \[0, 1\] .*; got values in \[-0.25, -0.25\]",
        ),
        (torch.full((1, 64, 96), float("nan")), r"denoise_mask must hold only finite values; got 6144 NaN"),
        (
            torch.zeros(2, 1, 64, 96),
            r"denoise_mask must be a non-empty MASK \[H, W\] or \[B, H, W\]; got \(2, 1, 64, 96\)",
        ),
        (None, r"denoise_mask must be connected for scale_mode '(mask|pixel)' .*; got none"),
    ],
)
def test_bad_masks_are_refused_naming_denoise_mask(scale_mode, mask, pattern):
    with pytest.raises(ValueError, match=pattern):
        plan(mask, scale_mode=scale_mode)


def test_an_all_zero_mask_says_what_min_denoise_does_with_it(caplog):
    settings = TileSettings(min_denoise=0.3, max_denoise=0.7, scale_mode="mask")
    with caplog.at_level(logging.WARNING):
        make_plan(8, 12, settings, denoise_mask=torch.zeros(1, 64, 64))
    zero = [r.getMessage() for r in caplog.records if "all zero" in r.getMessage()]
    assert len(zero) == 1
    assert "the whole image changes evenly at min_denoise (0.3) and nowhere at max_denoise" in zero[0]
    assert "Mask Editor" in zero[0]


def test_a_mask_of_the_picture_vae_encode_cut_to_a_multiple_of_8_is_named_as_such(caplog):
    """A 100×70 px picture is encoded as 96×64 px (12×8 latent): its mask is 4 columns and 6 rows larger."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        plan(torch.ones(1, 70, 100))
    messages = [r.getMessage() for r in caplog.records if "denoise_mask" in r.getMessage()]
    assert len(messages) == 1, messages
    assert "denoise_mask (100×70 px) is slightly larger than the image (96×64 px)" in messages[0]
    assert "dropping its last 4 column(s) and 6 row(s)" in messages[0] and "aspect ratio" not in messages[0]
