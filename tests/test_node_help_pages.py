"""Every node has a help page where ComfyUI's node help panel looks first, web/docs/<NodeId>/en.md,
and (tier 2) ComfyUI serves it there."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "web" / "docs"
FORMULA = re.compile(r"[=σ·√∈]")  # what a formula needs and plain words do not


def opening(text: str) -> str:
    """A description's first clause: up to the first colon, semicolon or full stop."""
    return re.split(r"[:;]|\. ", text, maxsplit=1)[0]


def node_ids():
    import solune

    ext = asyncio.run(solune.comfy_entrypoint())
    return [n.define_schema().node_id for n in asyncio.run(ext.get_node_list())]


def test_help_pages_sit_in_one_folder_per_node_with_an_english_page():
    """The panel asks for docs/<NodeId>/<locale>.md first, then docs/<NodeId>.md; a flat page would cost
    one 404 (a console error) per node opened."""
    assert sorted(p.name for p in DOCS.glob("*.md")) == []
    for folder in DOCS.iterdir():
        assert folder.is_dir() and (folder / "en.md").is_file(), folder
        text = (folder / "en.md").read_text()
        assert folder.name.startswith("Solune") and text.startswith("# ") and len(text) > 200, folder.name


@pytest.mark.comfyui
def test_every_node_has_a_help_page_and_no_page_is_orphaned(comfy):
    ids = node_ids()
    assert len(ids) == 11
    assert {p.parent.name for p in DOCS.glob("*/en.md")} == set(ids)


@pytest.mark.comfyui
def test_comfyui_serves_the_help_pages_where_the_panel_asks_first(comfy_server):
    """Served under the project name from pyproject ([tool.comfy] web), whatever the folder is called
    (the test server's folder is "Solune_Pack-dev.v2")."""
    for page in sorted(DOCS.glob("*/en.md")):
        url = f"{comfy_server.url}/extensions/solune/docs/{page.parent.name}/en.md"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and r.read().decode() == page.read_text(), url
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{comfy_server.url}/extensions/solune/docs/SoluneNoSuchNode/en.md", timeout=10)
    assert missing.value.code == 404


def test_every_help_page_opens_with_what_the_node_is_for_before_any_formula():
    """The paragraph under the title says what the node is for and when to use it, in words; the maths after."""
    for page in sorted(DOCS.glob("*/en.md")):
        first = page.read_text().split("\n\n")[1]
        assert not first.startswith(("#", "|", "-")) and not FORMULA.search(first), f"{page.parent.name}: {first}"


def test_the_opening_check_can_fail():
    assert FORMULA.search("Lune's σ schedule for SamplerCustom: σ = k·t/(1 + (k − 1)·t).")
    assert FORMULA.search(opening("DDIM with prediction = epsilon; on the grid"))


@pytest.mark.comfyui
def test_every_node_description_opens_with_what_it_is_for(comfy):
    """The node's tooltip in the editor (its description) starts with the user's job, not a formula."""
    import solune

    ext = asyncio.run(solune.comfy_entrypoint())
    for node in asyncio.run(ext.get_node_list()):
        schema = node.define_schema()
        assert not FORMULA.search(opening(schema.description)), f"{schema.node_id}: {schema.description}"
