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
    assert "node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: 'missing.safetensors'" in stream.getvalue()
