"""Render README figures into docs/: a quadtree tile map and a latent before/after.

Development tool: `COMFYUI_PATH=/path/to/ComfyUI python tools/readme_figures.py` in a Python with
ComfyUI's requirements. No weights are downloaded: the before/after uses the tests' tiny
random-weight SD1.5-shaped UNet, so the "after" is what such a model makes of the tiles it may
change; the point it shows is that tiles at scale 0 come back unchanged (to float32 rounding of
ComfyUI's latent scaling).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def synthetic_image(h: int = 384, w: int = 512) -> torch.Tensor:
    """A flat sky, a sun, and a busy textured ground: [1, H, W, 3] in [0, 1]."""
    y = torch.linspace(0, 1, h)[:, None].expand(h, w)
    x = torch.linspace(0, 1, w)[None, :].expand(h, w)
    sky = torch.stack([0.45 + 0.3 * y, 0.6 + 0.25 * y, 0.95 - 0.1 * y], -1)
    sun = ((x - 0.72) ** 2 + (y - 0.25) ** 2).sqrt() < 0.08
    sky[sun] = torch.tensor([1.0, 0.85, 0.4])
    g = torch.Generator().manual_seed(0)
    texture = torch.rand(1, 1, h // 16, w // 16, generator=g)
    texture = torch.nn.functional.interpolate(texture, size=(h, w), mode="nearest")[0, 0]
    stripes = 0.5 + 0.5 * torch.sin(x * 90 + 8 * torch.sin(y * 20))
    ground = torch.stack([0.25 + 0.3 * texture * stripes, 0.45 + 0.35 * texture, 0.15 + 0.1 * stripes], -1)
    horizon = 0.55 + 0.04 * torch.sin(x * 2 * math.pi * 2)
    img = torch.where((y > horizon)[..., None], ground, sky)
    return img[None].clamp(0, 1)


def to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray((t.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def latent_rgb(z: torch.Tensor) -> torch.Tensor:
    """First three latent channels, normalised to [0, 1] with one scale for before and after."""
    return (z[0, :3].permute(1, 2, 0) / 4 + 0.5).clamp(0, 1)


def main() -> int:
    from comfy_harness import import_comfy, tiny_sd15_model

    comfy, why = import_comfy()
    if comfy is None:
        raise SystemExit(why)
    from comfy_sampling_helpers import ksample

    from solune.nodes.tile_map import SoluneTileMap
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img

    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    image = synthetic_image()
    latent = torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), 8)
    latent = torch.cat([latent, latent.mean(1, keepdim=True)], 1) * 4 - 2  # a pseudo-latent that looks like the image
    settings = dict(
        min_denoise=0.0,
        max_denoise=0.8,
        layout="quadtree",
        scale_mode="by_area",
        tile_width=512,
        tile_height=512,
        overlap=16,
        falloff="cosine",
        min_tile=32,
        max_tile=128,
        threshold=0.002,
        criterion="variance",
    )
    tile_map, scale = SoluneTileMap.execute(latent={"samples": latent}, image=image, **settings).result
    strip = torch.cat(
        [
            image[0],
            torch.ones(image.shape[1], 8, 3),
            tile_map[0],
            torch.ones(image.shape[1], 8, 3),
            scale[0][..., None].expand(-1, -1, 3),
        ],
        1,
    )
    to_pil(strip).save(out / "tile_map.png")

    model = tiny_sd15_model(seed=0)
    patched = SoluneTiledImg2Img.execute(
        model=model,
        latent={"samples": latent},
        image=image,
        mode="blend",
        tiled_model=True,
        tile_batch_size=4,
        **settings,
    ).result[0]
    after = ksample(patched, latent, sampler="dpmpp_2m", scheduler="karras", steps=12, denoise=1.0)
    kept = scale[0, ::8, ::8] == 0
    err = (after[0][:, kept] - latent[0][:, kept]).abs().max().item()
    assert err <= 1e-5, f"scale-0 pixels must come back unchanged (max error {err})"
    big = lambda t: t.repeat_interleave(8, 0).repeat_interleave(8, 1)  # noqa: E731
    changed = (after - latent).abs().amax(1)[0] > 1e-5
    pair = torch.cat(
        [
            big(latent_rgb(latent)),
            torch.ones(image.shape[1], 8, 3),
            big(latent_rgb(after)),
            torch.ones(image.shape[1], 8, 3),
            big(changed.float())[..., None].expand(-1, -1, 3),
        ],
        1,
    )
    to_pil(pair).save(out / "before_after.png")
    print(
        f"wrote {out / 'tile_map.png'} and {out / 'before_after.png'}; "
        f"{int(kept.sum())} latent pixels kept (max error {err:.1e})"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("COMFYUI_PATH", "")
    sys.exit(main())
