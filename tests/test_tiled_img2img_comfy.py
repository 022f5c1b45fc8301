"""Tier 2, in process: SoluneTiledImg2Img in a real ComfyUI — scale 0 exact for every KSampler
sampler, scale 1 identical to the stock KSampler, mixed scales, tiled = whole for a pointwise
network, skipped tiles never evaluated, stacking with DifferentialDiffusion / noise_mask / other
wrappers, 16-channel latents, and bad input refused before sampling."""

from __future__ import annotations

import pytest
import torch
from comfy_sampling_helpers import ksample
from tiled_comfy_helpers import standin_model, tiled_patch

pytestmark = pytest.mark.comfyui

PREDICTIONS = ["epsilon", "sol_v", "lune_flow"]
MODES = ["blend", "strength"]


def latent(h=8, w=8, c=4, seed=0, batch=1):
    return torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_scale_zero_returns_the_input_latent_for_every_sampler(comfy, prediction, mode):
    import comfy.samplers

    lat = latent()
    patched = tiled_patch(
        standin_model(prediction),
        lat,
        min_denoise=0.0,
        max_denoise=0.0,
        mode=mode,
        tile_width=32,
        tile_height=32,
        overlap=8,
    )
    failures = []
    for sampler in comfy.samplers.KSampler.SAMPLERS:
        for denoise in (0.3, 0.6, 1.0):
            err = float((ksample(patched, lat, sampler=sampler, steps=3, denoise=denoise) - lat).abs().max())
            if err > 1e-5:
                failures.append((sampler, denoise, err))
    assert not failures


@pytest.mark.parametrize("sampler", ["euler", "uni_pc", "ddpm", "dpm_fast", "dpmpp_2m_sde", "euler_cfg_pp"])
def test_scale_zero_returns_the_input_latent_with_the_tiny_sd15_unet(sd15, sampler):
    lat = latent(16, 16)
    for mode in MODES:
        out = ksample(
            tiled_patch(sd15, lat, min_denoise=0.0, max_denoise=0.0, mode=mode),
            lat,
            sampler=sampler,
            steps=3,
            denoise=0.6,
        )
        assert float((out - lat).abs().max()) <= 1e-5


@pytest.fixture(scope="module")
def sd15(comfy):
    from comfy_harness import tiny_sd15_model

    return tiny_sd15_model(seed=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_scale_one_is_the_stock_ksampler_bit_for_bit(comfy, prediction, mode):
    lat = latent()
    model = standin_model(prediction)
    patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, mode=mode)
    for sampler in ("euler", "euler_ancestral", "dpmpp_2m", "uni_pc", "dpm_adaptive", "ddpm", "res_multistep_cfg_pp"):
        for denoise in (0.6, 1.0):
            assert torch.equal(
                ksample(patched, lat, sampler=sampler, steps=3, denoise=denoise),
                ksample(model, lat, sampler=sampler, steps=3, denoise=denoise),
            ), (sampler, denoise)


def test_scale_one_is_the_stock_ksampler_with_the_tiny_sd15_unet(sd15):
    lat = latent(16, 16)
    patched = tiled_patch(sd15, lat, min_denoise=1.0, max_denoise=1.0)
    assert torch.equal(ksample(patched, lat, steps=3, denoise=0.6), ksample(sd15, lat, steps=3, denoise=0.6))


def half_mask(h, w):
    mask = torch.zeros(h * 8, w * 8)
    mask[:, w * 4 :] = 1.0
    return mask


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_mixed_scales_keep_zero_tiles_and_one_tiles_follow_the_model(comfy, prediction, mode, tiled):
    from solune.samplers.tiled import TileSettings, make_plan

    orig, sampled = latent(16, 24, seed=1), latent(16, 24, seed=2)  # preserve orig while sampling another latent
    model = standin_model(prediction, pointwise=True)
    kw = dict(
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        tile_width=96,
        tile_height=128,
        overlap=16,
        denoise_mask=half_mask(16, 24),
        mode=mode,
        tiled_model=tiled,
        tile_batch_size=2,
    )
    out = ksample(tiled_patch(model, orig, **kw), sampled, sampler="dpmpp_2m", steps=4, denoise=0.6)
    stock = ksample(model, sampled, sampler="dpmpp_2m", steps=4, denoise=0.6)
    plan = make_plan(16, 24, TileSettings.from_inputs(**kw), denoise_mask=kw["denoise_mask"])
    zero, one = plan.scale_map == 0, plan.scale_map == 1
    assert zero[:, :4].all() and one[:, -4:].all()
    assert float((out - orig)[..., zero].abs().max()) <= 1e-5
    assert float((out - stock)[..., one].abs().max()) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("cfg", [1.0, 4.0])
def test_tiled_evaluation_of_a_pointwise_network_equals_whole_image(comfy, prediction, mode, cfg):
    lat = latent(24, 32, seed=3)
    model = standin_model(prediction, pointwise=True)
    kw = dict(
        min_denoise=0.2,
        max_denoise=0.9,
        layout="quadtree",
        scale_mode="by_area",
        min_tile=64,
        max_tile=128,
        threshold=0.5,
        overlap=16,
        mode=mode,
        tile_batch_size=3,
    )
    whole = ksample(
        tiled_patch(model, lat, tiled_model=False, **kw), lat, sampler="heun", steps=3, denoise=0.6, cfg=cfg
    )
    tiled = ksample(tiled_patch(model, lat, tiled_model=True, **kw), lat, sampler="heun", steps=3, denoise=0.6, cfg=cfg)
    assert float((whole - tiled).abs().max()) <= 1e-5


def test_only_the_active_windows_are_evaluated_and_an_all_zero_plan_never_calls_the_model(comfy):
    from solune.samplers.tiled import TileSettings, active_tiles, make_plan, window_set

    lat = latent(24, 32, seed=4)
    model = standin_model("epsilon")
    net = model.model.diffusion_model
    mask = torch.zeros(24 * 8, 32 * 8)
    mask[:, 24 * 8 :] = 1.0
    kw = dict(
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        tile_width=64,
        tile_height=64,
        overlap=16,
        denoise_mask=mask,
    )
    plan = make_plan(24, 32, TileSettings.from_inputs(**kw), denoise_mask=mask)
    windows = window_set(plan.layout, plan.weights, plan.scale_map > 0, plan.overlap, *plan.max_window, plan.overlap)
    expected = windows.area
    active = active_tiles(plan.layout, plan.scale_map[None, None])
    assert 0 < expected < sum(t.area for t, a in zip(plan.layout.tiles, active) if a)  # less than whole active tiles
    net.calls.clear()
    ksample(tiled_patch(model, lat, tiled_model=True, tile_batch_size=4, **kw), lat, steps=3, cfg=1.0, denoise=0.6)
    assert len(net.calls) > 0
    assert sum(b * h * w for b, _, h, w in net.calls) == 3 * expected  # 3 Euler evaluations, batch 1
    net.calls.clear()
    out = ksample(tiled_patch(model, lat, tiled_model=True, **{**kw, "max_denoise": 0.0}), lat, steps=3, denoise=0.6)
    assert net.calls == [] and float((out - lat).abs().max()) <= 1e-5


def test_16_channel_patch_2_latents_tile_on_the_patch_grid_and_stay_exact(comfy):
    from solune.nodes.tiled_hooks import model_geometry

    lat = latent(20, 26, c=16, seed=5)
    model = standin_model("lune_flow", channels=16, pointwise=True, patch_size=2)
    assert model_geometry(model) == (8, 2)
    kw = dict(
        min_denoise=0.0, max_denoise=0.0, tile_width=88, tile_height=88, overlap=16, mode="blend", tiled_model=True
    )
    patched = tiled_patch(model, lat, **kw)
    assert float((ksample(patched, lat, sampler="dpmpp_2m", steps=3, denoise=0.6) - lat).abs().max()) <= 1e-5
    mixed = {
        **kw,
        "min_denoise": 0.3,
        "max_denoise": 0.8,
        "layout": "quadtree",
        "scale_mode": "by_area",
        "min_tile": 32,
        "max_tile": 96,
        "threshold": 0.1,
    }
    model.model.diffusion_model.calls.clear()
    tiled = ksample(tiled_patch(model, lat, **mixed), lat, steps=3, denoise=0.6)
    assert all(h % 2 == 0 or h == 20 for _, _, h, _ in model.model.diffusion_model.calls)
    whole = ksample(tiled_patch(model, lat, **{**mixed, "tiled_model": False}), lat, steps=3, denoise=0.6)
    assert float((whole - tiled).abs().max()) <= 1e-5


def test_stacks_with_differential_diffusion_noise_mask_another_wrapper_and_a_second_patch(comfy):
    import comfy.patcher_extension
    from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion

    lat = latent(16, 16, seed=6)
    base = standin_model("epsilon")
    # another pack's keyed wrapper and post-CFG function, added before our patch
    seen = {"apply": 0, "post": 0}
    other = base.clone()

    def other_apply(executor, *args, **kwargs):
        seen["apply"] += 1
        return executor(*args, **kwargs)

    def other_post(args):
        seen["post"] += 1
        return args["denoised"]

    other.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "other_pack", other_apply)
    other.set_model_sampler_post_cfg_function(other_post)
    dd = (
        DifferentialDiffusion.execute(other).result[0]
        if hasattr(DifferentialDiffusion, "execute")
        else DifferentialDiffusion().apply(other)[0]
    )
    assert "denoise_mask_function" in dd.model_options
    left = torch.zeros(128, 128)
    left[:, :64] = 1.0
    masked = dict(
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        denoise_mask=left,
        tile_width=64,
        tile_height=128,
        overlap=16,
        tiled_model=True,
    )  # the same Solune patch with and without DifferentialDiffusion under it
    first = tiled_patch(dd, lat, **masked)
    other_orig = latent(16, 16, seed=7)
    both = tiled_patch(first, other_orig, min_denoise=1.0, max_denoise=1.0)  # a second Solune patch on top
    noise_mask = torch.zeros(1, 1, 16, 16)
    noise_mask[..., :8, :] = 1.0  # noise_mask: change only the top half
    out = ksample(both, lat, steps=4, denoise=0.8, noise_mask=noise_mask)
    assert seen["apply"] > 0 and seen["post"] > 0  # the other pack still runs
    assert "denoise_mask_function" in both.model_options
    # Solune keeps the right columns (scale 0) exactly, whatever the mask does
    assert float((out - lat)[..., :, 12:].abs().max()) <= 1e-5
    # where both let it change, the result moved; DifferentialDiffusion lets the kept half move only at the end
    assert float((out - lat)[..., :6, :4].abs().max()) > 1e-2
    plain_mask = ksample(
        tiled_patch(other, lat, **masked),
        lat,
        steps=4,
        denoise=0.8,
        noise_mask=noise_mask,
    )
    assert float((plain_mask - lat)[..., 8:, :].abs().max()) <= 1e-4  # noise_mask keeps the bottom half
    assert float((plain_mask - lat)[..., :, 12:].abs().max()) <= 1e-5
    assert float((plain_mask - lat)[..., :6, :4].abs().max()) > 1e-2
    # DifferentialDiffusion takes effect: its run differs from a plain noise_mask run on a soft mask
    soft = torch.linspace(0, 1, 16).view(1, 1, 16, 1).expand(1, 1, 16, 16).contiguous()
    plain = tiled_patch(other, lat, min_denoise=1.0, max_denoise=1.0)
    with_dd = tiled_patch(dd, lat, min_denoise=1.0, max_denoise=1.0)
    assert not torch.allclose(
        ksample(plain, lat, steps=4, denoise=0.8, noise_mask=soft),
        ksample(with_dd, lat, steps=4, denoise=0.8, noise_mask=soft),
    )


def test_the_input_model_is_untouched_and_two_patches_use_distinct_keys(comfy):
    lat = latent()
    model = standin_model("epsilon")
    before = dict(model.wrappers)
    a = tiled_patch(model, lat, min_denoise=0.0, max_denoise=0.0, tiled_model=True)
    b = tiled_patch(a, lat, min_denoise=0.0, max_denoise=0.0, tiled_model=True)
    assert model.wrappers == before
    keys = (
        b.wrappers["sampler_sample"].keys()
        if "sampler_sample" in b.wrappers
        else b.wrappers[next(iter(b.wrappers))].keys()
    )
    assert len([k for k in keys if str(k).startswith("solune_tiled")]) == 2
    assert len(b.model_options["sampler_post_cfg_function"]) == 2


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(sampled=latent(16, 16)), "must have the channels and size"),
        (
            dict(sampled=latent(8, 8, batch=3), orig=latent(8, 8, batch=2)),
            r"latent batch must be 1 \(broadcast\) or the sampled batch 3; got 2",
        ),
        (dict(orig=torch.full((1, 4, 8, 8), float("nan"))), "latent must hold only finite values; got 256 NaN"),
        (dict(kw={"min_denoise": 0.8, "max_denoise": 0.2}), r"min_denoise must be <= max_denoise \(0.2\); got 0.8"),
        (
            dict(kw={"scale_mode": "mask", "denoise_mask": torch.full((32, 32), 1.5)}),
            r"denoise_mask must hold values in \[0, 1\]",
        ),
        (
            dict(kw={"scale_mode": "pixel", "denoise_mask": torch.full((1, 64, 64), float("nan"))}),
            "denoise_mask must hold",
        ),
        (
            dict(kw={"layout": "quadtree", "image": torch.rand(1, 32, 32, 3)}),
            "image must be an IMAGE of the latent's pixel size",
        ),
        (dict(kw={"mode": "soft"}), "mode must be one of"),
        (dict(kw={"scale_mode": "mask"}), "denoise_mask must be connected for scale_mode 'mask'"),
        (dict(kw={"scale_mode": "pixel"}), "denoise_mask must be connected for scale_mode 'pixel'"),
        (dict(kw={"tile_width": 16, "tile_height": 16, "overlap": 16}), None),
    ],
)
def test_bad_input_is_refused_before_sampling_with_a_clear_message(comfy, bad, match):
    model = standin_model("epsilon")
    net = model.model.diffusion_model
    net.calls.clear()
    orig = bad.get("orig", latent())
    snapshot = orig.clone()
    if match is None:  # tiny tiles: refused with the minimum in pixels
        with pytest.raises(ValueError, match="minimum is"):
            tiled_patch(model, orig, **bad["kw"])
        return
    with pytest.raises(ValueError, match=match):
        patched = tiled_patch(model, orig, **bad.get("kw", {}))
        ksample(patched, bad.get("sampled", orig), steps=2)
    assert net.calls == []  # refused before the model ran
    assert torch.equal(orig, snapshot) or torch.isnan(snapshot).all()


def test_validate_inputs_declares_only_the_two_inputs_of_the_order_check(comfy):
    """ComfyUI shows a validate_inputs message under every input the function declares: the tiled nodes
    declare min_denoise and max_denoise only (ComfyUI checks the other ranges itself); bad combo values
    are refused when the node runs, before any work, with the input named."""
    import inspect

    from solune.nodes.tile_map import SoluneTileMap
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img, SoluneTiledSampler, sampler_choice_error

    for cls in (SoluneTiledImg2Img, SoluneTiledSampler, SoluneTileMap):
        assert list(inspect.signature(cls.validate_inputs).parameters) == ["min_denoise", "max_denoise"]
        assert "min_denoise must be <= max_denoise (0.5); got 0.8" in cls.validate_inputs(0.8, 0.5)
        assert "max_denoise must be a number in [0, 1]" in cls.validate_inputs(0.1, 1.5)
        assert cls.validate_inputs(0.1, 0.5) is True and cls.validate_inputs(None, 0.5) is True
    assert "sampler_name must be one of" in sampler_choice_error("nope", "normal")
    assert "scheduler must be one of" in sampler_choice_error("euler", "nope")
    assert sampler_choice_error("euler", "normal") is None
    with pytest.raises(ValueError, match="SoluneTileMap: layout must be one of grid, quadtree; got 'spiral'"):
        SoluneTileMap.execute(latent={"samples": latent(16, 16)}, layout="spiral")


def test_tile_map_shades_tiles_by_scale_and_returns_the_scale_map(comfy):
    from solune.nodes.tile_map import SoluneTileMap

    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", tile_width=64, tile_height=128, overlap=16)
    image, mask = SoluneTileMap.execute(latent={"samples": latent(16, 16)}, denoise_mask=half_mask(16, 16), **kw).result
    assert image.shape == (1, 128, 128, 3) and mask.shape == (1, 128, 128)
    assert float(mask[0, 64, 2]) == 0.0 and float(mask[0, 64, -2]) == 1.0
    assert float(image[0, 64, 10, 1]) < 0.1 and float(image[0, 64, 118, 1]) > 0.9  # shaded by scale, off the borders


def test_a_clone_of_the_patched_model_shares_the_hook_and_copies_no_tensor(comfy):
    import comfy.patcher_extension

    lat = latent()
    patched = tiled_patch(standin_model("epsilon"), lat, min_denoise=0.5, max_denoise=0.5, tiled_model=True)
    clone = patched.clone()
    hook = patched.model_options["sampler_post_cfg_function"][-1].__self__
    assert clone.model_options["sampler_post_cfg_function"][-1].__self__ is hook
    for kind in (comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, comfy.patcher_extension.WrappersMP.APPLY_MODEL):
        assert clone.wrappers[kind][hook.key][0].__self__ is hook
    assert torch.equal(ksample(clone, lat, steps=3, denoise=0.6), ksample(patched, lat, steps=3, denoise=0.6))


@pytest.mark.parametrize("mode", MODES)
def test_the_hook_nodes_scale_output_is_the_plan_the_run_uses(comfy, mode):
    """Sampled with a mask: where the `scale` output is 0 the input comes back exactly, where it is 1
    the stock KSampler's result; `tile_map`/`scale` are what SoluneTileMap draws for the same settings."""
    from comfy_sampling_helpers import conds

    from solune.nodes.tile_map import SoluneTileMap
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img, SoluneTiledSampler

    lat = latent(16, 24, seed=6)
    model = standin_model("sol_v", pointwise=True)  # a pixel's x0 depends on that pixel only
    mask = torch.zeros(16 * 8, 24 * 8)
    mask[:, 13 * 8 :] = 1.0
    mask[: 4 * 8, :] = 0.0
    settings = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", tile_width=64, tile_height=64, overlap=16)
    pos, neg = conds()
    out, tile_map, scale = SoluneTiledSampler.execute(
        model=model,
        seed=42,
        steps=4,
        cfg=4.0,
        sampler_name="dpmpp_2m",
        scheduler="normal",
        positive=pos,
        negative=neg,
        latent_image={"samples": lat},
        denoise=0.6,
        denoise_mask=mask,
        mode=mode,
        **settings,
    ).result
    stock = ksample(model, lat, sampler="dpmpp_2m", steps=4, cfg=4.0, denoise=0.6, seed=42)
    assert scale.shape == (1, 128, 192) and tile_map.shape == (1, 128, 192, 3)
    at_latent = scale[0, ::8, ::8]
    zero, one = at_latent == 0, at_latent == 1
    assert zero.any() and one.any() and not (zero | one).all()
    assert float((out["samples"] - lat)[..., zero].abs().max()) <= 1e-5
    assert float((out["samples"] - stock)[..., one].abs().max()) <= 1e-5
    assert float((out["samples"] - lat)[..., one].abs().max()) > 1e-2  # the model did change those pixels
    preview = SoluneTileMap.execute(latent={"samples": lat}, denoise_mask=mask, model=model, **settings).result
    hook = SoluneTiledImg2Img.execute(
        model=model, latent={"samples": lat}, denoise_mask=mask, mode=mode, **settings
    ).result
    for drawn in (preview, hook[1:]):
        assert torch.equal(drawn[0], tile_map) and torch.equal(drawn[1], scale)
