"""The README's runner examples (the block after `<!-- runner-examples -->`) work as printed: tier 1
checks that every `--set` names a node of its workflow; tier 2 runs each line on a real ComfyUI, with
the placeholder `/path/to/ComfyUI` replaced by the ComfyUI under test and `--comfyui-args
"--base-directory TMP"` appended (so the run writes nothing into that ComfyUI's folder), and finds
every `--set` value in the prompt the runner prints."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_harness import locate_comfyui

from solune.workflow.overrides import check_overrides, parse_override, resolve_overrides

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = "/path/to/ComfyUI"


def readme_examples() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    marker = text.index("<!-- runner-examples -->")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.S)
    lines = [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


COMMANDS = readme_examples()


def options(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == name]


def test_the_readme_shows_runner_examples_with_a_subgraph_inner_id_and_a_title_without_suffix():
    assert len(COMMANDS) >= 2
    for command in COMMANDS:
        assert command.startswith("python -m solune.run "), command
    sets = [s for command in COMMANDS for s in options(shlex.split(command), "--set")]
    assert "Sol UNet.unet_name=my_sol.safetensors" in sets
    assert any(re.match(r"\d+:\d+\.", s) for s in sets), "no example names a node inside a subgraph"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_set_in_the_readme_names_a_node_of_its_workflow(command):
    argv = shlex.split(command)
    workflow = json.loads((REPO / argv[3]).read_text())
    check_overrides(workflow, [parse_override(s) for s in options(argv, "--set")])


@pytest.mark.comfyui
@pytest.mark.parametrize("command", COMMANDS)
def test_the_readme_runner_example_runs_as_printed(command, tmp_path):
    comfyui, why = locate_comfyui()
    if comfyui is None:
        pytest.skip(f"tier 2 skipped: {why}")
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "solune.run"] and PLACEHOLDER in argv
    argv = [sys.executable, *argv[1:]]
    argv[argv.index(PLACEHOLDER)] = str(comfyui)
    for name in ("custom_nodes", "input", "output", "models", "user", "temp"):
        (tmp_path / name).mkdir()
    argv += ["--comfyui-args", f"--base-directory {tmp_path}"]
    env = {**os.environ, "SOLUNE_KEEP_COMFYUI_LOG": ""}
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, f"{command}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}"
    prompt = json.loads(result.stdout)
    workflow = json.loads((REPO / argv[3]).read_text())
    overrides = [parse_override(s) for s in options(argv, "--set")]
    for override, node_id in zip(overrides, resolve_overrides(workflow, overrides)):
        assert prompt[node_id]["inputs"][override.input] == override.value, override.text
