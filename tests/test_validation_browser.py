"""Tier 2 in a real browser (each ComfyUI's own frontend in headless Chromium): what a user sees when
Solune refuses an input or warns during a run.

- min_denoise > max_denoise, queued from the editor: the frontend shows exactly two errors, under
  min_denoise and max_denoise (1.27.10: the error dialog's list; 1.49.6: the errors panel behind
  "View details"), not one per input of the node.
- An all-zero mask: the run's warnings appear as toasts naming the node, each once, although ComfyUI
  lists web/solune_warnings.js twice (under the folder's name and the project's).

Needs Debian's `chromium` (or SOLUNE_CHROMIUM) and Python `playwright`; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.comfyui

CHROMIUM = Path(os.environ.get("SOLUNE_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
READY = "() => window.app && window.app.graph && window.LiteGraph.registered_node_types.SoluneTileMap"

# Builds EmptyLatentImage (64×64) → NODE → PreviewImage in the editor, sets its widgets, queues it like the
# Run button (app.queuePrompt), and returns the node's title. NODE is SoluneTileMap, or SoluneTiledImg2Img
# with the tiny UNet (its tile_map output previewed). `mask`: an all-zero SolidMask as denoise_mask.
BUILD = """async ({type, widgets, mask}) => {
  const g = app.graph; g.clear();
  const add = (t) => { const n = LiteGraph.createNode(t); g.add(n); return n; };
  const set = (n, k, v) => { n.widgets.find(w => w.name == k).value = v; };
  const latent = add("EmptyLatentImage"), node = add(type), preview = add("PreviewImage");
  set(latent, "width", 64); set(latent, "height", 64);
  latent.connect(0, node, node.findInputSlot("latent"));
  node.connect(type == "SoluneTileMap" ? 0 : 1, preview, 0);
  if (type != "SoluneTileMap") {
    const unet = add("UNETLoader"); set(unet, "unet_name", "tiny_sd15_0.safetensors");
    unet.connect(0, node, node.findInputSlot("model"));
  }
  if (mask) {
    const m = add("SolidMask"); set(m, "value", 0); set(m, "width", 64); set(m, "height", 64);
    m.connect(0, node, node.findInputSlot("denoise_mask"));
  }
  for (const [k, v] of Object.entries(widgets)) set(node, k, v);
  await app.queuePrompt(0);
  return node.title;
}"""


@pytest.fixture(scope="module")
def page(comfy_server):
    if not CHROMIUM.is_file():
        pytest.skip(f"browser tier skipped: no Chromium at {CHROMIUM} (or set SOLUNE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.skip(f"browser tier skipped: Python playwright is not installed in this Python ({error})")
    settings = comfy_server.base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    if not settings.exists():
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.solune_errors = []
            page.on(
                "pageerror",
                lambda e: page.solune_errors.append(str(e)) if "solune" in f"{e} {e.stack}".lower() else None,
            )
            page.on("console", lambda m: record_console_error(page, m, comfy_server.url))
            page.goto(comfy_server.url)
            page.wait_for_function(READY, timeout=120_000)
            page.wait_for_timeout(1000)
            yield page
        finally:
            browser.close()


def record_console_error(page, message, server_url: str) -> None:
    """Keep console errors about Solune, except failed fetches from other hosts (1.49.6 asks
    api.comfy.org about each node type; the test machine has no network)."""
    url = message.location.get("url", "")
    text = f"{message.text} {url}"
    if message.type != "error" or "solune" not in text.lower():
        return
    if url and not url.startswith(server_url) and url.startswith(("http://", "https://")):
        return
    page.solune_errors.append(text)


def close_popups(page) -> None:
    page.keyboard.press("Escape")
    page.evaluate(
        "() => document.querySelectorAll('.p-dialog-close-button, .p-dialog-header-close, .p-toast-close-button')"
        ".forEach(b => b.click())"
    )
    page.wait_for_timeout(300)


def errors_shown(page, title: str) -> list[str]:
    """The inputs the frontend shows a validation error under, one entry per error shown: the error
    dialog's list (1.27.10) or the errors panel that "View details" opens (1.49.6), whichever appears."""
    page.wait_for_function(
        "() => document.querySelector('.p-dialog') || Array.from(document.querySelectorAll('button'))"
        ".some(b => b.innerText.trim() == 'View details')",
        timeout=30_000,
    )
    dialogs = page.evaluate("() => Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText)")
    failed = [text for text in dialogs if "failed validation" in text]
    if failed:
        bullets = [line[2:] for line in failed[0].splitlines() if line.startswith("- ")]
        return [re.search(r"failed for node: (\w+) - ", line).group(1) for line in bullets]
    page.get_by_text("View details").first.click()
    page.wait_for_function("() => document.body.innerText.includes('Errors detected')", timeout=30_000)
    page.wait_for_timeout(500)
    lines = [line.strip() for line in page.evaluate("() => document.body.innerText").splitlines()]
    return [m.group(1) for line in lines if (m := re.fullmatch(rf"{re.escape(title)} - (\w+)", line))]


@pytest.mark.parametrize("node_type", ["SoluneTileMap", "SoluneTiledImg2Img"])
def test_min_above_max_shows_two_errors_under_the_two_inputs(page, node_type):
    try:
        title = page.evaluate(
            BUILD, {"type": node_type, "widgets": {"min_denoise": 0.8, "max_denoise": 0.65}, "mask": False}
        )
        shown = errors_shown(page, title)
        assert sorted(shown) == ["max_denoise", "min_denoise"], shown
        assert page.evaluate("() => Object.values(app.lastNodeErrors).flatMap(n => n.errors).length") == 2
    finally:
        close_popups(page)
    assert page.solune_errors == []


def toasts(page) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('.p-toast-message')).map(t => t.innerText)")


def test_an_all_zero_mask_is_explained_in_a_toast_naming_the_node(page, comfy_server):
    widgets = {"min_denoise": 0.0, "max_denoise": 0.6, "scale_mode": "mask", "tile_width": 768, "tile_height": 32}
    widgets["overlap"] = 8
    try:
        title = page.evaluate(BUILD, {"type": "SoluneTileMap", "widgets": widgets, "mask": True})
        deadline = time.time() + 60
        while not any("Nothing will change" in t for t in toasts(page)) and time.time() < deadline:
            page.wait_for_timeout(250)
        page.wait_for_timeout(1000)  # a duplicate listener would have toasted again by now
        shown = toasts(page)
        assert shown, f"no toast; server log:\n{comfy_server.log_tail(30)}"
        empty = [t for t in shown if "Nothing will change: denoise_mask is all zero" in t]
        clamped = [t for t in shown if "tile_width=768 px is larger than the image (64 px)" in t]
        assert len(empty) == 1 and len(clamped) == 1, shown
        assert f"Solune: {title} #" in empty[0] and "Mask Editor" in empty[0]
        assert not any("tile_height" in t for t in shown)
    finally:
        close_popups(page)
    assert page.solune_errors == []
