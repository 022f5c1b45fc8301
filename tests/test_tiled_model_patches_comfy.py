"""Tier 2, in process: model-patch ControlNets under the tiled hook.

- DiffSynth (`QwenImageDiffsynthControlnet` with a random-weight inpaint-variant patch file read by
  ModelPatchLoader's code path at one block, and a random-weight Wan 2.1 VAE, on the one-block
  Qwen-Image): scale 1 whole-image is
  stock bit for bit; under tiled_model every tile call is the model with a DiffSynth patch that
  ComfyUI's own `DiffSynthCnetPatch` builds from the tile's crop of the hint (resized for the whole
  image as the patch does) and of the mask: an independent per-crop recomputation; tiles at 0 never
  run; the user's patch object is unchanged.
- Z-Image Fun (`ZImageFunControlnet` with a random-weight patch file read by ModelPatchLoader itself:
  its smallest variant, 3 control and 2 refiner-control blocks at Z-Image's width, with an inpaint
  picture and a mask; a 16-channel VAE in the SD layout; on the one-layer Z-Image), ComfyUI 0.33 on:
  the same guarantees, the reference per tile being ComfyUI's own `ZImageControlPatch` built on the
  tile's crop of the control picture, the inpaint picture and the mask.
- A patch tiles cannot crop (any patch object of another pack carrying a picture) is refused under
  tiled_model before anything is patched, naming it; with tiled_model off it is patched and the
  user's model and patch are left as they were."""

from __future__ import annotations

import pytest
import torch
from tiled_comfy_helpers import standin_model, tiled_patch

pytestmark = pytest.mark.comfyui


def _patch_classes():
    from comfy_harness import import_comfy

    if import_comfy()[0] is None:
        return []
    import comfy_extras.nodes_model_patch as patches

    import nodes  # noqa: F401  ComfyUI's, imported while its folder leads sys.path (pytest prepends this checkout later)

    return [name for name in ("DiffSynthCnetPatch", "ZImageControlPatch") if hasattr(patches, name)]


COMFY_PATCHES = _patch_classes()
PATCHES = ["Other"]  # ComfyUI's own (DiffSynth, Z-Image Fun) are cropped: tested below


def hint_patch(name):
    """An instance of ComfyUI's patch class carrying a hint image, as its node makes it (without the
    model patch weights: the refusal reads only what the object is)."""
    import comfy_extras.nodes_model_patch as patches

    cls = getattr(patches, name) if name != "Other" else type("OtherPackHintPatch", (), {})
    patch = cls.__new__(cls)
    patch.image = torch.rand(1, 64, 64, 3)
    patch.mask = None
    patch.strength = 1.0
    patch.encoded_image = None  # what ComfyUI's `to` reads when the model moves
    return patch


@pytest.mark.parametrize("name", PATCHES)
def test_a_model_patch_controlnet_is_refused_under_tiled_model_naming_it(comfy, name):
    model = standin_model("lune_flow", channels=16).clone()
    patch = hint_patch(name)
    model.set_model_double_block_patch(patch)
    before = dict(model.model_options["transformer_options"]["patches"])
    lat = torch.randn(1, 16, 8, 8)
    shown = name if name != "Other" else "OtherPackHintPatch"
    with pytest.raises(ValueError, match=rf"SoluneTiledImg2Img: tiled_model .*{shown} \(double_block\)"):
        tiled_patch(model, lat, tiled_model=True)
    patched = tiled_patch(model, lat, tiled_model=False)  # the whole image: the patch works as stock
    (kept,) = patched.model_options["transformer_options"]["patches"]["double_block"]  # 0.3.64 clones deep-copy it
    assert type(kept) is type(patch) and torch.equal(kept.image, patch.image)
    assert model.model_options["transformer_options"]["patches"] == before and patch.image.shape == (1, 64, 64, 3)


def test_a_model_without_model_patches_is_tiled(comfy):
    model = standin_model("lune_flow", channels=16)
    assert tiled_patch(model, torch.randn(1, 16, 8, 8), tiled_model=True) is not model


# ---------------------------------------------------------------- DiffSynth per tile
def diffsynth_state_dict(seed=20):
    """QwenImageBlockWiseControlNet (the inpaint variant: 4 extra input channels for the mask) with
    one control block, PyTorch's default init, as ModelPatchLoader reads it."""
    import comfy.ops
    from comfy_extras.nodes_model_patch import QwenImageBlockWiseControlNet
    from comfy_families import _state_dict, default_init

    net = QwenImageBlockWiseControlNet(
        num_layers=1, additional_in_dim=4, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init
    )
    return _state_dict(default_init(net, seed))


def wan_vae_state_dict(seed=21):
    """A Wan 2.1 VAE (Qwen-Image's) at the width ComfyUI 0.3.64 fixes (96), default init, norms at 1."""
    import inspect

    from comfy.ldm.wan.vae import WanVAE
    from comfy_families import _state_dict, default_init

    config = {"dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": []}
    config["temperal_downsample"] = [False, True, True]
    config = {k: v for k, v in config.items() if k in inspect.signature(WanVAE.__init__).parameters}
    net = default_init(WanVAE(**config), seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return _state_dict(net)


def load_diffsynth_patch(sd):
    """The MODEL_PATCH ModelPatchLoader makes of a DiffSynth file, with one control block: its loader
    always builds 60 blocks at width 3072, 1.13 G parameters, and loads the file strictly, so the file
    must hold all 60. A smaller file dtype does not help: `BlockWiseControlBlock` ignores the dtype and
    device it is given, so the blocks are float32 (4.5 GB) whatever the file holds. Measured on 0.33.0
    (CPU): writing the 60-block file took 17 s to build and 26 s to save (4.5 GB), the node's load 8 s,
    peak resident memory 9.7 GB: too much for a CI test. So this is its code path
    (`QwenImageBlockWiseControlNet` with manual-cast ops, the file's dtype, a strict load, a
    ModelPatcher) at the depth the one-block Qwen-Image uses."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.ops
    import comfy.utils
    from comfy_extras.nodes_model_patch import QwenImageBlockWiseControlNet

    net = QwenImageBlockWiseControlNet(
        num_layers=1,
        additional_in_dim=sd["img_in.weight"].shape[1] - 64,
        device=comfy.model_management.unet_offload_device(),
        dtype=comfy.utils.weight_dtype(sd),
        operations=comfy.ops.manual_cast,
    )
    net.load_state_dict(sd)
    return comfy.model_patcher.ModelPatcher(
        net,
        load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device(),
    )


def _diffsynth(root):
    """(Qwen-Image, the DiffSynth patch read from its .safetensors file, the VAE as VAELoader makes it)."""
    import comfy.sd
    import comfy.utils
    from comfy_families import save
    from comfy_families_2026 import installed_families, model_file

    if "qwen_image" not in installed_families():
        pytest.fail("this ComfyUI has no Qwen-Image (both tested versions have it)")
    patch_file = save(diffsynth_state_dict(), root / "tiny_diffsynth.safetensors")
    patch = load_diffsynth_patch(comfy.utils.load_torch_file(str(patch_file), safe_load=True))
    vae_file = root / "tiny_wan21_vae.safetensors"
    if not vae_file.exists():
        save(wan_vae_state_dict(), vae_file)
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(vae_file)))
    model = comfy.sd.load_diffusion_model(str(model_file(root, "qwen_image")))
    return model, patch, vae


def hint_and_mask(h, w):
    g = torch.Generator().manual_seed(9)
    image = torch.rand(1, h * 8 + 16, w * 8, 3, generator=g)  # another aspect: ComfyUI center-crops it
    mask = torch.zeros(1, h * 8, w * 8)
    mask[:, : h * 4, :] = 1.0
    mask[:, h * 4 : h * 4 + 12, :] = 0.7  # a soft band: Z-Image Fun rounds it at the pixels, not at the latent
    return image, mask


# ---------------------------------------------------------------- Z-Image Fun per tile
def z_image_fun_state_dict(seed=22) -> dict:
    """ZImage_Control as ModelPatchLoader builds it for a file without `control_layers.4` (3 control and 2
    refiner-control blocks at width 3840, inpaint input: 16 latent + 1 mask channels), PyTorch's default
    init, in bf16 as the released patches ship, written under the keys of the released files (separate
    q/k/v, `to_out.0`, `norm_q`/`norm_k`: ModelPatchLoader converts them to ComfyUI's). 1.0 G
    parameters, 2.0 GB."""
    import comfy.ops
    from comfy.ldm.lumina.controlnet import ZImage_Control
    from comfy_families import default_init

    net = ZImage_Control(
        n_control_layers=3, additional_in_dim=17, refiner_control=True, dtype=torch.bfloat16, device="cpu",
        operations=comfy.ops.disable_weight_init,
    )  # fmt: skip
    default_init(net, seed)
    out = {}
    rename = {".attention.out.": ".attention.to_out.0.", ".attention.q_norm.": ".attention.norm_q.",
              ".attention.k_norm.": ".attention.norm_k."}  # fmt: skip
    for k, v in net.state_dict().items():
        v = v.detach().contiguous()
        if k.endswith(".attention.qkv.weight"):
            for name, part in zip(("to_q", "to_k", "to_v"), v.chunk(3, dim=0)):
                out[k.replace(".qkv.", f".{name}.")] = part.contiguous()
            continue
        for a, b in rename.items():
            k = k.replace(a, b)
        out[k] = v
    return out


def load_z_image_fun_patch(root):
    """The MODEL_PATCH ModelPatchLoader itself loads from the patch file (in a model_patches folder), which
    is removed once read."""
    import folder_paths
    from comfy_extras.nodes_model_patch import ModelPatchLoader
    from comfy_families import save

    folder = root / "model_patches"
    path = folder / "tiny_z_image_fun.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    save(z_image_fun_state_dict(), path)
    folder_paths.add_model_folder_path("model_patches", str(folder))
    try:
        (patch,) = ModelPatchLoader().load_model_patch(path.name)
    finally:  # 2.0 GB on disk, read once: CI's disk holds every version's test models (a failed CI run)
        path.unlink()
    assert type(patch.model).__name__ == "ZImage_Control" and patch.model.n_control_layers == 3
    assert patch.model.additional_in_dim == 17 and patch.model.refiner_control
    return patch


KINDS = ["diffsynth"] + (["z_image_fun"] if "ZImageControlPatch" in COMFY_PATCHES else [])
FAMILY = {"diffsynth": "qwen_image", "z_image_fun": "z_image"}
_SETUP: dict = {}


@pytest.fixture(scope="module")
def control_setup(comfy, tmp_path_factory):
    """kind -> (model, patch, vae) as the loaders give them; one kind in memory at a time."""
    import comfy.sd
    import comfy.utils
    from comfy_families import save
    from comfy_families_2026 import model_file
    from test_model_path_controlnets_comfy import sd_layout_vae_state_dict

    root = tmp_path_factory.getbasetemp() / "family_models_2026"

    def get(kind):
        if kind not in _SETUP:
            _SETUP.clear()
            if kind == "diffsynth":
                _SETUP[kind] = _diffsynth(root)
            else:
                vae_file = root / "tiny_sd3_layout_vae.safetensors"
                if not vae_file.exists():
                    save(sd_layout_vae_state_dict(), vae_file)
                vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(vae_file)))
                model = comfy.sd.load_diffusion_model(str(model_file(root, "z_image")))
                _SETUP[kind] = (model, load_z_image_fun_patch(root), vae)
        return _SETUP[kind]

    yield get
    _SETUP.clear()


def apply_control(kind, model, patch, vae, image, mask, strength=0.8):
    """What the kind's node does: QwenImageDiffsynthControlnet(image, mask) or ZImageFunControlnet(image,
    inpaint picture, mask), the inpaint picture being the hint at the latent's pixels."""
    from comfy_extras import nodes_model_patch as n

    with torch.no_grad():  # as ComfyUI runs a node (0.3.64's clones deep-copy the patch: no autograd graph)
        if kind == "diffsynth":
            return n.QwenImageDiffsynthControlnet().diffsynth_controlnet(model, patch, vae, image, strength, mask=mask)[
                0
            ]
        inpaint = torch.rand(1, *mask.shape[-2:], 3, generator=torch.Generator().manual_seed(10))
        return n.ZImageFunControlnet().diffsynth_controlnet(
            model, patch, vae, image, strength, inpaint_image=inpaint, mask=mask
        )[0]


def user_patches(model):
    """The patch objects on the model, by identity, with where each is registered."""
    found = {}
    for where, items in model.model_options["transformer_options"]["patches"].items():
        for p in items:
            found.setdefault(id(p), (p, []))[1].append(where)
    return list(found.values())


def reference_patch(kind, user, model_patch, vae, region, whole_hw, strength=0.8):
    """ComfyUI's own patch class built on the tile's crops (independent of Solune): the pictures resized
    for the whole latent as the patch resizes them, then cropped; the mask as the patch stretches it."""
    import comfy.utils
    from comfy_extras import nodes_model_patch as n

    (H, W), (y, x, h, w) = whole_hw, region

    def crop(picture):  # [B, H', W', 3] -> the tile's crop of it resized to the whole latent's pixels
        whole = comfy.utils.common_upscale(picture.movedim(-1, 1), W * 8, H * 8, "area", "center")
        return whole[..., y * 8 : (y + h) * 8, x * 8 : (x + w) * 8].movedim(1, -1)

    with torch.no_grad():
        if kind == "diffsynth":
            stretched = comfy.utils.common_upscale(user.mask.mean(dim=1, keepdim=True), W, H, "bilinear", "none")
            return n.DiffSynthCnetPatch(
                model_patch, vae, crop(user.image), strength, stretched[..., y : y + h, x : x + w]
            )
        # the node's mask is at the latent's pixels: the patch's resizes of a crop of it are crops of its resizes
        mask = user.mask[..., y * 8 : (y + h) * 8, x * 8 : (x + w) * 8]
        return n.ZImageControlPatch(model_patch, vae, crop(user.image), strength, crop(user.inpaint_image), mask)


def kind_latent(kind, h, w):
    from comfy_families_2026 import latent

    lat = latent(FAMILY[kind], h, w)
    return lat.unsqueeze(2) if kind == "diffsynth" else lat  # Qwen-Image's 5-D latent, as its VAE gives


def run_kind(kind, model, lat, **kw):
    from comfy_families_2026 import FAMILIES_2026, conditioning
    from families_helpers import sample

    pos, neg = conditioning(FAMILY[kind])
    return sample(model, lat, pos, neg, cfg=FAMILIES_2026[FAMILY[kind]].cfg, **kw)


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    """The model-patch kind (module-scoped, so pytest runs each kind's tests together: one model loaded)."""
    return request.param


def test_model_patch_scale_one_whole_image_is_stock_bit_for_bit(control_setup, kind):
    model, patch, vae = control_setup(kind)
    image, mask = hint_and_mask(8, 8)
    controlled = apply_control(kind, model, patch, vae, image, mask)
    lat = kind_latent(kind, 8, 8)
    patched = tiled_patch(controlled, lat, min_denoise=1.0, max_denoise=1.0, tile_width=48, tile_height=64, overlap=16)
    assert torch.equal(run_kind(kind, patched, lat), run_kind(kind, controlled, lat))


def test_model_patch_tiles_get_their_crop_of_the_hint_and_mask(control_setup, kind):
    from families_helpers import CallRecorder
    from test_families_comfy import crop_positions, per_row, tile_calls

    model, patch, vae = control_setup(kind)
    H, W = 8, 16
    image, mask = hint_and_mask(H, W)
    controlled = apply_control(kind, model, patch, vae, image, mask)
    users = user_patches(controlled)
    (user, where), *_ = users
    assert len(users) == 1 and where == (["double_block"] if kind == "diffsynth" else ["noise_refiner", "double_block"])
    before = {k: getattr(user, k) for k in ("image", "mask", "inpaint_image", "encoded_image") if hasattr(user, k)}
    before = {k: None if v is None else v.clone() for k, v in before.items()}
    lat = kind_latent(kind, H, W)
    denoise_mask = torch.zeros(H * 8, W * 8)
    denoise_mask[:, 12 * 8 :] = 1.0
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=denoise_mask)
    kw.update(tile_width=48, tile_height=64, overlap=16, tile_batch_size=1)
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(controlled), lat, tiled_model=True, **kw))
    out = run_kind(kind, patched, lat)
    regions = []
    for outer, inner in tile_calls(recorder):
        x, chunks = outer["x"], len(outer["transformer_options"]["cond_or_uncond"])
        for call in inner:
            ((y, x0),) = crop_positions(x, call["x"], chunks)
            h, w = call["x"].shape[-2:]
            regions.append((y, x0, h, w))
            reference = reference_patch(kind, user, patch, vae, (y, x0, h, w), (H, W))
            t, context = per_row(outer["t"], chunks, 1), per_row(outer["c_crossattn"], chunks, 1)
            extra = {
                k: per_row(v, chunks, 1) if isinstance(v, torch.Tensor) and v.shape[:1] == x.shape[:1] else v
                for k, v in outer["kwargs"].items()
            }
            with torch.no_grad():
                want = model.model.apply_model(
                    call["x"], t, c_crossattn=context, transformer_options={"patches": {w: [reference] for w in where}},
                    **extra,
                )  # fmt: skip
            assert torch.equal(want, call["out"]), f"tile at {(y, x0)} is not the model with its crop's control"
    assert regions and all(h < H or w < W for _, _, h, w in regions)
    assert all(x0 + w > 10 for _, x0, _, w in regions)  # tiles at scale 0 (the left ones) never ran
    for k, v in before.items():  # the user's patch is as it was
        assert (v is None and getattr(user, k) is None) or torch.equal(getattr(user, k), v), k
    zero = torch.zeros(H, W, dtype=torch.bool)
    zero[:, :4] = True
    assert float((out - lat)[..., zero].abs().max()) <= 1e-5
    # every tile in one batch: each row of the batch gets its own tile's encoding
    batched = run_kind(kind, tiled_patch(controlled, lat, tiled_model=True, **{**kw, "tile_batch_size": 3}), lat)
    uncontrolled = run_kind(kind, tiled_patch(model, lat, tiled_model=True, **kw), lat)
    tol = 1e-4 * float(out.abs().max())
    assert float((batched - out).abs().max()) <= tol < float((uncontrolled - out).abs().max())


def test_the_qwen_image_retouch_example_path_runs_diffsynth_under_the_tiled_hook(control_setup):
    """What example_workflows/qwen_image_retouch_diffsynth_inpaint.json does, with the tests' tiny models
    (Qwen-Image, the DiffSynth inpaint patch, the Wan 2.1 VAE; the text encoder's shapes stand in for
    Qwen2.5-VL), node by node: VAEEncode, QwenImageDiffsynthControlnet on the photo and its mask,
    SoluneTiledImg2Img (tiled_model on, the mask as denoise_mask), KSampler at denoise 1.0, VAEDecode.
    The sampled latent keeps the photo's latent where the scale is 0 and changes under the mask."""
    from comfy_extras.nodes_model_patch import QwenImageDiffsynthControlnet
    from comfy_families_2026 import conditioning

    import nodes
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img

    model, patch, vae = control_setup("diffsynth")
    H, W = 64, 128
    photo = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, H, W)
    mask[:, :, 96:] = 1.0
    with torch.no_grad():
        (lat,) = nodes.VAEEncode().encode(vae, photo)
        controlled = QwenImageDiffsynthControlnet().diffsynth_controlnet(model, patch, vae, photo, 1.0, mask=mask)[0]
        hooked, _, scale = SoluneTiledImg2Img.execute(
            model=controlled, latent=lat, denoise_mask=mask, min_denoise=0.0, max_denoise=1.0, scale_mode="mask",
            tile_width=48, tile_height=64, overlap=16, tiled_model=True, mode="blend",
        ).result  # fmt: skip
        pos, neg = conditioning("qwen_image")
        (out,) = nodes.common_ksampler(hooked, 7, 2, 2.5, "euler", "simple", pos, neg, lat, denoise=1.0)
        (picture,) = nodes.VAEDecode().decode(vae, out)
    sampled, original = out["samples"].reshape(lat["samples"].shape), lat["samples"]
    s = scale[0] if tuple(scale.shape[-2:]) == (H // 8, W // 8) else scale[0, ::8, ::8]  # latent cells
    zero = s == 0
    assert zero.any() and float((sampled - original)[..., zero].abs().max()) <= 1e-5  # the photo's latent
    assert not torch.equal(sampled[..., -2:], original[..., -2:])  # under the mask: made anew
    assert picture.reshape(-1, H, W, 3).shape[1:] == photo.shape[1:]
