"""Tier 2, in process: SoluneTiledImg2Img on every model family in its real ComfyUI architecture
(SD1.5, SDXL, SD3, Flux; random weights, loaded through the stock loaders), whole-image and tile by
tile, both modes, with area and mask conditioning: scale 0 returns the original, scale 1 is the
stock sampler bit for bit, and a tiled evaluation is the model run on each tile's crop."""

from __future__ import annotations

import pytest
import torch
from families_helpers import (
    FAMILIES,
    CallRecorder,
    FamilyFiles,
    family_latent,
    load_unet,
    sample,
)
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

MODES = ["blend", "strength"]
TILES = {"tile_width": 48, "tile_height": 64, "overlap": 16, "tile_batch_size": 3}  # 8x16 latents: one row of 4 tiles
SIZE, WIDE = (8, 8), (8, 16)  # latent sizes of the whole-image and of the tiled runs


@pytest.fixture(scope="session")
def files(comfy, tmp_path_factory):
    return FamilyFiles(tmp_path_factory.getbasetemp() / "family_models")


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


def conds(family):
    from comfy_families import conditioning

    return conditioning(family)


def right_mask(h=8, w=16, start=None):
    """1 (change) from column `start` (latent units; default half way) to the right edge."""
    mask = torch.zeros(h * 8, w * 8)
    mask[:, (w // 2 if start is None else start) * 8 :] = 1.0
    return mask


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_scale_zero_returns_the_original_for_every_family(files, family, mode, tiled):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg = conds(family)
    patched = tiled_patch(model, lat, min_denoise=0.0, max_denoise=0.0, mode=mode, tiled_model=tiled, **TILES)
    out = sample(patched, lat, pos, neg, sampler="dpmpp_2m")
    assert float((out - lat).abs().max()) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_scale_one_whole_image_is_the_stock_sampler_bit_for_bit_for_every_family(files, family, mode):
    model, lat = load_unet(files, family), family_latent(family, *SIZE)
    pos, neg = conds(family)
    patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, mode=mode, **TILES)
    assert torch.equal(sample(patched, lat, pos, neg), sample(model, lat, pos, neg))


def test_scale_one_whole_image_with_area_and_mask_conditioning_is_stock_bit_for_bit(files, family):
    model, lat = load_unet(files, family), family_latent(family, *SIZE)
    pos, neg = area_and_mask_conds(family, *SIZE)
    patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, **TILES)
    assert torch.equal(sample(patched, lat, pos, neg), sample(model, lat, pos, neg))


def area_and_mask_conds(family, h, w):
    """The positive prompt, plus itself on a 32x32 px area and under a mask (latent size h x w)."""
    from nodes import ConditioningCombine, ConditioningSetArea, ConditioningSetMask

    pos, neg = conds(family)
    area = ConditioningSetArea().append(pos, 32, 32, w * 8 - 48, 16, 1.0)[0]
    mask = torch.zeros(1, h * 8, w * 8)
    mask[:, 8:40, 8:48] = 1.0
    masked = ConditioningSetMask().append(pos, mask, "default", 0.8)[0]
    combined = ConditioningCombine().combine(ConditioningCombine().combine(pos, area)[0], masked)[0]
    return combined, neg


# ---------------------------------------------------------------- tile by tile
def crop_positions(outer_x, inner_x, chunks):
    """Where each crop of a chunk-major tile batch sits in the whole input: [(y0, x0), ...].

    Found by search, independent of how Solune lays its tiles out; asserts that every crop (all its
    rows, cond and uncond) is a crop of the whole input."""
    rows = outer_x.shape[0]
    n = inner_x.shape[0] // rows
    h, w = inner_x.shape[-2:]
    H, W = outer_x.shape[-2:]
    crops = inner_x.reshape(chunks, n, rows // chunks, *inner_x.shape[1:])
    whole = outer_x.reshape(chunks, rows // chunks, *outer_x.shape[1:])
    found = []
    for j in range(n):
        hits = [
            (y, x)
            for y in range(H - h + 1)
            for x in range(W - w + 1)
            if torch.equal(whole[..., y : y + h, x : x + w], crops[:, j])
        ]
        assert len(hits) == 1, f"tile {j} of a batch is not one crop of the model input ({len(hits)} matches)"
        found.append(hits[0])
    return found


def per_row(v, chunks, n):
    """A per-row tensor [B, ...] for n tiles in chunk-major order (the tests' own version)."""
    s = v.reshape(chunks, 1, v.shape[0] // chunks, *v.shape[1:])
    return s.expand(chunks, n, *s.shape[2:]).reshape(-1, *v.shape[1:])


def tile_calls(recorder):
    """[(outer call, [inner calls made for it])] for the whole-size evaluations; area crops checked
    to be evaluated whole on the way."""
    out = []
    for e, outer in enumerate(recorder.outer_calls):
        inner = [c for c in recorder.inner_calls if c["outer"] == e]
        out.append((outer, inner))
    return out


def check_tiles_are_the_model_on_their_crops(model, recorder, latent_hw, reference_control=None):
    """Every call reaching the model is a batch of crops of the whole input it belongs to, and its
    output is the model (and, given `reference_control`, the ControlNet) run on those crops alone.
    Area conditioning (a smaller input) is evaluated whole. Returns [(y0, x0, h, w) per tile call]."""
    regions = []
    for outer, inner in tile_calls(recorder):
        x = outer["x"]
        if tuple(x.shape[-2:]) != tuple(latent_hw):  # an area crop: evaluated whole, as stock
            assert len(inner) == 1 and torch.equal(inner[0]["x"], x) and torch.equal(inner[0]["out"], outer["out"])
            continue
        chunks = len(outer["transformer_options"]["cond_or_uncond"])
        for call in inner:
            pos = crop_positions(x, call["x"], chunks)
            n = len(pos)
            h, w = call["x"].shape[-2:]
            regions += [(y, x0, h, w) for y, x0 in pos]
            kw = {
                k: per_row(v, chunks, n) if isinstance(v, torch.Tensor) and v.shape[:1] == x.shape[:1] else v
                for k, v in outer["kwargs"].items()
            }
            t, context = per_row(outer["t"], chunks, n), per_row(outer["c_crossattn"], chunks, n)
            control = call["control"]
            if reference_control is not None:
                expected_control = reference_control(call["x"], t, context, kw, pos, chunks)
                assert_same_control(control, expected_control)
            with torch.no_grad():
                given = {k: list(v) for k, v in control.items()} if control else control
                expected = model.model.apply_model(call["x"], t, c_crossattn=context, control=given, **kw)
            assert torch.equal(expected, call["out"]), "a tile's output is not the model run on its crop"
    return regions


def assert_same_control(got, expected):
    if expected is None:
        assert not got, "a tile got control where the ControlNet is off"
        return
    assert set(got) == set(expected)
    for key in expected:
        assert len(got[key]) == len(expected[key]), key
        for a, b in zip(got[key], expected[key]):
            assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), f"control {key} differs"


def family_plan(model, lat, **kw):
    from solune.nodes.tiled_hooks import model_geometry
    from solune.nodes.tiled_inputs import build_plan, settings_from

    values = {k: v for k, v in {**TILES, **kw}.items() if k not in ("denoise_mask", "image")}
    downscale, align = model_geometry(model)
    return build_plan(
        "test", settings_from("test", **values), lat, downscale, align, denoise_mask=kw.get("denoise_mask")
    )


@pytest.mark.parametrize("mode", MODES)
def test_tiled_evaluation_is_the_model_run_on_each_tile_crop(files, family, mode):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg = conds(family)
    kw = {
        "min_denoise": 0.0,
        "max_denoise": 1.0,
        "scale_mode": "mask",
        "denoise_mask": right_mask(start=12),
        "mode": mode,
        **TILES,
    }
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    out = sample(patched, lat, pos, neg)
    regions = check_tiles_are_the_model_on_their_crops(model, recorder, WIDE)
    assert regions and all(h < WIDE[0] or w < WIDE[1] for _, _, h, w in regions)  # tiles, not the whole image
    scale = family_plan(model, lat, **kw).scale_map
    zero = scale == 0
    assert zero.any() and float((out - lat)[..., zero].abs().max()) <= 1e-5
    # no tile at scale 0 over its footprint reaches the model
    assert all(bool((scale[y : y + h, x : x + w] != 0).any()) for y, x, h, w in regions)


def test_tiled_evaluation_with_area_and_mask_conditioning_crops_or_evaluates_whole(files, family):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg = area_and_mask_conds(family, *WIDE)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(), **TILES)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    out = sample(patched, lat, pos, neg)
    assert any(tuple(o["x"].shape[-2:]) == (4, 4) for o in recorder.outer_calls)  # the area was evaluated
    assert check_tiles_are_the_model_on_their_crops(model, recorder, WIDE)
    zero = family_plan(model, lat, **kw).scale_map == 0
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5
