"""Render each example workflow's same-name .jpg thumbnail: a miniature of its graph.

Development tool (needs Pillow, which ComfyUI ships): `python tools/thumbnails.py`.
Solune nodes (and subgraph nodes holding one) are drawn in the pack's colour, stock nodes in grey,
links as lines between the nodes' sides, with the workflow's name as the caption.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
W, H, MARGIN, CAPTION = 512, 384, 24, 44
BG, STOCK, SOLUNE, LINK, TEXT = (24, 26, 34), (70, 74, 88), (196, 140, 52), (140, 150, 170), (235, 235, 240)


def render(path: Path) -> Image.Image:
    data = json.loads(path.read_text())
    nodes = {n["id"]: n for n in data["nodes"] if n["type"] not in ("Note", "MarkdownNote")}
    xs = [n["pos"][0] for n in nodes.values()] + [n["pos"][0] + n["size"][0] for n in nodes.values()]
    ys = [n["pos"][1] for n in nodes.values()] + [n["pos"][1] + n["size"][1] for n in nodes.values()]
    x0, y0 = min(xs), min(ys)
    scale = min((W - 2 * MARGIN) / (max(xs) - x0), (H - 2 * MARGIN - CAPTION) / (max(ys) - y0))

    def box(n):
        left = MARGIN + (n["pos"][0] - x0) * scale
        top = MARGIN + CAPTION + (n["pos"][1] - y0) * scale
        return left, top, left + n["size"][0] * scale, top + n["size"][1] * scale

    img = Image.new("RGB", (W, H), BG)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for link in data["links"]:
        a, b = nodes.get(link[1]), nodes.get(link[3])
        if a and b:
            ba, bb = box(a), box(b)
            draw.line([(ba[2], (ba[1] + ba[3]) / 2), (bb[0], (bb[1] + bb[3]) / 2)], fill=LINK, width=2)
    # a subgraph node is drawn in the pack's colour when a Solune node sits inside it
    solune_subgraphs = {
        s["id"]
        for s in (data.get("definitions") or {}).get("subgraphs") or []
        if any(str(inner["type"]).startswith("Solune") for inner in s.get("nodes") or [])
    }
    for n in nodes.values():
        fill = SOLUNE if n["type"].startswith("Solune") or n["type"] in solune_subgraphs else STOCK
        draw.rounded_rectangle(box(n), radius=4, fill=fill, outline=(16, 16, 20))
        label = n.get("title") or n["type"]
        left, top, right, _ = box(n)
        if right - left > 40:
            draw.text((left + 3, top + 2), label[: int((right - left) / 6)], fill=TEXT, font=font)
    title = path.stem.replace("_", " ")
    draw.text((MARGIN, 14), f"Solune · {title}", fill=TEXT, font=font)
    return img


def main() -> int:
    for path in sorted((ROOT / "example_workflows").glob("*.json")):
        render(path).save(path.with_suffix(".jpg"), quality=88)
    return 0


if __name__ == "__main__":
    sys.exit(main())
