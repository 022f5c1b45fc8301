"""Tier 2, through the HTTP API: SolunePredictionType in a headless ComfyUI server, loaded from an
odd custom_nodes folder name, gives the same latents as ComfyUI's stock sampling nodes."""

from __future__ import annotations

import pytest
import torch
from comfy_harness import PromptRejected, load_output_latent, tiny_sd15_prompt_nodes

pytestmark = pytest.mark.comfyui


def graph(patch_node: dict, prefix: str, sampler="euler", denoise=1.0):
    return {
        **tiny_sd15_prompt_nodes("a lighthouse at dusk", vae=False),
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": patch_node,
        "7": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["6", 0],
                "seed": 11,
                "steps": 4,
                "cfg": 5.0,
                "sampler_name": sampler,
                "scheduler": "normal",
                "positive": ["3", 0],
                "negative": ["4", 0],
                "latent_image": ["5", 0],
                "denoise": denoise,
            },
        },
        "8": {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": f"solune_tests/{prefix}"}},
    }


STOCK = {
    "epsilon": {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["1", 0], "sampling": "eps", "zsnr": False}},
    "sol_v": {
        "class_type": "ModelSamplingDiscrete",
        "inputs": {"model": ["1", 0], "sampling": "v_prediction", "zsnr": False},
    },
    "lune_flow": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 2.0}},
}


def solune(prediction, shift=2.0):
    return {
        "class_type": "SolunePredictionType",
        "inputs": {"model": ["1", 0], "prediction": prediction, "shift": shift, "zero_terminal_snr": False},
    }


def test_the_pack_loads_from_any_folder_name(comfy_server):
    info = comfy_server.get("/object_info/SolunePredictionType")["SolunePredictionType"]
    assert info["input"]["required"]["prediction"][1]["options"] == ["epsilon", "sol_v", "lune_flow"] or info["input"][
        "required"
    ]["prediction"][0] == ["epsilon", "sol_v", "lune_flow"]
    assert "Solune_Pack-dev.v2" in str(next(comfy_server.base.glob("custom_nodes/*")))
    failed = [line for line in comfy_server.log_tail(400).splitlines() if "IMPORT FAILED" in line and "Solune" in line]
    assert not failed, failed


@pytest.mark.parametrize("prediction", ["epsilon", "sol_v", "lune_flow"])
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_http_run_equals_the_stock_sampling_node(comfy_server, prediction, sampler):
    ours = comfy_server.run_prompt(graph(solune(prediction), f"ours_{prediction}_{sampler}", sampler))
    stock = comfy_server.run_prompt(graph(STOCK[prediction], f"stock_{prediction}_{sampler}", sampler))
    assert ours["status"]["status_str"] == "success", ours["status"]
    a, b = load_output_latent(comfy_server, ours, "8"), load_output_latent(comfy_server, stock, "8")
    assert a.shape == (1, 4, 8, 8)
    assert torch.isfinite(a).all()
    diff = (a - b).abs().max().item()
    assert diff <= 1e-5, diff


@pytest.mark.parametrize(
    "shift,needle",
    [(0.0, "shift must be a number > 0"), (-3.0, "got -3.0")],
)
def test_a_bad_shift_is_one_validation_error_under_shift(comfy_server, shift, needle):
    with pytest.raises(PromptRejected) as err:
        comfy_server.run_prompt(graph(solune("lune_flow", shift), "bad"))
    assert err.value.status == 400
    node_errors = err.value.body["node_errors"]
    assert list(node_errors) == ["6"]
    errors = node_errors["6"]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == ["shift"]
    assert needle in errors[0]["details"]


def test_a_bad_prediction_is_refused_naming_the_input_before_sampling(comfy_server):
    """Refused by ComfyUI's validation where it checks V3 combo values (after 0.3.64), one error under
    `prediction`; else by the node when it runs, naming the input, before the sampler starts."""
    try:
        hist = comfy_server.run_prompt(graph(solune("v_prediction", 2.0), "bad"))
    except PromptRejected as err:
        errors = err.body["node_errors"]["6"]["errors"]
        assert [e["extra_info"]["input_name"] for e in errors] == ["prediction"]
        assert "'v_prediction'" in errors[0]["details"]
        return
    failure = next(m[1] for m in hist["status"]["messages"] if m[0] == "execution_error")
    assert failure["node_id"] == "6" and "7" not in failure["executed"]
    assert "prediction must be one of epsilon, sol_v, lune_flow; got 'v_prediction'" in failure["exception_message"]
