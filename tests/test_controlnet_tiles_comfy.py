"""Tier 2, in process: ControlNet under SoluneTiledImg2Img with real LDM ControlNets for the SD1.5
and SDXL UNets, loaded by ComfyUI's ControlNet loader and applied with ControlNetApplyAdvanced
(single, chained with strengths and start/end percent, with an extra_concat mask, a hint of another
aspect). Whole-image runs equal the stock sampler bit for bit; in a tiled run every tile batch's
control is the ControlNet run on that batch's crop of the input and of ComfyUI's resized hint, and
tiles at scale 0 run neither the model nor the ControlNet."""

from __future__ import annotations

import itertools
import logging
import re

import pytest
import torch
from families_helpers import (
    CONTROLNET_FAMILIES,
    CallRecorder,
    FamilyFiles,
    apply_controlnet,
    family_latent,
    hint_image,
    load_controlnet,
    load_unet,
    sample,
)
from test_families_comfy import (
    TILES,
    WIDE,
    check_tiles_are_the_model_on_their_crops,
    conds,
    family_plan,
    right_mask,
)
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

VARIANTS = ["single", "chained", "mask", "aspect"]


@pytest.fixture(scope="session")
def files(comfy, tmp_path_factory):
    return FamilyFiles(tmp_path_factory.getbasetemp() / "family_models")


@pytest.fixture(params=CONTROLNET_FAMILIES)
def family(request):
    return request.param


def controlled(files, family, variant, h, w):
    """(positive, negative, [ControlNet models]) with ControlNets applied the way the nodes do."""
    pos, neg = conds(family)
    if variant == "single":
        cn = load_controlnet(files, family)
        pos, neg = apply_controlnet(pos, neg, cn, hint_image(h * 8, w * 8), strength=0.8)
        return pos, neg, [cn]
    if variant == "chained":  # two ControlNets, each with its own strength and step range
        a, b = load_controlnet(files, family), load_controlnet(files, family)
        pos, neg = apply_controlnet(pos, neg, a, hint_image(h * 8, w * 8, seed=1), strength=0.7, start=0.0, end=0.6)
        pos, neg = apply_controlnet(pos, neg, b, hint_image(h * 8, w * 8, seed=2), strength=1.3, start=0.4, end=1.0)
        return pos, neg, [a, b]
    if variant == "mask":  # a ControlNet taking RGB + mask through ComfyUI's extra_concat
        cn = load_controlnet(files, family, hint_channels=4)
        mask = torch.zeros(1, 1, h * 4, w * 4)
        mask[..., :, w * 2 :] = 1.0
        pos, neg = apply_controlnet(pos, neg, cn, hint_image(h * 8, w * 8, seed=3), strength=1.0, extra_concat=[mask])
        return pos, neg, [cn]
    if variant == "aspect":  # a square hint on a 1:2 latent: ComfyUI center-crops it
        cn = load_controlnet(files, family)
        pos, neg = apply_controlnet(pos, neg, cn, hint_image(w * 8, w * 8, seed=4), strength=1.0)
        return pos, neg, [cn]
    raise AssertionError(variant)


def chain(control):
    out = []
    while control is not None:
        out.append(control)
        control = control.previous_controlnet
    return out


def reference_control(model, control, latent_hw):
    """The tests' own per-tile control: ComfyUI's ControlNet copies with the crops of ComfyUI's
    resized hint (`common_upscale(..., "center")` to the latent's pixel size), rows as ComfyUI
    broadcasts them."""
    import comfy.utils

    H, W = latent_hw

    def rows_for(v, n, chunks, b):
        crops = v  # [n, R, ...] -> chunk-major [chunks, n, b]
        idx = torch.arange(b) % crops.shape[1]
        return crops[:, idx].unsqueeze(0).expand(chunks, *crops[:, idx].shape).reshape(-1, *crops.shape[2:])

    def build(x_tiles, t, context, kw, pos, chunks):
        n = len(pos)
        b = x_tiles.shape[0] // (chunks * n)
        h, w = x_tiles.shape[-2:]
        copies = []
        for c in chain(control):
            r = c.copy()
            k = r.compression_ratio
            full = comfy.utils.common_upscale(c.cond_hint_original, W * k, H * k, r.upscale_algorithm, "center")
            r.cond_hint_original = rows_for(
                torch.stack([full[..., y * k : (y + h) * k, x * k : (x + w) * k] for y, x in pos]), n, chunks, b
            )
            extra = []
            for e in c.extra_concat_orig:
                fe = comfy.utils.common_upscale(e, W * k, H * k, r.upscale_algorithm, "center")
                extra.append(
                    rows_for(
                        torch.stack([fe[..., y * k : (y + h) * k, x * k : (x + w) * k] for y, x in pos]), n, chunks, b
                    )
                )
            r.extra_concat_orig = extra
            copies.append(r)
        for a, p in itertools.pairwise(copies):
            a.set_previous_controlnet(p)
        copies[0].pre_run(model.model, lambda p: model.model.model_sampling.percent_to_sigma(p))
        with torch.no_grad():
            return copies[0].get_control(x_tiles, t, {"c_crossattn": context, **kw}, chunks, {})

    return build


def count_controlnet_calls(nets):
    """A list that grows by the input shape on every forward of the nets' control models, and the
    hook handles to remove."""
    shapes, handles = [], []
    for net in {id(n): n for n in nets}.values():
        handles.append(
            net.control_model.register_forward_pre_hook(
                lambda module, args, kwargs: shapes.append(tuple(kwargs["x"].shape)), with_kwargs=True
            )
        )
    return shapes, handles


def run_and_replay(model, recorder, pos, counted, run):
    """`run()` (a tiled sampling through `recorder`), then its tile calls replayed on their crops with
    the reference control; returns (run's output, control-model calls in the run, replayed regions,
    calls in the replay). `counted` is (shapes, handles) of a call counter; its hooks are removed."""
    shapes, handles = counted
    try:
        out = run()
        run_calls = list(shapes)
        shapes.clear()
        regions = check_tiles_are_the_model_on_their_crops(
            model, recorder, WIDE, reference_control(model, pos[0][1]["control"], WIDE)
        )
        return out, run_calls, regions, list(shapes)
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_scale_zero_returns_the_original_with_a_controlnet(files, family, mode, tiled):
    lat = family_latent(family, *WIDE)
    pos, neg, _ = controlled(files, family, "single", *WIDE)
    patched = tiled_patch(
        load_unet(files, family), lat, min_denoise=0.0, max_denoise=0.0, mode=mode, tiled_model=tiled, **TILES
    )
    assert float((sample(patched, lat, pos, neg) - lat).abs().max()) <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_scale_one_whole_image_with_controlnets_is_the_stock_sampler_bit_for_bit(files, family, variant):
    model, lat = load_unet(files, family), family_latent(family, 8, 8)
    pos, neg, _ = controlled(files, family, variant, 8, 8)
    for mode in ("blend", "strength"):
        patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, mode=mode, **TILES)
        assert torch.equal(sample(patched, lat, pos, neg), sample(model, lat, pos, neg)), mode


@pytest.mark.parametrize("variant", VARIANTS)
def test_tiled_controlnet_is_the_controlnet_run_on_each_tile_crop(files, family, variant, caplog):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg, nets = controlled(files, family, variant, *WIDE)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12), **TILES)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))

    def run():
        with caplog.at_level(logging.INFO, logger="solune"):
            return sample(patched, lat, pos, neg, steps=3)

    out, run_calls, regions, reference_calls = run_and_replay(model, recorder, pos, count_controlnet_calls(nets), run)
    assert regions and run_calls, "the ControlNet never ran"
    assert run_calls == reference_calls  # the same ControlNet calls, one per tile batch and active ControlNet
    assert all(s[-2:] != WIDE for s in run_calls)  # never on the whole image
    scale = family_plan(model, lat, **kw).scale_map
    assert all(bool((scale[y : y + h, x : x + w] != 0).any()) for y, x, h, w in regions)
    zero = scale == 0
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5
    aspect = [r for r in caplog.records if "aspect ratio" in r.getMessage()]
    assert len(aspect) == (1 if variant == "aspect" else 0)  # logged once per run, not per tile or step


def test_tiles_at_scale_zero_run_neither_the_model_nor_the_controlnet(files, family):
    model, lat = load_unet(files, family), family_latent(family, *WIDE)
    pos, neg, nets = controlled(files, family, "chained", *WIDE)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(model, lat, min_denoise=0.0, max_denoise=0.0, tiled_model=True, **TILES))
    shapes, handles = count_controlnet_calls(nets)
    try:
        out = sample(patched, lat, pos, neg)
    finally:
        for h in handles:
            h.remove()
    assert shapes == [] and recorder.inner_calls == []
    assert float((out - lat).abs().max()) <= 1e-5


def test_a_controlnet_for_another_family_fails_with_comfyuis_own_error(files):
    """An SD1.5 ControlNet on the SDXL UNet: the same error ComfyUI raises without Solune, from
    ComfyUI's own code."""
    model, lat = load_unet(files, "sdxl"), family_latent("sdxl", *WIDE)
    pos, neg = conds("sdxl")
    pos, neg = apply_controlnet(pos, neg, load_controlnet(files, "sd15"), hint_image(WIDE[0] * 8, WIDE[1] * 8))
    with pytest.raises(Exception) as stock:
        sample(model, lat, pos, neg)
    patched = tiled_patch(
        model,
        lat,
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        denoise_mask=right_mask(),
        tiled_model=True,
        **TILES,
    )
    with pytest.raises(Exception) as tiled:
        sample(patched, lat, pos, neg)
    assert type(tiled.value) is type(stock.value)

    def digits(e):
        return re.sub(r"\d+", "N", str(e))

    assert digits(tiled.value) == digits(stock.value)  # same message but for the tile's sizes
    assert "/comfy/" in tiled.traceback[-1].path.as_posix() or "torch" in tiled.traceback[-1].path.as_posix()


def test_two_stacked_tiled_patches_share_one_per_tile_controlnet(files):
    """A second tiled Solune patch on top of a first: the ControlNet is deferred once and still
    runs on tiles only; both patches' scale-0 regions come back."""
    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg, nets = controlled(files, "sd15", "single", *WIDE)
    first = tiled_patch(
        model,
        lat,
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode="mask",
        denoise_mask=right_mask(start=12),
        tiled_model=True,
        **TILES,
    )
    both = tiled_patch(first, lat, min_denoise=1.0, max_denoise=1.0, tiled_model=True, **TILES)
    shapes, handles = count_controlnet_calls(nets)
    try:
        out = sample(both, lat, pos, neg)
    finally:
        for h in handles:
            h.remove()
    assert shapes and all(s[-2:] != WIDE for s in shapes)
    zero = (
        family_plan(
            model, lat, min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12)
        ).scale_map
        == 0
    )
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5


def test_tiled_controlnet_with_a_batch_of_two_takes_each_images_hint(files):
    """A latent batch of 2 with a batch of 2 hints: every tile row gets its own image's hint crop,
    as ComfyUI's broadcast gives the whole input."""
    model = load_unet(files, "sd15")
    lat = torch.cat([family_latent("sd15", *WIDE, seed=1), family_latent("sd15", *WIDE, seed=2)])
    pos, neg = conds("sd15")
    cn = load_controlnet(files, "sd15")
    hints = torch.cat([hint_image(WIDE[0] * 8, WIDE[1] * 8, seed=6), hint_image(WIDE[0] * 8, WIDE[1] * 8, seed=7)])
    pos, neg = apply_controlnet(pos, neg, cn, hints, strength=1.0)
    kw = {"min_denoise": 0.0, "max_denoise": 1.0, "scale_mode": "mask", "denoise_mask": right_mask(start=12), **TILES}
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    shapes, handles = count_controlnet_calls([cn])
    try:
        sample(patched, lat, pos, neg)
        assert shapes and all(s[0] % 4 == 0 for s in shapes)  # 2 images x cond/uncond per tile
        shapes.clear()
        assert check_tiles_are_the_model_on_their_crops(
            model, recorder, WIDE, reference_control(model, pos[0][1]["control"], WIDE)
        )
    finally:
        for h in handles:
            h.remove()


def snapshot(value):
    """A value by identity and content: tensors cloned, dicts / lists / tuples walked, any other object
    by identity (so an attribute rebound to another object, or a container written into, differs)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value), value.detach().clone())
    if isinstance(value, dict):
        return ("dict", id(value), {k: snapshot(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, id(value), [snapshot(v) for v in value])
    return ("object", id(value))


def chain_attributes(control) -> list[dict]:
    """Every attribute of every ControlNet in the user's chain (`previous_controlnet` included)."""
    return [{name: snapshot(v) for name, v in vars(c).items()} for c in chain(control)]


def assert_same_snapshot(a, b, where="chain"):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same_snapshot(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_snapshot(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def watch_chain(model, control):
    """A clone of `model` with a keyed PREDICT_NOISE wrapper (another pack's) that snapshots every
    attribute of the user's ControlNet chain before and after every evaluation; returns (clone,
    snapshots)."""
    import comfy.patcher_extension

    snaps = []

    def wrapper(executor, *args, **kwargs):
        snaps.append(chain_attributes(control))
        out = executor(*args, **kwargs)
        snaps.append(chain_attributes(control))
        return out

    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, "solune_test_watch", wrapper)
    return m, snaps


def assert_chain_untouched(control, before, snaps):
    """No attribute of the chain changed: during the run (after ComfyUI's own pre_run, every
    evaluation sees what the first saw) and after it (ComfyUI's cleanup restores what it set)."""
    assert len(snaps) >= 4, "the run made too few evaluations to compare"
    for i, snap in enumerate(snaps[1:], start=1):
        assert_same_snapshot(snaps[0], snap, f"evaluation {i // 2}")
    assert_same_snapshot(before, chain_attributes(control), "after the run")


@pytest.mark.parametrize("variant", ["chained", "mask"])
def test_a_tiled_run_changes_no_attribute_of_the_users_controlnet_chain(files, variant):
    """Per-tile copies share and write nothing of the user's ControlNets, whatever their attributes."""
    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg, _ = controlled(files, "sd15", variant, *WIDE)
    control = pos[0][1]["control"]
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12), **TILES)
    watched, snaps = watch_chain(tiled_patch(model, lat, tiled_model=True, **kw), control)
    before = chain_attributes(control)
    sample(watched, lat, pos, neg, steps=3)
    assert_chain_untouched(control, before, snaps)


def size_keyed_controlnet(control):
    """The user's ControlNet as a subclass whose resized-hint cache is a dict keyed by latent size
    (`cond_hints`, like a pending upstream change), not ComfyUI's `cond_hint`: code that clears fixed
    cache names would share this dict with every copy, write the first crop into it and hand that crop
    to every tile of the same size."""
    import comfy.controlnet

    class SizeKeyedControlNet(comfy.controlnet.ControlNet):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.cond_hints = {}

        def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
            size = tuple(x_noisy.shape[-2:])
            self.cond_hint = self.cond_hints.get(size)  # ComfyUI's own size check then keeps it
            try:
                return super().get_control(x_noisy, t, cond, batched_number, transformer_options)
            finally:
                if self.cond_hint is not None:
                    self.cond_hints[size] = self.cond_hint
                self.cond_hint = None

        def cleanup(self):
            self.cond_hints = {}
            super().cleanup()

        def copy(self):
            c = SizeKeyedControlNet(
                None,
                global_average_pooling=self.global_average_pooling,
                load_device=self.load_device,
                manual_cast_dtype=self.manual_cast_dtype,
            )
            c.control_model, c.control_model_wrapped = self.control_model, self.control_model_wrapped
            self.copy_to(c)
            return c

    out = SizeKeyedControlNet(
        control.control_model,
        global_average_pooling=control.global_average_pooling,
        load_device=control.load_device,
        manual_cast_dtype=control.manual_cast_dtype,
    )
    control.copy_to(out)
    return out


def test_a_controlnet_with_a_renamed_cache_shares_nothing_and_every_tile_gets_its_own_crop(files):
    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg = conds("sd15")
    cn = size_keyed_controlnet(load_controlnet(files, "sd15"))
    pos, neg = apply_controlnet(pos, neg, cn, hint_image(WIDE[0] * 8, WIDE[1] * 8, seed=8), strength=1.0)
    control = pos[0][1]["control"]
    assert type(control).__name__ == "SizeKeyedControlNet" and control.cond_hints == {}
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=4), **TILES)
    recorder = CallRecorder()
    watched, snaps = watch_chain(
        recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw)), control
    )
    before = chain_attributes(control)

    def run():
        return sample(watched, lat, pos, neg, steps=3)

    _, run_calls, regions, reference_calls = run_and_replay(model, recorder, pos, count_controlnet_calls([cn]), run)
    sizes = {(h, w) for _, _, h, w in regions}
    assert len(regions) > len(sizes), "no two tiles of one size to tell their hints apart"
    assert run_calls == reference_calls  # one ControlNet call per tile batch, each on its own crops
    assert_chain_untouched(control, before, snaps)
    assert control.cond_hints == {}
