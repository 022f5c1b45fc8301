"""Tier 2, in process: a T2I adapter under SoluneTiledImg2Img on the tiny SD1.5 UNet, loaded by
ComfyUI's ControlNet loader (`load_controlnet` -> `load_t2i_adapter`) and applied with
ControlNetApplyAdvanced. Whole-image runs equal the stock sampler bit for bit; in a tiled run every
adapter call is on a tile batch's crop of ComfyUI's resized hint and every tile's output is the
adapter and the model run on that crop; tiles at scale 0 run neither.

The adapter is ComfyUI's `Adapter` in its SDXL layout (`conv_in` over 3 · 16² unshuffled channels,
channels [320, 640, 1280, 1280]), the one layout whose features land on the tiny two-level UNet:
ComfyUI's `apply_control` pops the adapter's first feature (320 channels, 1/16 of the pixels) at
input block 3, the UNet's level-1 block (320 channels, latent / 2); the SD1.5 layout's first feature
(latent size) would meet input block 2, the downsample, and be skipped with a warning, as would the
middle feature here (1280 channels). The tests assert that the applied feature changes the output.
"""

from __future__ import annotations

import logging

import pytest
import torch
from families_helpers import CallRecorder, FamilyFiles, apply_controlnet, family_latent, hint_image, load_unet, sample
from test_controlnet_tiles_comfy import assert_chain_untouched, chain_attributes, run_and_replay, watch_chain
from test_families_comfy import TILES, WIDE, conds, family_plan, right_mask
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

ADAPTER_CHANNELS = 320  # the tiny SD1.5 UNet's model_channels


@pytest.fixture(scope="session")
def files(comfy, tmp_path_factory):
    return FamilyFiles(tmp_path_factory.getbasetemp() / "family_models")


def t2i_adapter_state_dict(seed: int = 20) -> dict:
    """ComfyUI's T2I `Adapter` (SDXL layout: 3-channel hint, pixel-unshuffle 16, one res block per
    level's pair with 1x1 kernels) with PyTorch's default init, in the layout `load_t2i_adapter`
    reads through its 'conv_in.weight' branch."""
    import comfy.t2i_adapter.adapter
    from comfy_families import default_init

    c = ADAPTER_CHANNELS
    net = comfy.t2i_adapter.adapter.Adapter(
        cin=3 * 16 * 16, channels=[c, 2 * c, 4 * c, 4 * c], nums_rb=2, ksize=1, sk=True, use_conv=False, xl=True
    )
    return {k: v.detach().clone().contiguous() for k, v in default_init(net, seed).state_dict().items()}


@pytest.fixture(scope="session")
def adapter_file(files):
    from comfy_families import save

    path = files.root / "tiny_sd15_t2i_adapter.safetensors"
    if not path.exists():
        save(t2i_adapter_state_dict(), path)
    return path


def load_adapter(path):
    import comfy.controlnet

    adapter = comfy.controlnet.load_controlnet(str(path))  # what ControlNetLoader does
    assert isinstance(adapter, comfy.controlnet.T2IAdapter)
    return adapter


def adapted(adapter_file, h, w, chained=False):
    """(positive, negative, [adapters]) with the adapter(s) applied the way ControlNetApplyAdvanced does."""
    pos, neg = conds("sd15")
    a = load_adapter(adapter_file)
    if not chained:
        pos, neg = apply_controlnet(pos, neg, a, hint_image(h * 8, w * 8), strength=0.9)
        return pos, neg, [a]
    b = load_adapter(adapter_file)
    pos, neg = apply_controlnet(pos, neg, a, hint_image(h * 8, w * 8, seed=1), strength=0.7, start=0.0, end=0.6)
    pos, neg = apply_controlnet(pos, neg, b, hint_image(h * 8, w * 8, seed=2), strength=1.3, start=0.4, end=1.0)
    return pos, neg, [a, b]


def count_adapter_calls(adapters):
    """A list that grows by the hint shape on every forward of the adapters' models, and the hook
    handles to remove."""
    shapes, handles = [], []
    for net in {id(a.t2i_model): a.t2i_model for a in adapters}.values():
        handles.append(net.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape))))
    return shapes, handles


def test_the_adapters_first_feature_changes_the_tiny_unets_output(files, adapter_file, caplog):
    """The adapter is not a no-op on this UNet: its 320-channel feature is added at the UNet's
    level-1 input block (the middle feature's shape does not match and ComfyUI skips it, logged)."""
    model, lat = load_unet(files, "sd15"), family_latent("sd15", 8, 8)
    pos, neg, _ = adapted(adapter_file, 8, 8)
    plain_pos, plain_neg = conds("sd15")
    with caplog.at_level(logging.WARNING):
        out = sample(model, lat, pos, neg)
    assert not torch.equal(out, sample(model, lat, plain_pos, plain_neg))
    skipped = [r.getMessage() for r in caplog.records if "control could not be applied" in r.getMessage()]
    assert skipped and all(f"{4 * ADAPTER_CHANNELS}," in m for m in skipped)  # only the middle (1280 ch) one


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_scale_zero_returns_the_original_with_a_t2i_adapter(files, adapter_file, mode, tiled):
    lat = family_latent("sd15", *WIDE)
    pos, neg, _ = adapted(adapter_file, *WIDE)
    patched = tiled_patch(
        load_unet(files, "sd15"), lat, min_denoise=0.0, max_denoise=0.0, mode=mode, tiled_model=tiled, **TILES
    )
    assert float((sample(patched, lat, pos, neg) - lat).abs().max()) <= 1e-5


@pytest.mark.parametrize("chained", [False, True])
def test_scale_one_whole_image_with_a_t2i_adapter_is_the_stock_sampler_bit_for_bit(files, adapter_file, chained):
    model, lat = load_unet(files, "sd15"), family_latent("sd15", 8, 8)
    pos, neg, _ = adapted(adapter_file, 8, 8, chained)
    stock = sample(model, lat, pos, neg)
    for mode in ("blend", "strength"):
        patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, mode=mode, **TILES)
        assert torch.equal(sample(patched, lat, pos, neg), stock), mode


@pytest.mark.parametrize("chained", [False, True])
def test_tiled_t2i_adapter_is_the_adapter_run_on_each_tile_crop(files, adapter_file, chained):
    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg, adapters = adapted(adapter_file, *WIDE, chained)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12), **TILES)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    out, run_calls, regions, reference_calls = run_and_replay(
        model, recorder, pos, count_adapter_calls(adapters), lambda: sample(patched, lat, pos, neg, steps=2)
    )
    assert regions and run_calls, "the adapter never ran"
    assert run_calls == reference_calls  # the same adapter calls, one per tile batch, step and active adapter
    whole_px = (WIDE[0] * 8, WIDE[1] * 8)
    assert all(s[-2:] != whole_px for s in run_calls)  # never on the whole image
    # each call's hint is a tile's crop: its pixel size is a tile's latent size times 8
    assert {s[-2:] for s in run_calls} <= {(h * 8, w * 8) for _, _, h, w in regions}
    # the tiles did get an adapter feature of the UNet's level-1 shape (the one that applies)
    applied = [
        f
        for call in recorder.inner_calls
        if call["control"]
        for f in call["control"]["input"]
        if f is not None and f.shape[1:] == (ADAPTER_CHANNELS, call["x"].shape[-2] // 2, call["x"].shape[-1] // 2)
    ]
    assert applied and any(bool(f.abs().max() > 0) for f in applied)
    scale = family_plan(model, lat, **kw).scale_map
    assert all(bool((scale[y : y + h, x : x + w] != 0).any()) for y, x, h, w in regions)
    zero = scale == 0
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5


def test_tiles_at_scale_zero_run_neither_the_model_nor_the_t2i_adapter(files, adapter_file):
    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg, adapters = adapted(adapter_file, *WIDE, chained=True)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(model, lat, min_denoise=0.0, max_denoise=0.0, tiled_model=True, **TILES))
    shapes, handles = count_adapter_calls(adapters)
    try:
        out = sample(patched, lat, pos, neg)
    finally:
        for h in handles:
            h.remove()
    assert shapes == [] and recorder.inner_calls == []
    assert float((out - lat).abs().max()) <= 1e-5


def test_a_tiled_run_changes_no_attribute_of_the_users_t2i_adapter_chain(files, adapter_file):
    """Per-tile copies of chained adapters (their cached features in `control_input`, a dict of
    lists) share and write nothing of the user's adapters."""
    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg, _ = adapted(adapter_file, *WIDE, chained=True)
    control = pos[0][1]["control"]
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12), **TILES)
    watched, snaps = watch_chain(tiled_patch(model, lat, tiled_model=True, **kw), control)
    before = chain_attributes(control)
    sample(watched, lat, pos, neg, steps=3)
    assert_chain_untouched(control, before, snaps)
