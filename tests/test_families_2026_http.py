"""Tier 2, through ComfyUI's HTTP API: one run per 2026 family the installed ComfyUI has (Qwen-Image,
Flux.2, HunyuanImage 2.1, SD3.5, Chroma, Lumina 2, Z-Image, Kandinsky 5 image, HiDream, Ernie-Image),
loaded by UNETLoader from the files the tests write (HiDream and Ernie-Image, reduced below the size
ComfyUI's detection fixes, by the test-only `SoluneTestReducedModelLoader`: ComfyUI's loading steps
with the file's reduced config), with a test-only conditioning node standing in for the text encoders,
through SoluneTiledImg2Img and KSampler: scale 0 returns the latent (tiled), scale 1 whole-image
equals the stock KSampler bit for bit, and a tiled run with mixed scales keeps its scale-0 region and
changes the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from comfy_families_2026 import FAMILIES_2026, installed_families, latent, model_file
from comfy_harness import ComfyServer, load_output_latent, locate_comfyui
from test_families_http import TILING

pytestmark = pytest.mark.comfyui

FAMILIES = installed_families()
H, W = 8, 16  # latent size


def tiling(name):
    """test_families_http's tile settings: one row of tiles 6 × 8 latent cells, overlap 2, at the family's scale."""
    d = FAMILIES_2026[name].downscale
    return {**TILING, "tile_width": 6 * d, "tile_height": 8 * d, "overlap": 2 * d}


@pytest.fixture(scope="module")
def server(comfy, tmp_path_factory, request):
    """A headless ComfyUI with Solune, the test-only conditioning and reduced-model loader nodes and the
    families' files."""
    import safetensors.torch

    root = tmp_path_factory.getbasetemp() / "family_models_2026"
    base = tmp_path_factory.mktemp("families_2026_http")
    models = base / "models" / "diffusion_models"
    models.mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    fixtures = Path(__file__).parent / "fixtures"
    (base / "custom_nodes" / "solune_test_conditioning").symlink_to(fixtures / "conditioning_node")
    (base / "custom_nodes" / "solune_test_reduced_model_loader").symlink_to(fixtures / "reduced_model_loader")
    (base / "input").mkdir(exist_ok=True)
    # only the files of the families selected to run (-k): the others are GBs and minutes to write
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec") and "name" in item.callspec.params
    }
    for name in [n for n in FAMILIES if n in selected]:
        path = model_file(root, name)
        (models / path.name).symlink_to(path)
        safetensors.torch.save_file(
            {"latent_tensor": latent(name, H, W, seed=11), "latent_format_version_0": torch.tensor([])},
            str(base / "input" / f"{name}.latent"),
        )
    path, _ = locate_comfyui()
    srv = ComfyServer(path, base)
    srv.start()
    yield srv
    srv.stop()


def ksampler(model, name):
    return {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": 3,
            "steps": 2,
            "cfg": FAMILIES_2026[name].cfg,
            "sampler_name": "euler",
            "scheduler": "simple",
            "positive": ["2", 0],
            "negative": ["2", 1],
            "latent_image": ["3", 0],
            "denoise": 0.6,
        },
    }


@pytest.mark.parametrize("name", FAMILIES)
def test_family_through_the_api_scale_zero_one_and_tiled(server, name):
    d = FAMILIES_2026[name].downscale
    if FAMILIES_2026[name].reduced:  # detection would build it full size: the test-only loader
        loader = {"class_type": "SoluneTestReducedModelLoader", "inputs": {"unet_name": f"tiny_{name}.safetensors"}}
    else:
        loader = {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": f"tiny_{name}.safetensors", "weight_dtype": "default"},
        }
    g = {
        "1": loader,
        "2": {"class_type": "SoluneTestConditioning", "inputs": {"family": name, "seed": 1}},
        "3": {"class_type": "LoadLatent", "inputs": {"latent": f"{name}.latent"}},
        "20": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": f"{name}_orig"}},
        # denoise_mask: 1 on the right quarter, 0 elsewhere, from stock mask nodes
        "8": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": W * d, "height": H * d}},
        "81": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 4 * d, "height": H * d}},
        "9": {
            "class_type": "MaskComposite",
            "inputs": {"destination": ["8", 0], "source": ["81", 0], "x": (W - 4) * d, "y": 0, "operation": "add"},
        },
    }
    runs = {
        "zero": {**tiling(name), "max_denoise": 0.0},
        "one": {**tiling(name), "min_denoise": 1.0, "tiled_model": False},
        "mixed": {**tiling(name), "scale_mode": "mask", "denoise_mask": ["9", 0]},
    }
    for i, (run, settings) in enumerate(runs.items()):
        g[f"3{i}"] = {"class_type": "SoluneTiledImg2Img", "inputs": {"model": ["1", 0], "latent": ["3", 0], **settings}}
        g[f"4{i}"] = ksampler([f"3{i}", 0], name)
        g[f"5{i}"] = {
            "class_type": "SaveLatent",
            "inputs": {"samples": [f"4{i}", 0], "filename_prefix": f"{name}_{run}"},
        }
    g["60"] = ksampler(["1", 0], name)
    g["61"] = {"class_type": "SaveLatent", "inputs": {"samples": ["60", 0], "filename_prefix": f"{name}_stock"}}
    hist = server.run_prompt(g)
    assert hist["status"]["status_str"] == "success", (hist["status"], server.log_tail())
    orig = load_output_latent(server, hist, "20")
    zero, one, mixed = (load_output_latent(server, hist, f"5{i}") for i in range(3))
    stock = load_output_latent(server, hist, "61")
    assert float((zero.reshape(orig.shape) - orig).abs().max()) <= 1e-5
    assert torch.equal(one, stock)
    zero_px = mixed_plan(name, orig, runs["mixed"]).scale_map == 0
    assert zero_px.any() and (~zero_px).any()
    mixed = mixed.reshape(orig.shape)
    assert float((mixed - orig)[..., zero_px].abs().max()) <= 1e-5
    assert float((mixed - orig)[..., ~zero_px].abs().max()) > 1e-3  # the tiled run changed the rest


def mixed_plan(name, lat, settings):
    from solune.nodes.tiled_inputs import build_plan, settings_from

    d = FAMILIES_2026[name].downscale
    mask = torch.zeros(1, H * d, W * d)
    mask[..., (W - 4) * d :] = 1.0
    align = 1 if name in ("flux2", "hunyuan_image21", "ernie_image") else 2  # the patch size
    values = settings_from("test", **{k: v for k, v in settings.items() if k != "denoise_mask"})
    return build_plan("test", values, lat, d, align, denoise_mask=mask)
