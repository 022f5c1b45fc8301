"""The view a UI workflow opens with: `extra.ds`, fitted so the whole graph shows below the menu bar.

ComfyUI's frontend restores a saved workflow's `extra.ds` (`offset`, `scale`) when it loads the
file; a node at graph position p is drawn at canvas position (p + offset)·scale. The canvas sits
right of the side bar and below the menu bar; the workflow tabs cover its top edge and the canvas
toolbar its bottom edge. `VIEWPORT` is that canvas for a 1920×960 browser window (a 1080p screen
less the browser's own bars; frontend 1.27). Below scale 0.6 the frontend draws nodes without
text, so a graph that needs less is better split than shrunk.

    python -m solune.workflow.view            # fit the view of every example workflow
    python -m solune.workflow.view --check    # exit 1 if an example opens with a node out of view
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[1] / "example_workflows"
TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its `pos`
SLACK = 0.92  # the frontend may widen a node beyond its saved size (long combo values)
MAX_SCALE = 1.0


@dataclass(frozen=True)
class Viewport:
    """The canvas area (canvas pixels) and the margins that other parts of the page cover."""

    width: float
    height: float
    top: float
    left: float
    right: float
    bottom: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the free canvas area."""
        return self.left, self.top, self.width - self.right, self.height - self.bottom


# 1920×960 window: the 40-px side bar and 40-px menu bar leave a 1880×920 canvas, whose top 37 px
# the workflow tabs cover and whose bottom 50 px hold the canvas toolbar.
WINDOW = (1920, 960)
VIEWPORT = Viewport(width=1880, height=920, top=50, left=10, right=10, bottom=60)
READABLE_SCALE = 0.6  # LiteGraph's low-quality threshold: below it node text is not drawn


def node_boxes(workflow: dict) -> dict[str, tuple[float, float, float, float]]:
    """{label: (x0, y0, x1, y1)} in graph coordinates for every node (title bar included) and group."""
    boxes = {}
    for node in workflow.get("nodes") or []:
        (x, y), (w, h) = node["pos"][:2], node["size"][:2]
        boxes[f"node {node['id']} ({node.get('type')})"] = (x, y - TITLE_HEIGHT, x + w, y + h)
    for i, group in enumerate(workflow.get("groups") or []):
        x, y, w, h = group["bounding"][:4]
        boxes[f"group {i} ({group.get('title', '')})"] = (x, y, x + w, y + h)
    return boxes


def saved_view(workflow: dict) -> tuple[tuple[float, float], float]:
    """The workflow's `extra.ds` as ((offset_x, offset_y), scale); the frontend's default is (0, 0), 1."""
    ds = (workflow.get("extra") or {}).get("ds") or {}
    offset = ds.get("offset") or [0, 0]
    return (float(offset[0]), float(offset[1])), float(ds.get("scale") or 1.0)


def out_of_view(workflow: dict, viewport: Viewport = VIEWPORT) -> list[str]:
    """Labels of the nodes and groups that the saved view does not show whole in `viewport`."""
    (ox, oy), scale = saved_view(workflow)
    x0, y0, x1, y1 = viewport.box
    outside = []
    for label, (a, b, c, d) in node_boxes(workflow).items():
        left, top, right, bottom = (a + ox) * scale, (b + oy) * scale, (c + ox) * scale, (d + oy) * scale
        if left < x0 or top < y0 or right > x1 or bottom > y1:
            outside.append(f"{label} at canvas ({left:.0f}, {top:.0f})–({right:.0f}, {bottom:.0f})")
    return outside


def fitted_view(workflow: dict, viewport: Viewport = VIEWPORT) -> dict:
    """`extra.ds` that shows every node and group, centred in the free area, at scale ≤ MAX_SCALE."""
    boxes = list(node_boxes(workflow).values())
    if not boxes:
        return {"offset": [0, 0], "scale": 1}
    gx0, gy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    gx1, gy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    x0, y0, x1, y1 = viewport.box
    fit = min((x1 - x0) / max(gx1 - gx0, 1), (y1 - y0) / max(gy1 - gy0, 1))
    scale = math.floor(min(MAX_SCALE, SLACK * fit) * 100) / 100
    # centre the graph's box in the free area: (g + offset)·scale = area centre
    ox = ((x0 + x1) / 2) / scale - (gx0 + gx1) / 2
    oy = ((y0 + y1) / 2) / scale - (gy0 + gy1) / 2
    return {"offset": [round(ox, 1), round(oy, 1)], "scale": scale}


def write_json(path: Path, data: dict, original: str) -> None:
    """Write `data` in the file's own style (indent 2, non-ASCII kept or escaped as it was)."""
    keep = json.dumps(json.loads(original), indent=2, ensure_ascii=False) + "\n" == original
    path.write_text(json.dumps(data, indent=2, ensure_ascii=not keep) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solune.workflow.view", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="UI workflows (default: every example workflow)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a node opens out of view")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = 0
    for path in args.files or sorted(EXAMPLES.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        if args.check:
            outside = out_of_view(data)
            for label in outside:
                log.error("%s: %s is out of view; run python -m solune.workflow.view", path.name, label)
            failed += bool(outside)
            continue
        data.setdefault("extra", {})["ds"] = fitted_view(data)
        write_json(path, data, text)
        log.info("%s: view %s", path.name, data["extra"]["ds"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
