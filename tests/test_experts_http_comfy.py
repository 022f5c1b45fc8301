"""Tier 2 over HTTP: the expert handoff and the Solune samplers in a headless ComfyUI server, with
the tiny UNets loaded through UNETLoader."""

from __future__ import annotations

import pytest
import torch
from comfy_harness import PromptRejected, load_output_latent

pytestmark = pytest.mark.comfyui


def base_prompt():
    return {
        "sol_unet": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "tiny_sd15_0.safetensors", "weight_dtype": "default"},
        },
        "lune_unet": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "tiny_sd15_1.safetensors", "weight_dtype": "default"},
        },
        "sol": {
            "class_type": "SolunePredictionType",
            "inputs": {"model": ["sol_unet", 0], "prediction": "sol_v", "shift": 2.0, "zero_terminal_snr": False},
        },
        "lune": {
            "class_type": "SolunePredictionType",
            "inputs": {"model": ["lune_unet", 0], "prediction": "lune_flow", "shift": 2.0, "zero_terminal_snr": False},
        },
        "clip": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": "tiny_clip_l.safetensors", "type": "stable_diffusion"},
        },
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff", "clip": ["clip", 0]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["clip", 0]}},
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }


def ksampler(model, seed=5):
    return {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": seed,
            "steps": 3,
            "cfg": 4.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["pos", 0],
            "negative": ["neg", 0],
            "latent_image": ["empty", 0],
            "denoise": 1.0,
        },
    }


def sampler_custom(model, seed):
    """SamplerCustom on the prompt's "sampler" and "sched" nodes."""
    return {
        "class_type": "SamplerCustom",
        "inputs": {
            "model": model,
            "add_noise": True,
            "noise_seed": seed,
            "cfg": 4.0,
            "positive": ["pos", 0],
            "negative": ["neg", 0],
            "sampler": ["sampler", 0],
            "sigmas": ["sched", 0],
            "latent_image": ["empty", 0],
        },
    }


def save(node, prefix):
    return {"class_type": "SaveLatent", "inputs": {"samples": [node, 0], "filename_prefix": prefix}}


def test_object_info_lists_the_nodes_with_their_contract_inputs(comfy_server):
    info = comfy_server.get("/object_info/SoluneExpertHandoff")["SoluneExpertHandoff"]
    assert list(info["input"]["required"]) == ["structure_model", "detail_model", "switch"]
    assert list(info["input"]["optional"]) == ["blend_width"]
    for node_id, inputs in [
        ("SoluneSamplerSolDDPM", ["eta"]),
        ("SoluneSamplerLuneEuler", ["quantize_timesteps"]),
        ("SoluneSamplerEpsilonDDIM", ["eta"]),
        ("SoluneLuneScheduler", ["steps", "shift", "denoise"]),
    ]:
        node = comfy_server.get(f"/object_info/{node_id}")[node_id]
        assert list(node["input"]["required"]) == inputs


def test_handoff_over_http_switch_at_end_is_sol_alone_and_mid_switch_is_not(comfy_server):
    prompt = base_prompt()
    prompt["end"] = {
        "class_type": "SoluneExpertHandoff",
        "inputs": {"structure_model": ["sol", 0], "detail_model": ["lune", 0], "switch": 1.0},
    }
    prompt["mid"] = {
        "class_type": "SoluneExpertHandoff",
        "inputs": {"structure_model": ["sol", 0], "detail_model": ["lune", 0], "switch": 0.5, "blend_width": 0.2},
    }
    prompt["k_sol"], prompt["k_end"], prompt["k_mid"] = ksampler(["sol", 0]), ksampler(["end", 0]), ksampler(["mid", 0])
    prompt["s_sol"], prompt["s_end"], prompt["s_mid"] = save("k_sol", "sol"), save("k_end", "end"), save("k_mid", "mid")
    hist = comfy_server.run_prompt(prompt)
    assert hist["status"]["status_str"] == "success", hist["status"]
    sol, end, mid = (load_output_latent(comfy_server, hist, n) for n in ("s_sol", "s_end", "s_mid"))
    assert torch.isfinite(mid).all()
    assert (end - sol).abs().max().item() <= 1e-5 * max(1.0, sol.abs().max().item())
    assert (mid - sol).abs().max().item() > 1e-3


def test_lune_sampler_and_scheduler_over_http(comfy_server):
    prompt = base_prompt()
    prompt["sched"] = {"class_type": "SoluneLuneScheduler", "inputs": {"steps": 3, "shift": 2.0, "denoise": 1.0}}
    prompt["sampler"] = {"class_type": "SoluneSamplerLuneEuler", "inputs": {"quantize_timesteps": True}}
    prompt["custom"] = sampler_custom(["lune", 0], seed=3)
    prompt["out"] = save("custom", "lune")
    hist = comfy_server.run_prompt(prompt)
    assert hist["status"]["status_str"] == "success", hist["status"]
    out = load_output_latent(comfy_server, hist, "out")
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all() and out.abs().max() > 1e-3


def test_switch_out_of_range_is_rejected_with_the_input_named(comfy_server):
    prompt = base_prompt()
    prompt["h"] = {
        "class_type": "SoluneExpertHandoff",
        "inputs": {"structure_model": ["sol", 0], "detail_model": ["lune", 0], "switch": 1.5},
    }
    prompt["k"], prompt["s"] = ksampler(["h", 0]), save("k", "bad")
    with pytest.raises(PromptRejected) as err:
        comfy_server.run_prompt(prompt)
    assert err.value.status == 400
    assert "switch" in str(err.value.body.get("node_errors", {}).get("h", ""))


def test_sampler_given_the_wrong_prediction_type_fails_with_advice(comfy_server):
    prompt = base_prompt()
    prompt["sampler"] = {"class_type": "SoluneSamplerSolDDPM", "inputs": {"eta": 1.0}}
    prompt["sched"] = {"class_type": "SoluneLuneScheduler", "inputs": {"steps": 2, "shift": 2.0, "denoise": 1.0}}
    prompt["custom"] = sampler_custom(["lune", 0], seed=4)
    prompt["out"] = save("custom", "mismatch")
    hist = comfy_server.run_prompt(prompt)
    assert hist["status"]["status_str"] == "error"
    messages = [m for m in hist["status"]["messages"] if m[0] == "execution_error"]
    text = messages[0][1]["exception_message"]
    assert "needs a model patched as sol_v" in text and "lune_flow" in text and "SolunePredictionType" in text


WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def widget_names(info):
    """The widget values the editor saves for a node, in order (with control_after_generate and
    the image-upload button)."""
    names = []
    for section in ("required", "optional"):
        for name, spec in info["input"].get(section, {}).items():
            type_, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            if isinstance(type_, list) or type_ in WIDGET_TYPES:
                names.append(name)
                if opts.get("control_after_generate"):
                    names.append("control_after_generate")
                if opts.get("image_upload"):
                    names.append("upload")
    return names


@pytest.mark.parametrize("name", ["sol_text_to_image.json", "lune_img2img.json", "sol_lune_handoff.json"])
def test_example_workflow_widgets_match_the_servers_node_definitions(comfy_server, name):
    import json
    from pathlib import Path

    wf = json.loads((Path(__file__).resolve().parents[1] / "example_workflows" / name).read_text())
    for node in wf["nodes"]:
        if node["type"] in ("Note", "MarkdownNote"):  # frontend-only: the server has no definition
            continue
        info = comfy_server.get(f"/object_info/{node['type']}")[node["type"]]
        names = widget_names(info)
        assert len(node["widgets_values"]) == len(names), (node["type"], names, node["widgets_values"])
        for value, wname in zip(node["widgets_values"], names):
            spec = info["input"].get("required", {}).get(wname) or info["input"].get("optional", {}).get(wname)
            if spec and isinstance(spec[0], list) and wname not in ("unet_name", "clip_name", "vae_name", "image"):
                assert value in spec[0], (node["type"], wname, value)
            if spec and spec[0] == "COMBO":
                assert value in spec[1]["options"], (node["type"], wname, value)
