"""The pack is ready for the Comfy Registry: licence, icon, publish workflow, changelog, and a
`requires-comfyui` that the ComfyUI the tier-2 tests use satisfies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RAW = "https://raw.githubusercontent.com/"


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_the_licence_file_is_the_licence_pyproject_declares():
    assert PYPROJECT["project"]["license"] == {"text": "MIT"}
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_the_registry_icon_is_a_file_of_this_repository():
    comfy = PYPROJECT["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] == "Solune"
    repo_url = PYPROJECT["project"]["urls"]["Repository"]
    owner_repo = repo_url.removeprefix("https://github.com/")
    icon = comfy["Icon"]
    assert icon.startswith(f"{RAW}{owner_repo}/main/"), icon
    path = REPO / icon.removeprefix(f"{RAW}{owner_repo}/main/")
    assert path.is_file() and path.suffix in (".svg", ".png")
    if path.suffix == ".svg":
        assert path.read_text().lstrip().startswith("<svg")


def test_the_publish_workflow_uses_the_registry_action_on_pyproject_changes():
    text = (REPO / ".github" / "workflows" / "publish.yml").read_text()
    assert "uses: Comfy-Org/publish-node-action@" in text
    assert "paths: [pyproject.toml]" in text and "branches: [main]" in text
    assert "secrets.REGISTRY_ACCESS_TOKEN" in text
    assert '["project"]["version"]' in text  # publishes only when the version itself changed


def test_the_changelog_has_this_version():
    version = PYPROJECT["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    headings = re.findall(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert headings and headings[0] == version


def test_torch_is_a_test_requirement_never_a_run_time_one():
    assert not any(dep.startswith("torch") for dep in PYPROJECT["project"]["dependencies"])
    assert "torch" in PYPROJECT["project"]["optional-dependencies"]["test"]


@pytest.mark.comfyui
def test_the_comfyui_under_test_satisfies_requires_comfyui(comfy):
    """`requires-comfyui` is true to what is tested: the ComfyUI running tier 2 meets it."""
    from comfy_harness import locate_comfyui

    path, _ = locate_comfyui()
    text = (path / "comfyui_version.py").read_text()
    tested = version_tuple(re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1))
    spec = PYPROJECT["tool"]["comfy"]["requires-comfyui"]
    assert spec.startswith(">=")
    assert tested >= version_tuple(spec), f"tier 2 runs ComfyUI {tested}, below {spec}"


def test_the_readme_install_lines_name_this_repository_and_the_registry_id():
    readme = (REPO / "README.md").read_text()
    assert f"git clone {PYPROJECT['project']['urls']['Repository']} " in readme
    assert f"comfy node install {PYPROJECT['project']['name']}" in readme


def test_the_tested_comfyui_versions_are_named_alike_everywhere():
    """pyproject's tested-comfyui is what .ci/run prepares, what the GitHub workflow checks out by tag,
    what README says, and starts at requires-comfyui."""
    tested = PYPROJECT["tool"]["solune"]["tested-comfyui"]
    assert len(tested) >= 2 and len(set(tested)) == len(tested)
    assert PYPROJECT["tool"]["comfy"]["requires-comfyui"] == f">={min(tested, key=version_tuple)}"
    workflow = (REPO / ".github" / "workflows" / "tests.yml").read_text()
    matrix = re.search(r"comfyui:\s*\[([^\]]*)\]", workflow).group(1)
    assert [v.strip().strip("\"'") for v in matrix.split(",")] == [f"v{v}" for v in tested]
    assert "tested-comfyui" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert f"Tested with ComfyUI {' and '.join(tested)}" in readme
    for version in tested:
        assert f"**ComfyUI {version}**" in readme


def test_the_registry_table_names_the_web_folder():
    """ComfyUI serves web/ under the project name only when [tool.comfy] names it (the help panel asks there)."""
    assert PYPROJECT["tool"]["comfy"]["web"] == "web" and (REPO / "web" / "docs").is_dir()
