"""Tier 2, through ComfyUI's HTTP API: the tiled nodes load in a real server, scale 0 returns the
encoded latent, scale 1 equals the stock KSampler, the tile map renders, and bad input is refused
(validation → HTTP 400, run-time checks → execution_error naming the input)."""

from __future__ import annotations

import pytest
from comfy_harness import PromptRejected, load_output_latent, tiny_sd15_prompt_nodes

pytestmark = pytest.mark.comfyui

TILING = {
    "min_denoise": 0.0,
    "max_denoise": 0.0,
    "layout": "grid",
    "scale_mode": "uniform",
    "tile_width": 64,
    "tile_height": 64,
    "overlap": 16,
    "falloff": "cosine",
    "min_tile": 32,
    "max_tile": 128,
    "threshold": 0.02,
    "criterion": "variance",
    "mode": "blend",
    "tiled_model": True,
    "tile_batch_size": 2,
}


def base_graph(size=64):
    return {
        **tiny_sd15_prompt_nodes("a lake"),
        "6": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0x4080C0},
        },
        "7": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["5", 0]}},
        "20": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": "orig"}},
    }


def ksampler(model, latent, sampler="uni_pc", denoise=0.6):
    return {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": 3,
            "steps": 3,
            "cfg": 4.0,
            "sampler_name": sampler,
            "scheduler": "normal",
            "positive": ["3", 0],
            "negative": ["4", 0],
            "latent_image": latent,
            "denoise": denoise,
        },
    }


def test_scale_zero_through_the_api_returns_the_encoded_latent(comfy_server):
    g = base_graph()
    for i, mode in enumerate(("blend", "strength")):
        g[f"8{i}"] = {
            "class_type": "SoluneTiledImg2Img",
            "inputs": {"model": ["1", 0], "latent": ["7", 0], **TILING, "mode": mode},
        }
        g[f"9{i}"] = ksampler([f"8{i}", 0], ["7", 0])
        g[f"1{i}0"] = {
            "class_type": "SaveLatent",
            "inputs": {"samples": [f"9{i}", 0], "filename_prefix": f"zero_{mode}"},
        }
    hist = comfy_server.run_prompt(g)
    assert hist["status"]["status_str"] == "success", hist["status"]
    orig = load_output_latent(comfy_server, hist, "20")
    for i in range(2):
        assert float((load_output_latent(comfy_server, hist, f"1{i}0") - orig).abs().max()) <= 1e-5


def test_tiled_sampler_at_scale_one_equals_the_stock_ksampler_through_the_api(comfy_server):
    g = base_graph()
    whole = {**TILING, "min_denoise": 1.0, "max_denoise": 1.0, "tiled_model": False}
    g["8"] = {
        "class_type": "SoluneTiledSampler",
        "inputs": {
            "model": ["1", 0],
            "seed": 3,
            "steps": 3,
            "cfg": 4.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["3", 0],
            "negative": ["4", 0],
            "latent_image": ["7", 0],
            "denoise": 0.6,
            **whole,
        },
    }
    g["9"] = ksampler(["1", 0], ["7", 0], sampler="euler")
    g["10"] = {"class_type": "SaveLatent", "inputs": {"samples": ["8", 0], "filename_prefix": "tiled_one"}}
    g["11"] = {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": "stock"}}
    g["12"] = {
        "class_type": "SoluneTileMap",
        "inputs": {
            "latent": ["7", 0],
            **{k: v for k, v in TILING.items() if k not in ("mode", "tiled_model", "tile_batch_size")},
        },
    }
    g["13"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    hist = comfy_server.run_prompt(g)
    assert hist["status"]["status_str"] == "success", hist["status"]
    a, b = load_output_latent(comfy_server, hist, "10"), load_output_latent(comfy_server, hist, "11")
    assert float((a - b).abs().max()) <= 1e-6
    assert hist["outputs"]["13"]["images"]


def tiled_node(node_type: str, **changes) -> dict:
    """One tiled node of `node_type` on base_graph's latent (and model), with TILING changed by `changes`."""
    tiling = {**TILING, **changes}
    if node_type == "SoluneTileMap":
        layout = {k: v for k, v in tiling.items() if k not in RUN_ONLY}
        return {"class_type": node_type, "inputs": {"latent": ["7", 0], **layout}}
    if node_type == "SoluneTiledSampler":
        return {"class_type": node_type, "inputs": {**ksampler(["1", 0], ["7", 0], denoise=1.0)["inputs"], **tiling}}
    return {"class_type": node_type, "inputs": {"model": ["1", 0], "latent": ["7", 0], **tiling}}


RUN_ONLY = ("mode", "tiled_model", "tile_batch_size")


@pytest.mark.parametrize("node_type", ["SoluneTiledImg2Img", "SoluneTiledSampler", "SoluneTileMap"])
def test_min_above_max_is_one_error_under_each_of_the_two_inputs(comfy_server, node_type):
    """ComfyUI files a validate_inputs message under every input the function declares: min > max comes
    back as exactly two errors, under min_denoise and max_denoise, with Solune's message."""
    g = base_graph()
    del g["20"]
    g["8"] = tiled_node(node_type, min_denoise=0.8, max_denoise=0.65)
    if node_type == "SoluneTiledImg2Img":
        g["9"] = ksampler(["8", 0], ["7", 0])
        g["10"] = {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": "bad"}}
    elif node_type == "SoluneTiledSampler":
        g["10"] = {"class_type": "SaveLatent", "inputs": {"samples": ["8", 0], "filename_prefix": "bad"}}
    else:
        g["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    with pytest.raises(PromptRejected) as err:
        comfy_server.run_prompt(g)
    assert err.value.status == 400
    node_errors = err.value.body["node_errors"]
    assert list(node_errors) == ["8"]
    errors = node_errors["8"]["errors"]
    assert sorted(e["extra_info"]["input_name"] for e in errors) == ["max_denoise", "min_denoise"]
    for error in errors:
        assert f"{node_type}: min_denoise must be <= max_denoise (0.65); got 0.8" in error["details"]


def test_a_bad_combo_value_is_refused_naming_the_input_before_the_sampler_runs(comfy_server):
    """Where ComfyUI checks V3 combo values (after 0.3.64) it refuses the prompt with one error under
    `layout`; where it lets them through (0.3.64) the node refuses to run, naming the input, and the
    sampler behind it never starts."""
    g = base_graph()
    del g["20"]  # the only output is the one behind the bad node, so the whole prompt is refused
    g["8"] = {
        "class_type": "SoluneTiledImg2Img",
        "inputs": {"model": ["1", 0], "latent": ["7", 0], **TILING, "layout": "spiral"},
    }
    g["9"] = ksampler(["8", 0], ["7", 0])
    g["10"] = {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": "bad"}}
    try:
        hist = comfy_server.run_prompt(g)
    except PromptRejected as err:
        assert err.status == 400
        errors = err.body["node_errors"]["8"]["errors"]
        assert [e["extra_info"]["input_name"] for e in errors] == ["layout"]
        assert "'spiral'" in errors[0]["details"]
        return
    assert hist["status"]["status_str"] == "error"
    failure = next(m[1] for m in hist["status"]["messages"] if m[0] == "execution_error")
    assert failure["node_id"] == "8"
    assert "SoluneTiledImg2Img: layout must be one of grid, quadtree; got 'spiral'" in failure["exception_message"]
    assert "9" not in failure["executed"]


def test_an_original_of_another_size_is_an_execution_error_naming_the_latent(comfy_server):
    g = base_graph()
    g["30"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 96, "height": 96, "batch_size": 1}}
    g["8"] = {"class_type": "SoluneTiledImg2Img", "inputs": {"model": ["1", 0], "latent": ["7", 0], **TILING}}
    g["9"] = ksampler(["8", 0], ["30", 0])
    g["10"] = {"class_type": "SaveLatent", "inputs": {"samples": ["9", 0], "filename_prefix": "mismatch"}}
    hist = comfy_server.run_prompt(g)
    assert hist["status"]["status_str"] == "error"
    messages = str(hist["status"]["messages"])
    assert "latent (the original" in messages and "(1, 4, 12, 12)" in messages
