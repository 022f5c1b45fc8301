"""Shared fixtures. Tier-2 fixtures skip, with the reason, when no usable ComfyUI is found."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers (analytic, comfy_harness)

from comfy_harness import ComfyServer, import_comfy, locate_comfyui  # noqa: E402


@pytest.fixture(scope="session")
def comfy():
    """ComfyUI imported in this process (CPU)."""
    module, why = import_comfy()
    if module is None:
        pytest.skip(f"tier 2 skipped: {why}")
    return module


@pytest.fixture(scope="session")
def comfy_server(comfy, tmp_path_factory):
    """A headless ComfyUI server with Solune and tiny random-weight models installed."""
    path, _ = locate_comfyui()
    server = ComfyServer(path, tmp_path_factory.mktemp("comfy_base"))
    server.write_models(unet_seeds=(0, 1))
    server.start()
    yield server
    server.stop()
