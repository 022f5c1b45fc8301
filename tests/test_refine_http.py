"""Tier 2, through ComfyUI's HTTP API, as a user runs it: LoadImage → SoluneRefine → SaveImage, and
LoadImage → VAEEncode → SoluneTiledImg2Img → KSampler → SoluneStitch → SaveImage, with the tiny SD1.5
UNet and a random-weight VAE of the full SD layout. The saved PNGs keep every pixel of scale 0 of the
input PNG, value for value; a bad upscale_by is refused at validation (HTTP 400) naming the input."""

from __future__ import annotations

import numpy as np
import pytest
from comfy_harness import PromptRejected, tiny_sd15_prompt_nodes

pytestmark = pytest.mark.comfyui

H, W = 256, 384
TILING = {
    "min_denoise": 0.0,
    "max_denoise": 1.0,
    "layout": "grid",
    "scale_mode": "pixel",
    "tile_width": 256,
    "tile_height": 256,
    "overlap": 32,
    "falloff": "cosine",
    "min_tile": 256,
    "max_tile": 1024,
    "threshold": 0.02,
    "criterion": "variance",
    "mode": "blend",
    "tiled_model": True,
    "tile_batch_size": 4,
}


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session's server with the full-layout SD VAE and the picture and mask PNGs installed."""
    import comfy.utils
    from PIL import Image
    from refine_helpers import picture, sd_vae_state_dict

    vae = comfy_server.base / "models" / "vae" / "tiny_sd_vae.safetensors"
    if not vae.exists():
        comfy.utils.save_torch_file({k: v.half() for k, v in sd_vae_state_dict().items()}, str(vae))
    pixels = (picture(H, W, seed=7)[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(comfy_server.base / "input" / "refine.png")
    mask = np.zeros((H, W, 3), np.uint8)
    mask[16:80, 200:296] = 255  # whole latent cells: the scale is 0 exactly where this is 0
    Image.fromarray(mask).save(comfy_server.base / "input" / "refine_mask.png")
    return comfy_server


def saved(server, history, node_id) -> np.ndarray:
    from PIL import Image

    info = history["outputs"][node_id]["images"][0]
    return np.array(Image.open(server.base / "output" / info.get("subfolder", "") / info["filename"]))


def graph(upscale_by=1.0):
    nodes = tiny_sd15_prompt_nodes("a lake", vae=False)
    nodes["5"] = {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_sd_vae.safetensors"}}
    sampling = {"seed": 3, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.6}
    conditioning = {"positive": ["3", 0], "negative": ["4", 0]}
    nodes.update(
        {
            "10": {"class_type": "LoadImage", "inputs": {"image": "refine.png"}},
            "11": {"class_type": "LoadImageMask", "inputs": {"image": "refine_mask.png", "channel": "red"}},
            "12": {
                "class_type": "SoluneRefine",
                "inputs": {
                    "image": ["10", 0],
                    "model": ["1", 0],
                    "vae": ["5", 0],
                    **conditioning,
                    **sampling,
                    **TILING,
                    "denoise_mask": ["11", 0],
                    "upscale_by": upscale_by,
                    "blend": 8,
                },
            },
            "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "refine"}},
            "14": {"class_type": "MaskToImage", "inputs": {"mask": ["12", 2]}},
            "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "refine_scale"}},
            # the hook graph ending in SoluneStitch
            "20": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["5", 0]}},
            "21": {
                "class_type": "SoluneTiledImg2Img",
                "inputs": {"model": ["1", 0], "latent": ["20", 0], **TILING, "denoise_mask": ["11", 0]},
            },
            "22": {
                "class_type": "KSampler",
                "inputs": {"model": ["21", 0], "latent_image": ["20", 0], **conditioning, **sampling},
            },
            "23": {
                "class_type": "SoluneStitch",
                "inputs": {"samples": ["22", 0], "vae": ["5", 0], "image": ["10", 0], "scale": ["21", 2], "blend": 8},
            },
            "24": {"class_type": "SaveImage", "inputs": {"images": ["23", 0], "filename_prefix": "stitch"}},
            "25": {"class_type": "MaskToImage", "inputs": {"mask": ["21", 2]}},
            "26": {"class_type": "SaveImage", "inputs": {"images": ["25", 0], "filename_prefix": "stitch_scale"}},
        }
    )
    return nodes


def test_the_saved_pngs_keep_every_pixel_of_scale_zero_of_the_input_png(server):
    from PIL import Image

    hist = server.run_prompt(graph())
    assert hist["status"]["status_str"] == "success", hist["status"]
    original = np.array(Image.open(server.base / "input" / "refine.png"))
    for out_id, scale_id in (("13", "15"), ("24", "26")):
        out, scale = saved(server, hist, out_id), saved(server, hist, scale_id)
        assert out.shape == original.shape
        keep = scale[..., 0] == 0
        assert keep.mean() > 0.9
        assert np.array_equal(out[keep], original[keep]), out_id  # 0 of 255, not one pixel changed
        changed = ~keep
        assert np.abs(out[changed].astype(int) - original[changed].astype(int)).max() > 0  # the change is there


def test_a_bad_upscale_by_is_refused_at_validation_naming_the_input(server):
    # only the refine's outputs: ComfyUI runs a prompt when any of its outputs validates
    bad = {k: v for k, v in graph(upscale_by=0.0).items() if int(k) < 20}
    with pytest.raises(PromptRejected) as err:
        server.run_prompt(bad)
    assert err.value.status == 400
    assert "upscale_by" in str(err.value.body.get("node_errors", {}).get("12", {}))
