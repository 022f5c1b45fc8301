"""Tier 2, in process: SoluneTiledImg2Img on every model family in its real ComfyUI architecture
(SD1.5, SDXL, SD3, Flux; random weights, loaded through the stock loaders), whole-image and tile by
tile, both modes, with area and mask conditioning: scale 0 returns the original, scale 1 is the
stock sampler bit for bit, and a tiled evaluation is the model run on each tile's crop."""

from __future__ import annotations

import pytest
import torch

from families_helpers import FAMILIES, CallRecorder, FamilyFiles, family_latent, load_unet, sample
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

MODES = ["blend", "strength"]
TILES = dict(tile_width=48, tile_height=64, overlap=16, tile_batch_size=3)  # 8x16 latents: one row of 4 tiles
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
    mask[:, (w // 2 if start is None else start) * 8:] = 1.0
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
def tile_indices(layout, outer_x, inner_x, chunks):
    """The tiles whose chunk-major crops of outer_x make up inner_x (layout order, one size)."""
    from solune.samplers.tiled import crop_tiles

    rows = outer_x.shape[0]
    n = inner_x.shape[0] // rows
    size = tuple(inner_x.shape[-2:])
    found = []
    for i, tile in enumerate(layout.tiles):
        if (tile.h, tile.w) != size or len(found) == n:
            continue
        if torch.equal(crop_tiles(outer_x, layout, found + [i], chunks), _chunk_prefix(inner_x, chunks, n, len(found) + 1)):
            found.append(i)
    assert len(found) == n, "a tile batch is not made of tile crops of the model input"
    return found


def _chunk_prefix(v, chunks, n, k):
    """The first k tiles of a chunk-major batch of n tiles."""
    s = v.reshape(chunks, n, v.shape[0] // (chunks * n), *v.shape[1:])[:, :k]
    return s.reshape(-1, *v.shape[1:])


def per_row(v, chunks, n):
    """A per-row tensor [B, ...] for n tiles in chunk-major order (the tests' own version)."""
    s = v.reshape(chunks, 1, v.shape[0] // chunks, *v.shape[1:])
    return s.expand(chunks, n, *s.shape[2:]).reshape(-1, *v.shape[1:])


def check_tiles_are_the_model_on_their_crops(model, plan, fill, recorder, expect_batches=None):
    """Every call reaching the model is a batch of tile crops of the whole input it belongs to; its
    output is the model run on those crops; the whole output is the feathered sum of the tiles."""
    from solune.samplers.tiled import active_batches, active_tiles

    layout = plan.layout
    assert recorder.outer_calls
    evaluated = 0
    for e, outer in enumerate(recorder.outer_calls):
        inner = [c for c in recorder.inner_calls if c["outer"] == e]
        x = outer["x"]
        if tuple(x.shape[-2:]) != (layout.latent_h, layout.latent_w):  # an area crop: evaluated whole
            assert len(inner) == 1 and torch.equal(inner[0]["x"], x) and torch.equal(inner[0]["out"], outer["out"])
            continue
        chunks = len(outer["transformer_options"]["cond_or_uncond"])
        acc = torch.zeros(x.shape, dtype=torch.float64)
        covered = torch.zeros(x.shape[-2:], dtype=torch.bool)
        done = set()
        batches = []
        for call in inner:
            idx = tile_indices(layout, x, call["x"], chunks)
            batches.append(idx)
            n = len(idx)
            kw = {k: per_row(v, chunks, n) if isinstance(v, torch.Tensor) and v.shape[:1] == x.shape[:1] else v
                  for k, v in outer["kwargs"].items()}
            with torch.no_grad():
                expected = model.model.apply_model(call["x"], per_row(outer["t"], chunks, n),
                                                   c_crossattn=per_row(outer["c_crossattn"], chunks, n),
                                                   control=call["control"], **kw)
            assert torch.equal(expected, call["out"]), "a tile's output is not the model run on its crop"
            out = call["out"].reshape(chunks, n, -1, *call["out"].shape[1:])
            for j, i in enumerate(idx):
                t = layout.tiles[i]
                acc[..., t.y0:t.y1, t.x0:t.x1] += out[:, j].reshape(-1, *out.shape[3:]).double() * plan.weights[i].double()
                covered[t.slices] = True
                done.add(i)
        for i, t in enumerate(layout.tiles):
            if i not in done:
                acc[..., t.y0:t.y1, t.x0:t.x1] += fill.expand_as(x)[..., t.y0:t.y1, t.x0:t.x1].double() * plan.weights[i].double()
        whole = torch.where(covered, acc, fill.expand_as(x).double())
        assert float((whole - outer["out"].double()).abs().max()) <= 1e-5
        if expect_batches is not None:
            assert batches == active_batches(layout, active_tiles(layout, plan.scale_map), TILES["tile_batch_size"])
        evaluated += len(batches)
    return evaluated


def family_plan(model, lat, **kw):
    from solune.nodes.tiled_hooks import model_geometry
    from solune.nodes.tiled_inputs import DEFAULTS, build_plan

    args = {**DEFAULTS, **TILES, **kw}
    downscale, align = model_geometry(model)
    plan_kw = {k: v for k, v in args.items() if k not in ("mode", "tiled_model", "tile_batch_size", "denoise_mask", "image")}
    return build_plan("test", lat, downscale, align, denoise_mask=kw.get("denoise_mask"), **plan_kw)


@pytest.mark.parametrize("mode", MODES)
def test_tiled_evaluation_is_the_model_run_on_each_tile_crop(files, family, mode):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg = conds(family)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12), mode=mode, **TILES)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    out = sample(patched, lat, pos, neg)
    plan = family_plan(model, lat, **kw)
    fill = model.model.process_latent_in(lat)
    evaluated = check_tiles_are_the_model_on_their_crops(model, plan, fill, recorder,
                                                         expect_batches=True if mode == "blend" else None)
    assert evaluated > 0
    zero = plan.scale_map == 0
    assert zero.any() and float((out - lat)[..., zero].abs().max()) <= 1e-5
    # tiles at scale 0 over their footprint never reach the model
    from solune.samplers.tiled import active_tiles

    never = [i for i, a in enumerate(active_tiles(plan.layout, plan.scale_map)) if not a]
    assert never
    seen = {i for e, o in enumerate(recorder.outer_calls) for c in recorder.inner_calls if c["outer"] == e
            for i in tile_indices(plan.layout, o["x"], c["x"], len(c["transformer_options"]["cond_or_uncond"]))}
    assert not seen & set(never)


def test_tiled_evaluation_with_area_and_mask_conditioning_crops_or_evaluates_whole(files, family):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg = area_and_mask_conds(family, *WIDE)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(), **TILES)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    out = sample(patched, lat, pos, neg)
    plan = family_plan(model, lat, **kw)
    assert any(tuple(o["x"].shape[-2:]) == (4, 4) for o in recorder.outer_calls)  # the area was evaluated
    check_tiles_are_the_model_on_their_crops(model, plan, model.model.process_latent_in(lat), recorder)
    zero = plan.scale_map == 0
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5
