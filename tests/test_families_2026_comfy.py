"""Tier 2, in process: SoluneTiledImg2Img on the families people refine with in 2026 (Qwen-Image, Flux.2,
HunyuanImage 2.1, Chroma, Lumina 2, Z-Image, Kandinsky 5 image, HiDream, Ernie-Image) and SD3.5, each in
its real ComfyUI architecture (random weights, loaded by the stock loader; HiDream and Ernie-Image
reduced in width and depth, loaded by ComfyUI's loading steps with the reduced config:
tests/comfy_families_2026.py), whole-image and tile by tile, both modes, with area and mask
conditioning: scale 0 returns the original, scale 1 whole-image is the stock sampler bit for bit,
every tile call is the model on that tile's crop (the crop's own positions, as ComfyUI gives a
picture of that size), tiles at scale 0 never reach the model.

The families are parametrized from what the installed ComfyUI has (probed: its
`comfy.supported_models` class); `test_a_2026_comfyui_has_every_2026_family` makes a family missing
from a ComfyUI of the 0.33 era (probed apart from the families) visible. 0.3.64 already has
Qwen-Image, HunyuanImage 2.1, SD3.5, Chroma, Lumina 2 and HiDream, so those run on both versions
(Flux.2, Z-Image, Kandinsky 5 and Ernie-Image are not parametrized there: nothing is skipped). Qwen-Image is
sampled with a frame axis on 0.33 ([B, C, 1, H, W]): it is tested with the user's LATENT both 4-D
and 5-D.
"""

from __future__ import annotations

import pytest
import torch
from comfy_families_2026 import (
    FAMILIES_2026,
    NEW_FAMILIES,
    comfyui_of_2026,
    conditioning,
    installed_families,
    latent,
    load_model,
    model_file,
)
from families_helpers import CallRecorder, sample
from test_families_comfy import check_tiles_are_the_model_on_their_crops
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

FAMILIES = installed_families()
MODES = ["blend", "strength"]
SIZE, WIDE = (8, 8), (8, 16)  # latent sizes of the whole-image and of the tiled runs


def tiles(name):
    """One row of tiles 6 wide and 8 high (latent units), overlap 2, at the family's pixel scale."""
    d = FAMILIES_2026[name].downscale
    return {"tile_width": 6 * d, "tile_height": 8 * d, "overlap": 2 * d, "tile_batch_size": 3}


@pytest.fixture(scope="session")
def files2026(comfy, tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "family_models_2026"


_LOADED: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _release_models():
    """The large family models leave memory with this module (the next modules load their own)."""
    yield
    _LOADED.clear()


def load(files2026, name):
    """The family's file (written on first use) loaded as UNETLoader loads it (a reduced family: as the
    test-only loader does, `comfy_families_2026.load_model`)."""
    if name not in _LOADED:
        path = model_file(files2026, name)
        _LOADED.clear()  # one large model in memory at a time
        _LOADED[name] = load_model(path, name)
    return _LOADED[name]


def run(model, name, lat, pos=None, neg=None, **kw):
    """What KSampler does: the latent brought to the model's layout (a frame axis for Qwen-Image), then sampled."""
    import comfy.sample

    if pos is None:
        pos, neg = conditioning(name)
    lat = comfy.sample.fix_empty_latent_channels(model, lat)
    return sample(model, lat, pos, neg, cfg=FAMILIES_2026[name].cfg, **kw)


def right_mask(name, h=8, w=16, start=12):
    d = FAMILIES_2026[name].downscale
    mask = torch.zeros(h * d, w * d)
    mask[:, start * d :] = 1.0
    return mask


def test_a_2026_comfyui_has_every_2026_family(comfy):
    """0.3.64 already has every family here but Flux.2, Z-Image, Kandinsky 5 and Ernie-Image; a ComfyUI of
    the 0.33 era has them all."""
    expected = set(FAMILIES_2026) if comfyui_of_2026() else set(FAMILIES_2026) - set(NEW_FAMILIES)
    assert set(FAMILIES) == expected, f"missing: {sorted(expected - set(FAMILIES))}"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_family_file_loads_as_the_family_with_every_weight(files2026, name):
    model = load(files2026, name)
    assert type(model.model.model_config).__name__ == FAMILIES_2026[name].supported
    import safetensors.torch

    written = safetensors.torch.load_file(str(files2026 / f"tiny_{name}.safetensors"))
    params = dict(model.model.diffusion_model.named_parameters())
    assert set(params) <= set(written) and len(params) > 0
    # bf16 files (as those families ship) are loaded into the float32 model ComfyUI runs on a CPU
    assert all(torch.equal(written[k].to(p.dtype), p.detach()) for k, p in params.items())


REDUCED = [n for n in FAMILIES if FAMILIES_2026[n].reduced]


@pytest.mark.parametrize("name", REDUCED)
def test_a_reduced_family_file_is_detected_as_its_family_and_loaded_at_the_reduced_size(files2026, name):
    """ComfyUI's detection names the family from the file but fixes a full-size architecture (counted
    on the meta device, nothing allocated: HiDream 17.1 G, Ernie-Image 8.0 G parameters); the
    test-only loader picks the same `supported_models` class from the reduced config in the file and
    loads exactly the file's weights into it."""
    import json

    import comfy.model_detection
    import comfy.ops
    import safetensors
    import safetensors.torch
    from comfy_families_2026 import reduced_loader

    model = load(files2026, name)
    path = str(files2026 / f"tiny_{name}.safetensors")
    written = safetensors.torch.load_file(path)
    with safetensors.safe_open(path, "pt") as f:
        config = json.loads(f.metadata()[reduced_loader().CONFIG_KEY])
    detected = comfy.model_detection.model_config_from_unet(written, "")
    assert type(detected).__name__ == FAMILIES_2026[name].supported == type(model.model.model_config).__name__
    assert detected.unet_config["image_model"] == config["image_model"]
    net = model.model.diffusion_model
    full = type(net)(
        **detected.unet_config, dtype=torch.float32, device="meta", operations=comfy.ops.disable_weight_init
    )
    assert sum(p.numel() for p in full.parameters()) > 10**9  # what UNETLoader would build
    assert sum(p.numel() for p in net.parameters()) < 10**7
    assert {k: model.model.model_config.unet_config[k] for k in config} == config
    assert set(net.state_dict()) == set(written)  # no missing, no unexpected weight
    assert all(torch.equal(written[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FAMILIES)
def test_scale_zero_returns_the_original(files2026, name, mode, tiled):
    model, lat = load(files2026, name), latent(name, *WIDE)
    patched = tiled_patch(model, lat, min_denoise=0.0, max_denoise=0.0, mode=mode, tiled_model=tiled, **tiles(name))
    out = run(patched, name, lat, sampler="dpmpp_2m")
    assert float((out.reshape(lat.shape) - lat).abs().max()) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FAMILIES)
def test_scale_one_whole_image_is_the_stock_sampler_bit_for_bit(files2026, name, mode):
    model, lat = load(files2026, name), latent(name, *SIZE)
    patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, mode=mode, **tiles(name))
    assert torch.equal(run(patched, name, lat), run(model, name, lat))


def area_and_mask_conds(name, h, w):
    """The positive prompt, plus itself on a 4x4-latent area and under a mask (latent size h x w)."""
    from nodes import ConditioningCombine, ConditioningSetArea, ConditioningSetMask

    d = FAMILIES_2026[name].downscale
    pos, neg = conditioning(name)
    # ComfyUI keeps an area in units of 8 px and applies them as latent units, whatever the family's VAE
    area = ConditioningSetArea().append(pos, 32, 32, (w - 6) * 8, 16, 1.0)[0]
    mask = torch.zeros(1, h * d, w * d)
    mask[:, d : 5 * d, d : 6 * d] = 1.0
    masked = ConditioningSetMask().append(pos, mask, "default", 0.8)[0]
    combined = ConditioningCombine().combine(ConditioningCombine().combine(pos, area)[0], masked)[0]
    return combined, neg


@pytest.mark.parametrize("name", FAMILIES)
def test_scale_one_whole_image_with_area_and_mask_conditioning_is_stock_bit_for_bit(files2026, name):
    model, lat = load(files2026, name), latent(name, *SIZE)
    pos, neg = area_and_mask_conds(name, *SIZE)
    patched = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, **tiles(name))
    assert torch.equal(run(patched, name, lat, pos, neg), run(model, name, lat, pos, neg))


def plan_of(model, lat, name, **kw):
    from solune.nodes.tiled_hooks import model_geometry
    from solune.nodes.tiled_inputs import build_plan, settings_from

    values = {k: v for k, v in {**tiles(name), **kw}.items() if k not in ("denoise_mask", "image")}
    downscale, align = model_geometry(model)
    return build_plan("test", settings_from("test", **values), lat, downscale, align, kw.get("denoise_mask"))


def tiled_run(files2026, name, mode, lat, pos=None, neg=None, start=12):
    model = load(files2026, name)
    kw = {
        "min_denoise": 0.0,
        "max_denoise": 1.0,
        "scale_mode": "mask",
        "denoise_mask": right_mask(name, start=start),
        "mode": mode,
        **tiles(name),
    }
    recorder = CallRecorder()
    patched = recorder.add_inner(tiled_patch(recorder.add_outer(model), lat, tiled_model=True, **kw))
    out = run(patched, name, lat, pos, neg)
    return model, recorder, out, plan_of(model, lat, name, **kw).scale_map


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FAMILIES)
def test_tiled_evaluation_is_the_model_run_on_each_tile_crop(files2026, name, mode):
    lat = latent(name, *WIDE)
    model, recorder, out, scale = tiled_run(files2026, name, mode, lat)
    regions = check_tiles_are_the_model_on_their_crops(model, recorder, WIDE)
    assert regions and all(h < WIDE[0] or w < WIDE[1] for _, _, h, w in regions)  # tiles, not the whole image
    zero = scale == 0
    assert zero.any() and float((out.reshape(lat.shape) - lat)[..., zero].abs().max()) <= 1e-5
    assert all(bool((scale[y : y + h, x : x + w] != 0).any()) for y, x, h, w in regions)  # no tile at 0 ran


@pytest.mark.parametrize("name", FAMILIES)
def test_tiled_evaluation_with_area_and_mask_conditioning_crops_or_evaluates_whole(files2026, name):
    lat = latent(name, *WIDE)
    pos, neg = area_and_mask_conds(name, *WIDE)
    model, recorder, out, scale = tiled_run(files2026, name, "blend", lat, pos, neg, start=8)
    assert any(tuple(o["x"].shape[-2:]) == (4, 4) for o in recorder.outer_calls)  # the area was evaluated
    assert check_tiles_are_the_model_on_their_crops(model, recorder, WIDE)
    zero = scale == 0
    assert float((out.reshape(lat.shape) - lat)[..., zero].abs().max()) <= 1e-5


FRAMED = [n for n in FAMILIES if n == "qwen_image"]


@pytest.mark.parametrize("name", FRAMED)
def test_a_family_sampled_with_a_frame_axis_takes_a_5d_latent_too(files2026, name):
    """Qwen-Image is sampled as [B, C, 1, H, W]: from a 4-D LATENT (empty, or another VAE's encoding:
    every other test here) or a 5-D one (its own VAE's: this one), scale 0 returns it, scale 1 is
    stock bit for bit, and the tiles are the model on crops of [B, C, 1, h, w]."""
    model, flat = load(files2026, name), latent(name, *WIDE)
    lat = flat.unsqueeze(2)
    stock = run(model, name, lat)
    assert stock.dim() == 5  # the frame axis, as the sampler gives it
    one = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, **tiles(name))
    assert torch.equal(run(one, name, lat), stock)
    _, recorder, out, scale = tiled_run(files2026, name, "strength", lat)
    regions = check_tiles_are_the_model_on_their_crops(model, recorder, WIDE)
    assert regions and all(c["x"].dim() == 5 and c["x"].shape[2] == 1 for c in recorder.inner_calls)
    assert out.dim() == 5 and float((out - lat)[..., scale == 0].abs().max()) <= 1e-5


@pytest.mark.parametrize("name", FRAMED)
def test_a_video_latent_is_refused_before_sampling_naming_the_family_and_shape(files2026, name):
    model = load(files2026, name)
    video = torch.zeros(1, 16, 3, *WIDE)
    with pytest.raises(ValueError, match=r"latent must be an image LATENT for QwenImage .*\(1, 16, 3, 8, 16\)"):
        tiled_patch(model, video, **tiles(name))


# ---------------------------------------------------------------- reference latents (edit models)
EDIT = [n for n in ("flux2", "qwen_image") if n in FAMILIES][:1]  # the cheapest edit family installed


def with_references(name, pos, same, other):
    from comfy_extras.nodes_edit_model import ReferenceLatent

    pos = ReferenceLatent.execute(pos, {"samples": same}).result[0]
    return ReferenceLatent.execute(pos, {"samples": other}).result[0]


def crops_of(v, positions, h, w, chunks):
    """The tests' own chunk-major crops of a per-row spatial tensor at `positions`."""
    whole = v.reshape(chunks, v.shape[0] // chunks, *v.shape[1:])
    crops = torch.stack([whole[..., y : y + h, x : x + w] for y, x in positions], dim=1)
    return crops.reshape(-1, *v.shape[1:-2], h, w)


@pytest.mark.parametrize("name", EDIT)
def test_reference_latents_the_latent_size_are_cropped_per_tile_others_pass_whole(files2026, name):
    from test_families_comfy import crop_positions, per_row, tile_calls

    model, lat = load(files2026, name), latent(name, *WIDE)
    same, other = latent(name, *WIDE, seed=3), latent(name, 4, 6, seed=4)
    if name == "qwen_image":  # its VAE (Wan 2.1) encodes references with a frame axis
        same, other = same.unsqueeze(2), other.unsqueeze(2)
    pos, neg = conditioning(name)
    pos = with_references(name, pos, same, other)
    # scale 1 whole-image with references: stock bit for bit
    one = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, **tiles(name))
    assert torch.equal(run(one, name, lat, pos, neg), run(model, name, lat, pos, neg))
    # tile by tile: the model on each crop with the same-size reference cropped alike, the other whole
    _, recorder, out, scale = tiled_run(files2026, name, "blend", lat, pos, neg)
    checked = 0
    for outer, inner in tile_calls(recorder):
        refs = outer["kwargs"].get("ref_latents")
        if refs is None:
            continue
        x, chunks = outer["x"], len(outer["transformer_options"]["cond_or_uncond"])
        assert len(refs) == 2 and tuple(refs[0].shape[-2:]) == WIDE and tuple(refs[1].shape[-2:]) == (4, 6)
        for call in inner:
            positions = crop_positions(x, call["x"], chunks)
            h, w = call["x"].shape[-2:]
            n = len(positions)
            expected = [crops_of(refs[0], positions, h, w, chunks), per_row(refs[1], chunks, n)]
            got = call["kwargs"]["ref_latents"]
            assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, expected))
            kw = {
                k: per_row(v, chunks, n) if isinstance(v, torch.Tensor) and v.shape[:1] == x.shape[:1] else v
                for k, v in outer["kwargs"].items()
                if k != "ref_latents"
            }
            t, context = per_row(outer["t"], chunks, n), per_row(outer["c_crossattn"], chunks, n)
            with torch.no_grad():
                want = model.model.apply_model(call["x"], t, c_crossattn=context, ref_latents=expected, **kw)
            assert torch.equal(want, call["out"]), "a tile's output is not the model on its crop and references"
            checked += 1
    assert checked > 0
    assert float((out.reshape(lat.shape) - lat)[..., scale == 0].abs().max()) <= 1e-5


# ---------------------------------------------------------------- an edit input beside the picture (HiDream E1)
CONCAT = [n for n in FAMILIES if n == "hidream"]


@pytest.mark.parametrize("name", CONCAT)
def test_an_edit_input_the_latent_size_is_cropped_with_each_tile(files2026, name):
    """HiDream E1's edit input (`concat_latent_image`, as InstructPixToPixConditioning sets it on both
    prompts; the model puts it beside the picture as `image_cond`) is spatial: scale 1 whole-image is
    stock bit for bit, and each tile is the model on its crop with the same crop of the edit input,
    the per-row inputs (Llama's hidden layers too) repeated."""
    from test_families_comfy import crop_positions, per_row, tile_calls

    model, lat = load(files2026, name), latent(name, *WIDE)
    image = latent(name, *WIDE, seed=5)
    pos, neg = ([[c, {**d, "concat_latent_image": image}] for c, d in p] for p in conditioning(name))
    one = tiled_patch(model, lat, min_denoise=1.0, max_denoise=1.0, **tiles(name))
    assert torch.equal(run(one, name, lat, pos, neg), run(model, name, lat, pos, neg))
    _, recorder, out, scale = tiled_run(files2026, name, "blend", lat, pos, neg)
    checked = 0
    for outer, inner in tile_calls(recorder):
        x, chunks = outer["x"], len(outer["transformer_options"]["cond_or_uncond"])
        whole = outer["kwargs"]["image_cond"]
        assert whole.shape == x.shape
        for call in inner:
            positions = crop_positions(x, call["x"], chunks)
            h, w = call["x"].shape[-2:]
            n = len(positions)
            kw = {
                k: per_row(v, chunks, n) if isinstance(v, torch.Tensor) and v.shape[:1] == x.shape[:1] else v
                for k, v in outer["kwargs"].items()
            }
            kw["image_cond"] = crops_of(whole, positions, h, w, chunks)
            assert torch.equal(call["kwargs"]["image_cond"], kw["image_cond"])
            assert call["kwargs"]["encoder_hidden_states_llama3"].shape[1:] == (32, 8, 4096)
            t, context = per_row(outer["t"], chunks, n), per_row(outer["c_crossattn"], chunks, n)
            with torch.no_grad():
                want = model.model.apply_model(call["x"], t, c_crossattn=context, **kw)
            assert torch.equal(want, call["out"]), "a tile's output is not the model on its crop and edit input crop"
            checked += 1
    assert checked > 0
    assert float((out.reshape(lat.shape) - lat)[..., scale == 0].abs().max()) <= 1e-5
