"""Tier 2, in process: SoluneRefine and SoluneStitch in a real ComfyUI with a random-weight VAE of the full
SD1.5 layout (mid-block attention included) and a cheap stand-in diffusion network.

Every pixel of scale 0 comes back bit for bit; the VAE's encoder and decoder see only their regions
(counted with a wrapper, compared with the whole picture); with every scale at 0 neither the VAE nor the
model runs; an upscale keeps the upscaled picture's pixels; bad input is refused naming the input before
any work."""

from __future__ import annotations

import pytest
import torch
from comfy_sampling_helpers import conds
from refine_helpers import CountedVAE, picture, sd_vae
from tiled_comfy_helpers import standin_model

from solune.image import DECODE_CONTEXT

pytestmark = pytest.mark.comfyui

H, W = 256, 384  # 32 × 48 latent cells


@pytest.fixture(scope="module")
def vae(comfy):
    return sd_vae()


def corner_mask(h=H, w=W, batch=1):
    """1 on a 64 × 80 block at the top left (whole latent cells), 0 elsewhere."""
    m = torch.zeros(batch, h, w)
    m[:, 8:72, 16:96] = 1.0
    return m


def corner_decode_read():
    """(rows, columns) of latent the decoder reads for `corner_mask`: its changed cells (8..72 × 16..96 px =
    rows 1..9, columns 2..12) grown by the decoder's context, clamped to the 32 × 48 latent."""
    c = DECODE_CONTEXT
    return min(9 + c, 32) - max(1 - c, 0), min(12 + c, 48) - max(2 - c, 0)


def refine(image, model, vae, **kw):
    from solune.nodes.refine import SoluneRefine

    pos, neg = conds()
    args = dict(
        seed=1,
        steps=2,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
        denoise=0.6,
        scale_mode="pixel",
        min_denoise=0.0,
        max_denoise=1.0,
        tiled_model=True,
        tile_width=256,
        tile_height=256,
        overlap=32,
        blend=8,
    )
    args.update(kw)
    with torch.inference_mode():
        return SoluneRefine.execute(image, model, pos, neg, vae, **args).result


def kept_pixels_identical(out, image, scale):
    keep = scale[0] == 0
    return torch.equal(out[0][keep], image[0][keep])


def test_refine_keeps_every_pixel_of_scale_zero_and_the_vae_sees_only_the_regions(vae):
    model = standin_model()
    net = model.model.diffusion_model
    counted = CountedVAE(vae)
    image = picture(H, W)
    out, tile_map, scale = refine(image, model, counted, denoise_mask=corner_mask())
    assert out.shape == image.shape and tile_map.shape == (1, H, W, 3) and scale.shape == (1, H, W)
    assert kept_pixels_identical(out, image, scale)
    assert bool((scale[0, 8:72, 16:96] == 1).all()) and int((scale != 0).sum()) == 64 * 80
    # beyond the band the decoded picture is there (it differs from the input)
    assert float((out[0, 20:60, 30:80] - image[0, 20:60, 30:80]).abs().max()) > 1e-3
    assert net.calls, "the model ran"
    # the encoder read a part of the picture, never all of it, tile by tile
    assert counted.encoded and counted.encoded_pixels < 0.75 * H * W
    assert counted.decoded == [corner_decode_read()]
    assert counted.decoded_cells < 0.25 * (H // 8) * (W // 8)


def test_strength_mode_with_two_far_corners_encodes_neither_the_middle_nor_changes_a_kept_pixel(vae):
    """Strength mode: the encoded region holds the hook's windows of every step (the schedule is ComfyUI's
    own, read before sampling); two small corners far apart cost two small regions, not the picture."""
    model = standin_model()
    counted = CountedVAE(vae)
    h, w = 192, 768  # 24 × 96 cells: each corner's encode reads its cells, the model's margin and two contexts
    image = picture(h, w, seed=4)
    mask = torch.zeros(1, h, w)
    mask[:, 8:40, 8:48] = torch.linspace(0.2, 1.0, 40)  # soft: pixels join at different steps
    mask[:, -40:-8, -56:-8] = 1.0
    out, _, scale = refine(
        image, model, counted, denoise_mask=mask, mode="strength", steps=4, tile_width=128, tile_height=128
    )
    assert kept_pixels_identical(out, image, scale)
    assert model.model.diffusion_model.calls
    assert len(counted.encoded) >= 2 and counted.encoded_pixels < 0.5 * h * w
    assert len(counted.decoded) == 2 and counted.decoded_cells < 0.5 * (h // 8) * (w // 8)


def test_with_every_scale_zero_neither_the_vae_nor_the_model_runs(vae):
    model = standin_model()
    counted = CountedVAE(vae)
    image = picture(H, W, seed=1)
    out, _, scale = refine(image, model, counted, denoise_mask=torch.zeros(1, H, W))
    assert torch.equal(out, image) and not bool(scale.any())
    assert counted.encoded == [] and counted.decoded == [] and model.model.diffusion_model.calls == []


def test_an_upscale_keeps_the_upscaled_pictures_pixels(vae):
    import comfy.utils

    model = standin_model()
    counted = CountedVAE(vae)
    image = picture(128, 192, seed=2)
    mask = torch.zeros(1, 128, 192)
    mask[:, 8:40, 8:56] = 1.0  # at the input's size: stretched to the upscaled picture
    out, _, scale = refine(image, model, counted, denoise_mask=mask, upscale_by=1.5)
    up = comfy.utils.common_upscale(image.movedim(-1, 1), 288, 192, "bicubic", "disabled").movedim(1, -1).clamp(0, 1)
    assert out.shape == (1, 192, 288, 3) and scale.shape == (1, 192, 288)
    assert kept_pixels_identical(out, up, scale)
    assert bool((scale != 0).any()) and float((scale != 0).float().mean()) < 0.2
    assert counted.encoded_pixels < 192 * 288


def tiny_upscale_model(folder):
    """A random-weight 2× SRVGGNetCompact file, loaded by ComfyUI's own UpscaleModelLoader (which, by
    version, adds what ImageUpscaleWithModel needs: 0.33.0 gives it a ModelPatcher)."""
    import comfy.utils
    import folder_paths
    from comfy_extras.nodes_upscale_model import UpscaleModelLoader
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(6)
    comfy.utils.save_torch_file(
        Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), str(folder / "tiny_2x_compact.safetensors")
    )
    folder_paths.add_model_folder_path("upscale_models", str(folder))
    out = UpscaleModelLoader.execute("tiny_2x_compact.safetensors")
    return out.result[0] if hasattr(out, "result") else out[0]


def test_with_an_upscale_model_the_kept_pixels_are_the_models_picture_resized_to_upscale_by(vae, tmp_path):
    import comfy.utils
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

    upscaler = tiny_upscale_model(tmp_path)
    image = picture(96, 128, seed=5)
    mask = torch.zeros(1, 96, 128)
    mask[:, 8:32, 8:40] = 1.0
    out, _, scale = refine(
        image, standin_model(), CountedVAE(vae), denoise_mask=mask, upscale_model=upscaler, upscale_by=1.5
    )
    with torch.inference_mode():
        up = ImageUpscaleWithModel.execute(upscaler, image)
    up = up.result[0] if hasattr(up, "result") else up[0]
    assert up.shape == (1, 192, 256, 3)  # the model's own 2×
    up = comfy.utils.common_upscale(up.movedim(-1, 1), 192, 144, "bicubic", "disabled").movedim(1, -1).clamp(0, 1)
    assert out.shape == (1, 144, 192, 3)
    assert kept_pixels_identical(out, up, scale) and bool((scale != 0).any())


def test_stitch_after_the_hook_keeps_the_pictures_pixels_and_decodes_only_the_change(vae):
    import nodes
    from solune.nodes.stitch import SoluneStitch
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img

    image = picture(H, W, seed=3)
    counted = CountedVAE(vae)
    pos, neg = conds()
    with torch.inference_mode():
        latent = {"samples": vae.encode(image)}
        patched, _, scale = SoluneTiledImg2Img.execute(
            model=standin_model(),
            latent=latent,
            denoise_mask=corner_mask(),
            scale_mode="pixel",
            min_denoise=0.0,
            max_denoise=1.0,
            tiled_model=True,
        ).result
        sampled = nodes.common_ksampler(patched, 3, 2, 1.0, "euler", "normal", pos, neg, latent, denoise=0.6)[0]
        (out,) = SoluneStitch.execute(samples=sampled, vae=counted, image=image, scale=scale, blend=8).result
    assert kept_pixels_identical(out, image, scale)
    assert counted.encoded == [] and counted.decoded == [corner_decode_read()]
    assert float((out[0, 20:60, 30:80] - image[0, 20:60, 30:80]).abs().max()) > 1e-3


def other_family_vae():
    """A TAESD with 16-channel latents (the SD3 / Flux family)."""
    import comfy.sd
    import comfy.taesd.taesd
    from comfy_harness import _fill_random

    return comfy.sd.VAE(sd=_fill_random(comfy.taesd.taesd.TAESD(latent_channels=16).state_dict(), 5))


@pytest.mark.parametrize(
    "case, match",
    [
        ("mask_size", "denoise_mask must be the size of image"),
        ("mask_batch", "denoise_mask batch must be 1 or the image's 1"),
        ("upscale_by", "upscale_by must be a number in \\(0, 64\\]"),
        ("vae_family", "vae must be of the same family as the model"),
        ("nan", "image must hold only finite values"),
        ("blend", "blend must be an integer in \\[0, 4096\\]"),
    ],
)
def test_refine_refuses_bad_input_naming_it_before_any_work(vae, case, match):
    model = standin_model()
    counted = CountedVAE(vae if case != "vae_family" else other_family_vae())
    image = picture(H, W)
    kw = {"denoise_mask": corner_mask()}
    if case == "mask_size":
        kw["denoise_mask"] = corner_mask(H // 2, W)
    elif case == "mask_batch":
        kw["denoise_mask"] = corner_mask(batch=2)
    elif case == "upscale_by":
        kw["upscale_by"] = 0.0
    elif case == "nan":
        image = image.clone()
        image[0, 5, 5, 1] = float("nan")
    elif case == "blend":
        kw["blend"] = -2
    with pytest.raises(ValueError, match=f"SoluneRefine: {match}"):
        refine(image, model, counted, **kw)
    assert counted.encoded == [] and counted.decoded == [] and model.model.diffusion_model.calls == []


@pytest.mark.parametrize(
    "case, match",
    [
        ("scale_size", "scale must be the tiled node's scale MASK"),
        ("image_size", "image must be the picture the latent was encoded from"),
        ("vae_family", "vae must be of the same family as the samples"),
        ("nan", "samples must hold only finite values"),
    ],
)
def test_stitch_refuses_bad_input_naming_it_before_any_work(vae, case, match):
    from solune.nodes.stitch import SoluneStitch

    image = picture(H, W)
    samples = torch.zeros(1, 4, H // 8, W // 8)
    scale = corner_mask()
    counted = CountedVAE(vae if case != "vae_family" else other_family_vae())
    if case == "scale_size":
        scale = scale[:, : H // 2]
    elif case == "image_size":
        image = image[:, : H // 2]
    elif case == "nan":
        samples[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=f"SoluneStitch: {match}"):
        SoluneStitch.execute(samples={"samples": samples}, vae=counted, image=image, scale=scale, blend=8)
    assert counted.decoded == []
