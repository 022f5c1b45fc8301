"""Tier 2: the runner converts, queues and downloads against a real ComfyUI on CPU.

Runs when a ComfyUI is found (COMFYUI_PATH, or ../../ when the pack sits in custom_nodes/);
COMFYUI_PYTHON names the Python that has ComfyUI's requirements (default: this one). Needs no
model files.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from _ui_graph import FIXTURES
from comfy_harness import locate_comfyui

from solune import run
from solune.workflow.progress import Console

_FOUND, _WHY = locate_comfyui()
COMFYUI = str(_FOUND) if _FOUND else None
PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)

pytestmark = pytest.mark.comfyui


def comfyui_ready() -> str | None:
    """Why the real server cannot run here, or None."""
    if not COMFYUI:
        return f"tier 2 skipped: {_WHY}"
    if not (Path(COMFYUI) / "main.py").is_file():
        return f"COMFYUI_PATH={COMFYUI} has no main.py"
    probe = subprocess.run([PYTHON, "-c", "import torch, aiohttp"], capture_output=True)
    if probe.returncode != 0:
        return f"{PYTHON} cannot import torch and aiohttp; set COMFYUI_PYTHON"
    return None


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    reason = comfyui_ready()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("comfyui-base")
    for name in ("custom_nodes", "input", "output", "models", "user", "temp"):
        (base / name).mkdir()
    return base


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_ui_workflow_runs_on_a_real_server_and_downloads_both_outputs(base_dir, tmp_path, capsys):
    out = tmp_path / "out"
    stream = io.StringIO()
    code = run.main(
        [
            str(FIXTURES / "ui_latent_and_image.json"),
            "--comfyui",
            COMFYUI,
            "--python",
            PYTHON,
            "--comfyui-args",
            f"--base-directory {base_dir}",
            "--out",
            str(out),
            "--set",
            "Save the latent.filename_prefix=solune_smoke/lat",
        ],
        console=Console(stream=stream),
    )
    assert code == 0, stream.getvalue()
    image = out / "solune_smoke" / "img_00001_.png"
    assert png_size(image) == (48, 40)  # width from the PrimitiveNode, height from widgets_values
    latent = out / "solune_smoke" / "lat_00001_.latent"
    header = json.loads(latent.read_bytes()[8 : 8 + struct.unpack("<Q", latent.read_bytes()[:8])[0]])
    assert header["latent_tensor"]["shape"] == [1, 4, 16, 12]  # LatentUpscale ran, the bypassed 2x did not
    assert sorted(capsys.readouterr().out.split()) == sorted([str(image), str(latent)])


def test_missing_model_is_a_validation_error_from_the_real_server(base_dir, tmp_path):
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    }
    workflow = tmp_path / "missing_model.json"
    workflow.write_text(json.dumps(prompt))
    stream = io.StringIO()
    code = run.main(
        [str(workflow), "--comfyui", COMFYUI, "--python", PYTHON, "--comfyui-args", f"--base-directory {base_dir}"],
        console=Console(stream=stream),
    )
    assert code == 3
    assert (
        "node 4 (CheckpointLoaderSimple), input ckpt_name: Value not in list: ckpt_name: 'missing.safetensors'"
        in stream.getvalue()
    )


# --- exit codes and messages against the real server (the session's comfy_server) ---------------------


def partial_prompt(method: str) -> dict:
    """Two outputs: "15" saves an upscaled latent (its `upscale_method` is `method`), "16" the latent itself."""
    return {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "13": {
            "class_type": "LatentUpscale",
            "_meta": {"title": "Upscale it"},
            "inputs": {"samples": ["5", 0], "upscale_method": method, "width": 96, "height": 96, "crop": "disabled"},
        },
        "15": {"class_type": "SaveLatent", "inputs": {"samples": ["13", 0], "filename_prefix": "partial/up"}},
        "16": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": "partial/plain"}},
    }


def run_on(server, prompt: dict, tmp_path: Path, *args: str) -> tuple[int, str, list[str]]:
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(prompt))
    stream = io.StringIO()
    out = tmp_path / "out"
    code = run.main(
        [str(workflow), "--server", server.url, "--out", str(out), "--no-progress", *args],
        console=Console(stream=stream),
    )
    saved = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) if out.exists() else []
    return code, stream.getvalue(), saved


def test_one_rejected_output_exits_3_naming_the_node_input_message_and_output(comfy_server, tmp_path):
    code, err, saved = run_on(comfy_server, partial_prompt("bogus"), tmp_path)
    assert code == 3, err
    assert "ComfyUI rejected some outputs of the workflow" in err
    assert (
        "node 13 'Upscale it' (LatentUpscale), input upscale_method: Value not in list: upscale_method: 'bogus'" in err
    )
    assert "outputs that will not run: node 15 (SaveLatent)" in err
    assert saved == []


def test_the_same_workflow_made_valid_exits_0(comfy_server, tmp_path):
    code, err, saved = run_on(comfy_server, partial_prompt("nearest-exact"), tmp_path)
    assert code == 0, err
    assert [Path(p).parent.name for p in saved] == ["partial", "partial"] and len(saved) == 2


def test_allow_partial_runs_the_outputs_comfyui_accepted(comfy_server, tmp_path):
    code, err, saved = run_on(comfy_server, partial_prompt("bogus"), tmp_path, "--allow-partial")
    assert code == 0, err
    assert "outputs that will not run: node 15 (SaveLatent)" in err
    assert len(saved) == 1 and Path(saved[0]).name.startswith("plain_")


def test_a_warning_solune_logs_while_a_node_runs_reaches_the_runners_stderr(comfy_server, tmp_path):
    """An all-zero mask (what LoadImage gives for a picture without alpha) and a tile larger than the
    image: both explained on stderr, naming the node, once each."""
    prompt = {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 64}},
        "7": {
            "class_type": "SoluneTileMap",
            "inputs": {
                "latent": ["5", 0],
                "denoise_mask": ["6", 0],
                "min_denoise": 0.0,
                "max_denoise": 0.6,
                "layout": "grid",
                "scale_mode": "mask",
                "tile_width": 768,
                "tile_height": 32,
                "overlap": 8,
                "falloff": "cosine",
                "min_tile": 256,
                "max_tile": 1024,
                "threshold": 0.02,
                "criterion": "variance",
            },
        },
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }
    code, err, _ = run_on(comfy_server, prompt, tmp_path)
    assert code == 0, err
    empty = "warning from node 7 (SoluneTileMap): Nothing will change: denoise_mask is all zero"
    clamped = "warning from node 7 (SoluneTileMap): tile_width=768 px is larger than the image (64 px)"
    assert err.count(empty) == 1 and err.count(clamped) == 1, err
    assert "tile_height" not in err
