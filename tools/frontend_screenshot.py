"""Screenshot an example workflow as ComfyUI's own frontend draws it: docs/refine_graph.png for the README.

Development tool, in a Python with ComfyUI's requirements, Pillow and `playwright` (no browser download:
Debian's /usr/bin/chromium, or SOLUNE_CHROMIUM):

    python tools/frontend_screenshot.py /path/to/ComfyUI [WORKFLOW [OUT.png]]

It starts a throw-away headless ComfyUI with Solune linked (the tests' `ComfyServer`: its own base and
user directories), opens its frontend in headless Chromium, loads the workflow (default
example_workflows/refine_masked_retouch.json) with the README's synthetic picture in its LoadImage,
fits the view to the graph and saves the part of the canvas that holds it. The model names the
loaders show are empty placeholder files; nothing is run.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))

CHROMIUM = Path(os.environ.get("SOLUNE_CHROMIUM", "/usr/bin/chromium"))
WINDOW = (1900, 1100)
SCALE = 1.0  # the canvas zoom: node text at its normal size
MARGIN = 16  # page pixels kept around the graph
# where the graph goes: right of the side bar, below the floating breadcrumb and run bar
ORIGIN = (100, 110)
# a returning user; no pack-name badge on the nodes (it would show the test folder's name), no minimap
SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.NodeBadge.NodeSourceBadgeMode": "None",
    "Comfy.Minimap.Visible": False,
}
MODEL_FOLDERS = {"CheckpointLoaderSimple": "checkpoints", "UNETLoader": "diffusion_models", "VAELoader": "vae"}
READY = "() => window.app && window.app.graph && window.LiteGraph?.registered_node_types.SoluneRefine"


def prepare(base: Path, workflow: dict) -> None:
    """The settings of a returning user, the picture LoadImage names, empty files for the model names."""
    from PIL import Image
    from readme_figures import synthetic_image

    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    pixels = (synthetic_image(480, 640)[0].numpy() * 255).round().astype("uint8")
    for node in workflow["nodes"]:
        if node["type"] == "LoadImage":
            (base / "input").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(base / "input" / node["widgets_values"][0])
        if node["type"] in MODEL_FOLDERS:
            target = base / "models" / MODEL_FOLDERS[node["type"]] / node["widgets_values"][0]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")


def screenshot(comfy_path: Path, workflow_path: Path, out: Path) -> None:
    from comfy_harness import ComfyServer
    from PIL import Image
    from playwright.sync_api import sync_playwright

    workflow = json.loads(workflow_path.read_text())
    base = Path(tempfile.mkdtemp(prefix="solune-screenshot-"))
    prepare(base, workflow)
    server = ComfyServer(comfy_path, base, python=sys.executable).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": WINDOW[0], "height": WINDOW[1]})
                page.goto(server.url)
                page.wait_for_function(READY, timeout=120_000)
                page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
                page.wait_for_timeout(1500)  # the LoadImage preview
                page.evaluate("() => document.querySelectorAll('.p-toast-close-button').forEach(b => b.click())")
                clip = fit_view(page)
                page.wait_for_timeout(500)
                shot = page.screenshot(clip=clip)
            finally:
                browser.close()
    finally:
        server.stop()
    # 256 colours: the canvas is flat UI colours, and the README picture a third of the size
    Image.open(io.BytesIO(shot)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def fit_view(page) -> dict:
    """Put the graph at ORIGIN at zoom SCALE; the page rectangle that holds it (and nothing else)."""
    return page.evaluate(
        """([scale, margin, ox, oy]) => {
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of window.app.graph.nodes) {
    const b = n.getBounding();
    box[0] = Math.min(box[0], b[0]); box[1] = Math.min(box[1], b[1]);
    box[2] = Math.max(box[2], b[0] + b[2]); box[3] = Math.max(box[3], b[1] + b[3]);
  }
  const canvas = window.app.canvas;
  const rect = canvas.canvas.getBoundingClientRect();
  canvas.ds.scale = scale;
  canvas.ds.offset[0] = (ox - rect.left) / scale - box[0];
  canvas.ds.offset[1] = (oy - rect.top) / scale - box[1];
  canvas.setDirty(true, true);
  canvas.draw(true, true);
  const [x0, y0] = canvas.ds.convertOffsetToCanvas([box[0], box[1]]);
  const [x1, y1] = canvas.ds.convertOffsetToCanvas([box[2], box[3]]);
  return {x: rect.left + x0 - margin, y: rect.top + y0 - margin,
          width: x1 - x0 + 2 * margin, height: y1 - y0 + 2 * margin};
}""",
        [SCALE, MARGIN, *ORIGIN],
    )


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    workflow = Path(argv[1]) if len(argv) > 1 else ROOT / "example_workflows" / "refine_masked_retouch.json"
    out = Path(argv[2]) if len(argv) > 2 else ROOT / "docs" / "refine_graph.png"
    screenshot(Path(argv[0]), workflow, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
