"""Every node has a help page at web/docs/<NodeId>.md, and (tier 2) ComfyUI serves it."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "web" / "docs"


def node_ids():
    import solune

    ext = asyncio.run(solune.comfy_entrypoint())
    return [n.define_schema().node_id for n in asyncio.run(ext.get_node_list())]


@pytest.mark.comfyui
def test_every_node_has_a_help_page_and_no_page_is_orphaned(comfy):
    ids = node_ids()
    assert len(ids) == 9
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert pages == set(ids)
    for node_id in ids:
        text = (DOCS / f"{node_id}.md").read_text()
        assert text.startswith("# ") and len(text) > 200, node_id


@pytest.mark.comfyui
def test_comfyui_serves_the_help_pages(comfy_server):
    """Served under the project name from pyproject ([tool.comfy] web), whatever the folder is called
    (the test server's folder is "Solune Pack-dev.v2")."""
    for page in sorted(DOCS.glob("*.md")):
        url = f"{comfy_server.url}/extensions/solune/docs/{page.name}"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and r.read().decode() == page.read_text(), url
