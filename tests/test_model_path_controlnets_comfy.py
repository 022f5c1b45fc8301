"""Tier 2, in process: the ControlNets of the DiT families that ComfyUI's ControlNetLoader loads
(`comfy.controlnet.load_controlnet`) and ControlNetApplyAdvanced applies with a VAE, under
SoluneTiledImg2Img:

- `qwen_instantx`: Qwen-Image InstantX (`QwenImageControlNetModel`, a Qwen-Image of the file's depth
  plus one projection per block), one block, random weights, read from its .safetensors file by the
  loader; also its inpaint variant (68 input channels: ComfyUI concatenates a mask).
- `qwen_fun`: Qwen-Image Fun (`QwenFunControlNet`, ComfyUI 0.33 on; 0.3.64 has no such class). Its
  loader pins 5 control blocks as wide as Qwen-Image (3072, which Qwen-Image's detection fixes):
  1.76 G parameters (7.0 GB in float32, 3.5 GB in bf16), too large for a CPU test. It is built here by
  the loader's code path (`load_controlnet_qwen_fun`: the class, its ops and dtype, `QwenFunControlNet`
  with the Wan 2.1 latent format) with one control block injected at block 0 of the one-block Qwen-Image.
- `sd35`: Stability's SD3.5 ControlNet format (`ControlNetSD35`, a `ControlNetEmbedder`) for the
  depth-1 MMDiT-X, with its `control_type` (canny: ComfyUI rescales the hint), from its file.

All of them VAE-encode their hint (Qwen: the Wan 2.1 VAE; SD3.5: a 16-channel SD-layout VAE).
Scale 1 whole-image is the stock sampler bit for bit; under tiled_model every tile batch's control is
the ControlNet run (by ComfyUI's own `get_control`) on that batch's crop of the model input and of the
hint ComfyUI resizes for the whole image, VAE-encoded per crop: an independent recomputation here;
tiles at scale 0 run neither the model nor the ControlNet; no attribute of the user's ControlNet
chain changes during or after the run.
"""

from __future__ import annotations

import pytest
import torch
from comfy_families import _state_dict, default_init, save
from families_helpers import CallRecorder, hint_image
from test_controlnet_tiles_comfy import assert_chain_untouched, chain, chain_attributes, watch_chain
from test_families_2026_comfy import load, plan_of, right_mask, run, tiles
from test_families_comfy import check_tiles_are_the_model_on_their_crops
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

WIDE = (8, 16)


def _has_qwen_fun() -> bool:
    from comfy_harness import import_comfy

    if import_comfy()[0] is None:
        return False
    import comfy.controlnet

    import nodes  # noqa: F401  ComfyUI's, imported while its folder leads sys.path (pytest prepends this checkout later)

    return hasattr(comfy.controlnet, "QwenFunControlNet")


# kind -> (family, ControlNet file builder or None for the code path, hint channels note)
KINDS = ["qwen_instantx", "qwen_instantx_inpaint", "sd35"] + (["qwen_fun"] if _has_qwen_fun() else [])
FAMILY = {"qwen_instantx": "qwen_image", "qwen_instantx_inpaint": "qwen_image", "qwen_fun": "qwen_image"}
FAMILY["sd35"] = "sd35"


# ---------------------------------------------------------------- the ControlNets and VAEs
def qwen_instantx_state_dict(extra_condition_channels: int = 0, seed: int = 30) -> dict:
    """QwenImageControlNetModel with one block (the loader reads the depth off the file)."""
    import comfy.ops
    from comfy.ldm.qwen_image.controlnet import QwenImageControlNetModel

    net = QwenImageControlNetModel(
        extra_condition_channels=extra_condition_channels, num_layers=1, in_channels=64, out_channels=16,
        dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init,
    )  # fmt: skip
    return _state_dict(default_init(net, seed))


def sd35_controlnet_state_dict(control_type: int = 1, seed: int = 31) -> dict:
    """ControlNetEmbedder for the depth-1 MMDiT-X (hidden 64 = 64 x depth, one head), one layer, with
    Stability's `control_type` (1: canny)."""
    import comfy.ops
    from comfy.cldm.dit_embedder import ControlNetEmbedder

    net = ControlNetEmbedder(
        img_size=None, patch_size=2, in_chans=16, attention_head_dim=64, num_attention_heads=1,
        adm_in_channels=2048, num_layers=1, main_model_double=1, double_y_emb=False,
        device="cpu", dtype=torch.float32, operations=comfy.ops.disable_weight_init,
    )  # fmt: skip
    sd = _state_dict(default_init(net, seed))
    sd["control_type"] = torch.tensor([float(control_type)])
    return sd


def qwen_fun_controlnet():
    """What `load_controlnet_qwen_fun` makes, with one control block injected at block 0 (see the
    module docstring for why not through a file): the class with the loader's ops and dtype, default
    init, wrapped in `QwenFunControlNet` with the Wan 2.1 latent format as the loader wraps it."""
    import comfy.controlnet
    import comfy.latent_formats
    import comfy.model_management
    import comfy.ops
    from comfy.ldm.qwen_image.controlnet import QwenImageFunControlNetModel

    load_device = comfy.model_management.get_torch_device()
    dtype = torch.float32
    manual_cast_dtype = comfy.model_management.unet_manual_cast(dtype, load_device)
    operations = comfy.ops.pick_operations(dtype, manual_cast_dtype, disable_fast_fp8=True)
    net = QwenImageFunControlNetModel(
        control_in_features=132, inner_dim=3072, num_attention_heads=24, attention_head_dim=128,
        num_control_blocks=1, main_model_double=1, injection_layers=(0,), operations=operations,
        device=comfy.model_management.unet_offload_device(), dtype=dtype,
    )  # fmt: skip
    default_init(net, 32)
    return comfy.controlnet.QwenFunControlNet(
        net, compression_ratio=1, latent_format=comfy.latent_formats.Wan21(), concat_mask=False,
        load_device=load_device, manual_cast_dtype=manual_cast_dtype, extra_conds=[],
    )  # fmt: skip


def sd_layout_vae_state_dict(z_channels: int = 16, seed: int = 33) -> dict:
    """ComfyUI's AutoencoderKL in the SD layout with a 16-channel latent (what SD3's VAE gives),
    PyTorch's default init."""
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from refine_helpers import SD_VAE_CONFIG

    net = AutoencoderKL(ddconfig={**SD_VAE_CONFIG, "z_channels": z_channels}, embed_dim=z_channels)
    return _state_dict(default_init(net, seed))


@pytest.fixture(scope="session")
def files2026(comfy, tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "family_models_2026"


_CONTROL = {}


def controlnet_and_vae(files2026, kind):
    """(ControlNet as ControlNetLoader gives it, VAE as VAELoader gives it) for `kind`; one kind in memory."""
    if kind not in _CONTROL:
        import comfy.controlnet
        import comfy.sd
        import comfy.utils
        from test_tiled_model_patches_comfy import wan_vae_state_dict

        _CONTROL.clear()
        qwen = FAMILY[kind] == "qwen_image"
        vae_file = files2026 / ("tiny_wan21_vae.safetensors" if qwen else "tiny_sd3_layout_vae.safetensors")
        if not vae_file.exists():
            save(wan_vae_state_dict() if qwen else sd_layout_vae_state_dict(), vae_file)
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(vae_file)))
        if kind == "qwen_fun":
            control = qwen_fun_controlnet()
        else:
            build = {
                "qwen_instantx": qwen_instantx_state_dict,
                "qwen_instantx_inpaint": lambda: qwen_instantx_state_dict(extra_condition_channels=4),
                "sd35": sd35_controlnet_state_dict,
            }[kind]
            path = save(build(), files2026 / f"tiny_{kind}_controlnet.safetensors")
            control = comfy.controlnet.load_controlnet(str(path))  # what ControlNetLoader does
            stored = comfy.utils.load_torch_file(str(path))
            loaded = control.control_model.state_dict()
            stored.pop("control_type", None)
            assert set(stored) <= set(loaded) and all(torch.equal(loaded[k], v) for k, v in stored.items())
            path.unlink()  # 1.5 GB for a Qwen kind; each kind is loaded once per session (module-scoped kinds)
        _CONTROL[kind] = (control, vae)
    return _CONTROL[kind]


EXPECTED_CLASS = {"qwen_instantx": "ControlNet", "qwen_instantx_inpaint": "ControlNet", "sd35": "ControlNetSD35"}
EXPECTED_CLASS["qwen_fun"] = "QwenFunControlNet"


def controlled(files2026, kind, h, w, seed=0):
    """(model, positive, negative, user's ControlNet chain) with the ControlNet applied as
    ControlNetApplyAdvanced applies it (strength 0.8, steps 0-90 %, the VAE)."""
    from comfy_families_2026 import conditioning

    import nodes

    family = FAMILY[kind]
    model = load(files2026, family)
    control, vae = controlnet_and_vae(files2026, kind)
    assert type(control).__name__ == EXPECTED_CLASS[kind]
    pos, neg = conditioning(family)
    d = 8  # both families: 8 pixels per latent unit
    image = hint_image(h * d + 16, w * d, seed=seed)  # another aspect: ComfyUI center-crops it
    extra = []
    if kind.endswith("_inpaint"):  # the inpaint mask, concatenated by ComfyUI (another aspect too)
        mask = torch.zeros(1, 1, h * 4 + 8, w * 4)
        mask[..., :, w * 2 :] = 1.0
        extra = [mask]
    pos, neg = nodes.ControlNetApplyAdvanced().apply_controlnet(
        pos, neg, control, image, 0.8, 0.0, 0.9, vae=vae, extra_concat=extra
    )
    return model, pos, neg, control


# ---------------------------------------------------------------- the reference: per crop
def reference_control(model, control, latent_hw):
    """The tests' own per-tile control: copies of ComfyUI's ControlNets whose hint is the crop of the
    hint ComfyUI resizes for the whole image (`common_upscale(..., "center")` to the latent's pixel
    size, VAE factor included), rows as ComfyUI broadcasts them, run by ComfyUI's own `get_control`
    (which VAE-encodes the crop)."""
    import itertools

    import comfy.utils

    H, W = latent_hw

    def rows(crops, chunks, b):  # [n, R, ...] -> chunk-major [chunks * n * b, ...]
        idx = torch.arange(b) % crops.shape[1]
        picked = crops[:, idx]
        return picked.unsqueeze(0).expand(chunks, *picked.shape).reshape(-1, *crops.shape[2:])

    def build(x_tiles, t, context, kw, pos, chunks):
        n = len(pos)
        b = x_tiles.shape[0] // (chunks * n)
        h, w = x_tiles.shape[-2:]
        copies = []
        for c in chain(control):
            r = c.copy()
            cr = r.compression_ratio
            k = cr * r.vae.spacial_compression_encode()
            full = comfy.utils.common_upscale(c.cond_hint_original, W * k, H * k, r.upscale_algorithm, "center")
            r.cond_hint_original = rows(
                torch.stack([full[..., y * k : (y + h) * k, x * k : (x + w) * k] for y, x in pos]), chunks, b
            )
            extra = []
            for e in c.extra_concat_orig:
                fe = comfy.utils.common_upscale(e, W * cr, H * cr, r.upscale_algorithm, "center")
                fe = comfy.utils.repeat_to_batch_size(fe, c.cond_hint_original.shape[0])
                crops = torch.stack([fe[..., y * cr : (y + h) * cr, x * cr : (x + w) * cr] for y, x in pos])
                extra.append(rows(crops, chunks, b))
            r.extra_concat_orig = extra
            copies.append(r)
        for a, p in itertools.pairwise(copies):
            a.set_previous_controlnet(p)
        copies[0].pre_run(model.model, lambda p: model.model.model_sampling.percent_to_sigma(p))
        with torch.no_grad():
            return copies[0].get_control(x_tiles, t, {"c_crossattn": context, **kw}, chunks, {})

    return build


def count_control_calls(control):
    """Input shapes of every forward of the chain's control models, and the hook handles."""
    shapes, handles = [], []
    for c in chain(control):
        handles.append(
            c.control_model.register_forward_pre_hook(
                lambda module, args, kwargs: shapes.append(tuple(kwargs["x"].shape)), with_kwargs=True
            )
        )
    return shapes, handles


# ---------------------------------------------------------------- the tests
@pytest.fixture(scope="module", params=KINDS)
def kind(request):  # module scope: pytest runs every test of one kind before loading the next
    return request.param


def test_the_model_path_controlnets_exist_where_expected(comfy):
    """0.3.64 already loads Qwen InstantX and SD3.5 ControlNets; the Fun ControlNet comes with the 0.33 era
    (probed apart from it: `FluxParams.txt_ids_dims`), so a 2026 ComfyUI missing it is seen here."""
    import comfy.controlnet
    from comfy_families_2026 import comfyui_of_2026

    assert hasattr(comfy.controlnet, "load_controlnet_qwen_instantx")
    assert hasattr(comfy.controlnet, "load_controlnet_sd35")
    assert hasattr(comfy.controlnet, "QwenFunControlNet") == comfyui_of_2026()


def test_scale_one_whole_image_with_the_controlnet_is_stock_bit_for_bit(files2026, kind):
    family = FAMILY[kind]
    model, pos, neg, _ = controlled(files2026, kind, 8, 8)
    from comfy_families_2026 import latent

    lat = latent(family, 8, 8)
    stock = run(model, family, lat, pos, neg)
    for mode in ("blend", "strength"):
        patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, mode=mode, **tiles(family))
        assert torch.equal(run(patched, family, lat, pos, neg), stock), mode


def test_every_tile_gets_the_controlnet_on_its_crop_of_the_hint(files2026, kind):
    from comfy_families_2026 import latent

    family = FAMILY[kind]
    model, pos, neg, control = controlled(files2026, kind, *WIDE, seed=1)
    lat = latent(family, *WIDE)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(family), **tiles(family))
    recorder = CallRecorder()
    watched, snaps = watch_chain(
        recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw)), control
    )
    before = chain_attributes(control)
    shapes, handles = count_control_calls(control)
    try:
        out = run(watched, family, lat, pos, neg, steps=3)
        run_calls = list(shapes)
        shapes.clear()
        regions = check_tiles_are_the_model_on_their_crops(
            model, recorder, WIDE, reference_control(model, pos[0][1]["control"], WIDE)
        )
        reference_calls = list(shapes)
    finally:
        for hd in handles:
            hd.remove()
    assert regions and run_calls, "the ControlNet never ran"
    assert run_calls == reference_calls  # one ControlNet call per tile batch, each on its crops
    assert all(s[-2:] != WIDE for s in run_calls)  # never on the whole image
    scale = plan_of(model, lat, family, **kw).scale_map
    assert all(bool((scale[y : y + h, x : x + w] != 0).any()) for y, x, h, w in regions)  # no tile at 0 ran
    zero = scale == 0
    assert zero.any() and float((out.reshape(lat.shape) - lat)[..., zero].abs().max()) <= 1e-5
    assert_chain_untouched(control, before, snaps)


def test_tiles_at_scale_zero_run_neither_the_model_nor_the_controlnet(files2026, kind):
    from comfy_families_2026 import latent

    family = FAMILY[kind]
    model, pos, neg, control = controlled(files2026, kind, *WIDE)
    lat = latent(family, *WIDE)
    recorder = CallRecorder()
    patched = recorder.add_inner(
        tiled_patch(model, lat, min_denoise=0.0, max_denoise=0.0, tiled_model=True, **tiles(family))
    )
    shapes, handles = count_control_calls(control)
    try:
        out = run(patched, family, lat, pos, neg)
    finally:
        for hd in handles:
            hd.remove()
    assert shapes == [] and recorder.inner_calls == []
    assert float((out.reshape(lat.shape) - lat).abs().max()) <= 1e-5
