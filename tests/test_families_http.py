"""Tier 2, through ComfyUI's HTTP API: SDXL with a ControlNet and Flux, loaded by UNETLoader and
ControlNetLoader from the files the tests write, through SoluneTiledImg2Img and KSampler: scale 0
returns the latent (tiled), scale 1 whole-image equals the stock KSampler, and a tiled run with
mixed scales and the ControlNet per tile keeps its scale-0 region."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from comfy_harness import ComfyServer, load_output_latent, locate_comfyui
from families_helpers import FamilyFiles, family_latent, hint_image

pytestmark = pytest.mark.comfyui

TILING = {
    "min_denoise": 0.0,
    "max_denoise": 1.0,
    "layout": "grid",
    "scale_mode": "uniform",
    "tile_width": 48,
    "tile_height": 64,
    "overlap": 16,
    "falloff": "cosine",
    "min_tile": 32,
    "max_tile": 128,
    "threshold": 0.02,
    "criterion": "variance",
    "mode": "blend",
    "tiled_model": True,
    "tile_batch_size": 3,
}
H, W = 8, 16  # latent size


@pytest.fixture(scope="module")
def server(comfy, tmp_path_factory):
    """A headless ComfyUI with Solune, the test conditioning node and the SDXL, ControlNet and Flux files."""
    import safetensors.torch
    from PIL import Image

    files = FamilyFiles(tmp_path_factory.getbasetemp() / "family_models")
    base = tmp_path_factory.mktemp("families_http")
    models = base / "models"
    for sub, path in (
        ("diffusion_models", files.unet("sdxl")),
        ("diffusion_models", files.unet("flux")),
        ("controlnet", files.controlnet("sdxl")),
    ):
        (models / sub).mkdir(parents=True, exist_ok=True)
        (models / sub / path.name).symlink_to(path)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    node = Path(__file__).parent / "fixtures" / "conditioning_node"
    (base / "custom_nodes" / "solune_test_conditioning").symlink_to(node)
    (base / "input").mkdir(exist_ok=True)
    for family in ("sdxl", "flux"):
        latent = family_latent(family, H, W, seed=11)
        safetensors.torch.save_file(
            {"latent_tensor": latent, "latent_format_version_0": torch.tensor([])},
            str(base / "input" / f"{family}.latent"),
        )
    pixels = (hint_image(H * 8, W * 8)[0].numpy() * 255).astype("uint8")
    Image.fromarray(pixels).save(base / "input" / "hint.png")
    path, _ = locate_comfyui()
    srv = ComfyServer(path, base)
    srv.start()
    yield srv
    srv.stop()


def graph(family, controlnet):
    g = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": f"tiny_{family}.safetensors", "weight_dtype": "default"},
        },
        "2": {"class_type": "SoluneTestConditioning", "inputs": {"family": family, "seed": 1}},
        "3": {"class_type": "LoadLatent", "inputs": {"latent": f"{family}.latent"}},
        "20": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": "orig"}},
    }
    pos, neg = ["2", 0], ["2", 1]
    if family == "flux":
        g["4"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": pos, "guidance": 3.5}}
        pos = ["4", 0]
    if controlnet:
        g["5"] = {
            "class_type": "ControlNetLoader",
            "inputs": {"control_net_name": "tiny_sdxl_controlnet_3.safetensors"},
        }
        g["6"] = {"class_type": "LoadImage", "inputs": {"image": "hint.png"}}
        g["7"] = {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {
                "positive": pos,
                "negative": neg,
                "control_net": ["5", 0],
                "image": ["6", 0],
                "strength": 0.9,
                "start_percent": 0.0,
                "end_percent": 0.8,
            },
        }
        pos, neg = ["7", 0], ["7", 1]
    return g, pos, neg


def ksampler(model, pos, neg, cfg):
    return {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": 3,
            "steps": 2,
            "cfg": cfg,
            "sampler_name": "euler",
            "scheduler": "simple",
            "positive": pos,
            "negative": neg,
            "latent_image": ["3", 0],
            "denoise": 0.6,
        },
    }


@pytest.mark.parametrize("family,controlnet", [("sdxl", True), ("flux", False)])
def test_family_through_the_api_scale_zero_one_and_tiled(server, family, controlnet):
    g, pos, neg = graph(family, controlnet)
    cfg = 1.0 if family == "flux" else 3.0
    runs = {
        "zero": {**TILING, "max_denoise": 0.0},
        "one": {**TILING, "min_denoise": 1.0, "tiled_model": False},
        "mixed": {**TILING, "scale_mode": "mask", "denoise_mask": ["9", 0]},
    }
    # denoise_mask: 1 on the right 48 px, 0 elsewhere, from stock mask nodes
    g["8"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": W * 8, "height": H * 8}}
    g["81"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 48, "height": H * 8}}
    g["9"] = {
        "class_type": "MaskComposite",
        "inputs": {"destination": ["8", 0], "source": ["81", 0], "x": W * 8 - 48, "y": 0, "operation": "add"},
    }
    for i, (name, tiling) in enumerate(runs.items()):
        g[f"3{i}"] = {"class_type": "SoluneTiledImg2Img", "inputs": {"model": ["1", 0], "latent": ["3", 0], **tiling}}
        g[f"4{i}"] = ksampler([f"3{i}", 0], pos, neg, cfg)
        g[f"5{i}"] = {"class_type": "SaveLatent", "inputs": {"samples": [f"4{i}", 0], "filename_prefix": name}}
    g["60"] = ksampler(["1", 0], pos, neg, cfg)
    g["61"] = {"class_type": "SaveLatent", "inputs": {"samples": ["60", 0], "filename_prefix": "stock"}}
    hist = server.run_prompt(g)
    assert hist["status"]["status_str"] == "success", (hist["status"], server.log_tail())
    orig = load_output_latent(server, hist, "20")
    zero, one, mixed = (load_output_latent(server, hist, f"5{i}") for i in range(3))
    stock = load_output_latent(server, hist, "61")
    assert float((zero - orig).abs().max()) <= 1e-5
    assert torch.equal(one, stock)
    zero_px = mixed_plan(family, orig, runs["mixed"]).scale_map == 0
    assert zero_px.any() and (~zero_px).any()
    assert float((mixed - orig)[..., zero_px].abs().max()) <= 1e-5
    assert float((mixed - orig)[..., ~zero_px].abs().max()) > 1e-3  # the tiled run changed the rest


def mixed_plan(family, latent, tiling):
    from solune.nodes.tiled_inputs import build_plan, settings_from

    mask = torch.zeros(1, H * 8, W * 8)
    mask[..., W * 8 - 48 :] = 1.0
    settings = settings_from("test", **{k: v for k, v in tiling.items() if k != "denoise_mask"})
    return build_plan("test", settings, latent, 8, 2 if family == "flux" else 1, denoise_mask=mask)
