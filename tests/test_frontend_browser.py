"""Tier 2 in a real browser: ComfyUI's own frontend (the comfyui-frontend-package the server serves),
in headless Chromium, loads every example workflow as a user would open it.

For each file in example_workflows/ (found when the tests run): every node is there with a
registered type, no warning opens (1.27.10's missing-nodes dialog, 1.49.6's error toast), every
node's widgets hold the file's values, the links are the file's, the saved view shows every node
below the menu bar, no page error is thrown and no console error comes from Solune, and the
frontend's own `app.graphToPrompt()` equals `solune.run`'s conversion (workflow/convert.py) node
for node, `_meta.title` included; the same for a workflow with nested subgraphs and promoted widgets
(tests/fixtures/ui_nested_subgraphs.json).

Needs Debian's `chromium` (or SOLUNE_CHROMIUM=/path/to/chrome) and Python `playwright` in the
Python running the tests; no browser is downloaded. Skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from solune.workflow import twins, view
from solune.workflow.convert import ui_to_api

pytestmark = pytest.mark.comfyui

EXAMPLES = twins.ui_files()
CHROMIUM = Path(os.environ.get("SOLUNE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH, HEIGHT = view.WINDOW
# the first visit opens the template browser; a user who has been here before does not see it
SETTINGS = {"Comfy.TutorialCompleted": True}
READY = (
    "() => window.app && window.app.graph && window.LiteGraph"
    " && window.LiteGraph.registered_node_types.SoluneTiledSampler"
)

# Frontend 1.27.10 warns of missing nodes in a dialog; 1.49.6 shows an error toast ("N errors found")
# whose "View details" opens a panel with one group per kind of error (missing nodes, missing models).
ERROR_OVERLAY = '[data-testid="error-overlay"]'
MISSING_NODE_GROUP = '[data-testid="error-group-missing-node"]'
# The model files the examples' loaders name are made (empty) in the test server's model folders, so
# that a frontend that checks them (1.49.6) has no missing model to report either.
MODEL_FOLDERS = {
    "UNETLoader": ("unet_name", "diffusion_models"),
    "CLIPLoader": ("clip_name", "text_encoders"),
    "VAELoader": ("vae_name", "vae"),
    "ControlNetLoader": ("control_net_name", "controlnet"),
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoints"),
    "ModelPatchLoader": ("name", "model_patches"),
}

GRAPH_STATE = (
    """() => {
  const ERROR_OVERLAY = '"""
    + ERROR_OVERLAY
    + """';
  const canvas = document.querySelector('#graph-canvas').getBoundingClientRect();
  const covers = Array.from(document.querySelectorAll('.comfyui-body-top, .workflow-tabs'))
    .map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
  const ds = window.app.canvas.ds;
  return {
    nodes: window.app.graph.nodes.map(n => ({
      id: n.id, type: n.type, mode: n.mode,
      registered: !!window.LiteGraph.registered_node_types[n.type],
      widgets_values: n.serialize().widgets_values ?? null,
      box: Array.from(n.getBounding()),
    })),
    links: window.app.graph.serialize().links,
    dialogs: Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText.slice(0, 400)),
    overlays: Array.from(document.querySelectorAll(ERROR_OVERLAY)).map(d => d.innerText.slice(0, 400)),
    toasts: Array.from(document.querySelectorAll('.p-toast-message')).map(d => d.innerText.slice(0, 400)),
    scale: ds.scale, offset: Array.from(ds.offset),
    canvas: [canvas.left, canvas.top, canvas.right, canvas.bottom],
    menu_bottom: Math.max(0, ...covers.map(r => r.bottom)),
  };
}"""
)


class Frontend:
    """One browser page on the test server's frontend, recording console and page errors."""

    def __init__(self, page):
        self.page = page
        self.errors: list[tuple[str, str, str]] = []
        self.startup_errors: list[tuple[str, str, str]] = []
        page.on(
            "console",
            lambda m: self.errors.append(("console", m.text, m.location.get("url", ""))) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(("page", str(e), e.stack or "")))

    def load(self, workflow: dict) -> dict:
        self.errors.clear()
        # close the toasts an earlier load left (1.27.10's alert that a file fails its workflow schema is one)
        self.page.evaluate("() => document.querySelectorAll('.p-toast-close-button').forEach(b => b.click())")
        self.page.wait_for_timeout(200)
        self.page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
        self.page.wait_for_timeout(300)  # let a warning dialog open if one is coming
        return self.page.evaluate(GRAPH_STATE)

    def prompt(self) -> dict:
        return self.page.evaluate("async () => (await window.app.graphToPrompt()).output")


def links(saved: list) -> list[tuple]:
    """Links as (id, from node, from slot, to node, to slot, type), ids as text (1.49.6 may write either)."""
    return sorted(tuple(str(v) for v in link[:6]) for link in saved)


def from_solune(errors: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [e for e in errors if "solune" in " ".join(e).lower()]


@pytest.fixture(scope="module")
def frontend(comfy_server):
    if not CHROMIUM.is_file():
        pytest.skip(
            f"browser tier skipped: no Chromium at {CHROMIUM} (apt-get install chromium, "
            "or set SOLUNE_CHROMIUM to a Chrome/Chromium binary)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.skip(
            f"browser tier skipped: Python playwright is not installed in this Python ({error}); "
            "pip install playwright (its browser download is not needed)"
        )
    settings = comfy_server.base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    placeholders = []
    for path in EXAMPLES:  # the pictures the LoadImage nodes name, so their previews load
        for node in twins.all_nodes(json.loads(path.read_text())):
            if node["type"] == "LoadImage":
                write_png(comfy_server.base / "input" / node["widgets_values"][0])
            if node["type"] in MODEL_FOLDERS:
                name, folder = MODEL_FOLDERS[node["type"]]
                value = node["widgets_values"][0] if isinstance(node["widgets_values"], list) else None
                target = comfy_server.base / "models" / folder / str(value or "")
                if value and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(b"")
                    placeholders.append(target)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            front = Frontend(page)
            page.goto(comfy_server.url)
            page.wait_for_function(READY, timeout=120_000)
            front.startup_errors = list(front.errors)
            yield front
        finally:
            browser.close()
            for target in placeholders:
                target.unlink()


def write_png(path: Path) -> None:
    from PIL import Image

    if not path.exists():
        Image.new("RGB", (64, 48), (90, 120, 160)).save(path)


def test_the_frontend_starts_with_solune_loaded_and_no_error_from_solune(frontend, comfy_server):
    assert from_solune(frontend.startup_errors) == []
    solune_types = frontend.page.evaluate(
        "() => Object.keys(window.LiteGraph.registered_node_types).filter(t => t.startsWith('Solune')).sort()"
    )
    served = sorted(k for k, v in comfy_server.get("/object_info").items() if k.startswith("Solune"))
    assert solune_types == served and len(served) >= 9


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_in_the_frontend_as_saved_and_queues_what_the_runner_converts(frontend, comfy_server, path):
    workflow = json.loads(path.read_text())
    state = frontend.load(workflow)
    assert state["dialogs"] == [], f"{path.name}: the frontend opened a dialog on load"
    assert state["overlays"] == [], f"{path.name}: the frontend reports errors on load"
    assert state["toasts"] == [], f"{path.name}: the frontend shows a message on load (a schema alert?)"

    # frontend 1.49.6 keeps node ids as strings, 1.27.10 as the file's numbers
    loaded = {str(n["id"]): n for n in state["nodes"]}
    saved = {str(n["id"]): n for n in workflow["nodes"]}
    assert {i: n["type"] for i, n in loaded.items()} == {i: n["type"] for i, n in saved.items()}
    assert [i for i, n in loaded.items() if not n["registered"]] == []
    assert {i: n["mode"] for i, n in loaded.items()} == {i: n.get("mode", 0) for i, n in saved.items()}
    for node_id, node in saved.items():
        if "widgets_values" in node:  # a node without widgets: 1.27.10 keeps its [], 1.49.6 writes nothing
            assert (loaded[node_id]["widgets_values"] or []) == node["widgets_values"], f"{path.name}: node {node_id}"
    assert links(state["links"]) == links(workflow["links"])

    # the saved view, as the frontend restored it, shows every node (as drawn) below the menu bar
    assert (state["scale"], state["offset"]) == (view.saved_view(workflow)[1], list(view.saved_view(workflow)[0]))
    left, top, right, bottom = state["canvas"]
    top = max(top, state["menu_bottom"])
    scale, (ox, oy) = state["scale"], state["offset"]
    for node_id, node in loaded.items():
        x, y, w, h = node["box"]
        x0, y0 = state["canvas"][0] + (x + ox) * scale, state["canvas"][1] + (y + oy) * scale
        x1, y1 = x0 + w * scale, y0 + h * scale
        assert left <= x0 and top <= y0 and x1 <= right and y1 <= bottom, (
            f"{path.name}: node {node_id} is drawn at ({x0:.0f}, {y0:.0f})–({x1:.0f}, {y1:.0f}), outside the "
            f"free canvas ({left:.0f}, {top:.0f})–({right:.0f}, {bottom:.0f}); run python -m solune.workflow.view"
        )

    expected = ui_to_api(workflow, comfy_server.get("/object_info"))
    assert frontend.prompt() == expected
    page_errors = [e for e in frontend.errors if e[0] == "page"]
    assert page_errors == [] and from_solune(frontend.errors) == []


NESTED = Path(__file__).parent / "fixtures" / "ui_nested_subgraphs.json"


def test_nested_subgraphs_with_promoted_widgets_queue_what_the_runner_converts(frontend, comfy_server):
    """A workflow saved by frontend 1.49.6: subgraph 'Tiled 2x refine' (node 15, and again as node 16 with
    other promoted values) holds subgraph 'Upscale and encode' (node 14 inside it), whose scale_by is
    promoted through both levels. Inner nodes get path ids (`15:14:5`)."""
    workflow = json.loads(NESTED.read_text())
    state = frontend.load(workflow)
    assert (state["dialogs"], state["toasts"]) == ([], [])
    assert sorted(str(n["id"]) for n in state["nodes"]) == sorted(str(n["id"]) for n in workflow["nodes"])
    prompt = frontend.prompt()
    assert prompt == ui_to_api(workflow, comfy_server.get("/object_info"))
    assert {"15:14:5", "15:9", "16:14:5", "16:9"} <= set(prompt)
    assert [e for e in frontend.errors if e[0] == "page"] == []


@pytest.mark.parametrize("host, promoted", [("15", 1), ("16", 1), ("15", 3)])
def test_a_promoted_value_reaches_the_inner_node_in_the_frontend_and_the_runner_alike(
    frontend, comfy_server, host, promoted
):
    """The comparison can fail: another value in the subgraph node's widgets_values (scale_by, two levels
    down; layout, one level down) changes that input of the inner node in both prompts."""
    workflow = json.loads(NESTED.read_text())
    node = next(n for n in workflow["nodes"] if str(n["id"]) == host)
    values = list(node["widgets_values"]) + [None] * 4
    values[promoted] = 3.25 if promoted == 1 else "quadtree"
    node["widgets_values"] = values[: max(len(node["widgets_values"]), promoted + 1)]
    node.pop("widgets_values_named", None)
    frontend.load(workflow)
    inner, name = (f"{host}:14:5", "scale_by") if promoted == 1 else (f"{host}:9", "layout")
    expected = ui_to_api(workflow, comfy_server.get("/object_info"))
    assert expected[inner]["inputs"][name] == values[promoted]
    assert frontend.prompt()[inner]["inputs"][name] == values[promoted]


def test_a_muted_subgraph_node_leaves_out_the_nodes_inside_it(frontend, comfy_server):
    """Muting subgraph node 16 (and the SaveImage it feeds) leaves its inner nodes out of the runner's prompt,
    as frontend 1.49.6 does; 1.27.10 still queues them (nothing uses them): apart from those, both agree."""
    workflow = json.loads(NESTED.read_text())
    for node in workflow["nodes"]:
        if node["id"] in (16, 17):
            node["mode"] = 2
    frontend.load(workflow)
    prompt = frontend.prompt()
    expected = ui_to_api(workflow, comfy_server.get("/object_info"))
    inner = {i for i in prompt if i.startswith("16:")}
    assert not any(i.startswith("16:") or i == "17" for i in expected)
    assert {i: n for i, n in prompt.items() if i not in inner} == expected


def test_a_workflow_with_an_unknown_node_type_is_caught(frontend):
    """The checks above can fail: an unknown type stays unregistered and the frontend warns of it (1.27.10
    in a dialog; 1.49.6 in its error toast, whose details list the missing node types). Runs last: it leaves
    the error panel open."""
    workflow = json.loads(EXAMPLES[0].read_text())
    workflow["nodes"][0]["type"] = "SoluneNoSuchNode"
    state = frontend.load(workflow)
    shown = state["dialogs"] + state["overlays"]
    try:
        assert shown, "the frontend showed no warning for an unknown node type"
        if state["overlays"]:
            frontend.page.locator(ERROR_OVERLAY).get_by_text("View details").click()
            group = frontend.page.locator(MISSING_NODE_GROUP)
            group.wait_for(timeout=10_000)
            shown.append(group.inner_text())
        assert any("SoluneNoSuchNode" in text for text in shown), shown
        assert [str(n["id"]) for n in state["nodes"] if not n["registered"]] == [str(workflow["nodes"][0]["id"])]
    finally:
        frontend.page.keyboard.press("Escape")
        frontend.page.wait_for_timeout(200)
