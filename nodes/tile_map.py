"""SoluneTileMap: draw the tile layout and the per-pixel scale of a tiled img2img run."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..samplers.tiled import TilePlan
from .tiled_inputs import build_plan, denoise_order_error, guide_inputs, setting_inputs, settings_from
from .user_warnings import shown_to_user

BORDER = (1.0, 0.25, 0.1)  # tile borders, orange-red


def render_tile_map(
    plan: TilePlan, downscale: int, image: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(IMAGE [B, H, W, 3], MASK [B, H, W]) at pixel size: tiles shaded by their scale (grey level =
    scale, over the image at half strength when given), tile borders drawn; the MASK is the
    per-pixel scale map, nearest-upscaled. With scale_mode pixel the shading is the per-pixel
    scale itself (one picture per sample when the mask has the latent's batch); B is 1 otherwise."""
    layout = plan.layout
    H, W = layout.latent_h * downscale, layout.latent_w * downscale
    mask = plan.scale_map.reshape(-1, layout.latent_h, layout.latent_w).to(torch.float32).cpu()
    mask = mask.repeat_interleave(downscale, 1).repeat_interleave(downscale, 2)
    if plan.per_pixel:
        shade = mask.clone()
    else:
        shade = torch.zeros(1, H, W, dtype=torch.float32)
        cores = layout.cores if layout.cores is not None else layout.tiles
        for core, scale in zip(cores, plan.scales):
            shade[:, core.y0 * downscale : core.y1 * downscale, core.x0 * downscale : core.x1 * downscale] = scale
    rgb = shade[..., None].expand(*shade.shape, 3).clone()
    if image is not None:
        rgb = 0.5 * rgb + 0.5 * image[0, ..., :3].to(torch.float32).cpu()
    color = torch.tensor(BORDER)
    for tile in layout.tiles:
        y0, y1, x0, x1 = tile.y0 * downscale, tile.y1 * downscale - 1, tile.x0 * downscale, tile.x1 * downscale - 1
        rgb[:, y0, x0 : x1 + 1] = color
        rgb[:, y1, x0 : x1 + 1] = color
        rgb[:, y0 : y1 + 1, x0] = color
        rgb[:, y0 : y1 + 1, x1] = color
    return rgb, mask


def map_outputs(named: bool = True) -> list:
    """The IMAGE and MASK outputs `render_tile_map` fills: the hook nodes' `tile_map` and `scale`
    (after their own output) and SoluneTileMap's two (unnamed there, as saved workflows have them)."""
    image_name, mask_name = ("tile_map", "scale") if named else (None, None)
    return [
        io.Image.Output(
            image_name,
            display_name=image_name,
            tooltip="Tiles shaded by scale (white = 1; scale_mode pixel: the per-pixel scale) with "
            "borders, at pixel size.",
        ),
        io.Mask.Output(
            mask_name,
            display_name=mask_name,
            tooltip="The per-pixel scale (feathered across overlaps; scale_mode pixel: from the mask), at pixel size.",
        ),
    ]


class SoluneTileMap(io.ComfyNode):
    """Preview of the layout Solune Tiled Img2Img would use with the same settings, without a model run
    (the hook nodes return the same drawings of the plan they use)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneTileMap",
            display_name="Solune Tile Map",
            category="Solune/sampling",
            description=(
                "Preview where a tiled img2img will change the picture, without running a model: the tiles and "
                "per-tile denoise scales that Solune Tiled Img2Img builds from the same settings: "
                "an IMAGE with each tile shaded by its scale (white = 1; scale_mode pixel: the per-pixel scale) "
                "and its border drawn, and the per-pixel scale (feathered across overlaps, or the mask's own in "
                "pixel mode) as a MASK. For a preview without a model run: the tiled nodes return the same two "
                "drawings of the plan they use (tile_map, scale)."
            ),
            inputs=[
                io.Latent.Input(
                    "latent",
                    tooltip="The latent whose size the layout covers (and that drives the quadtree without an image).",
                ),
                *setting_inputs("layout"),
                *guide_inputs(),
                io.Model.Input(
                    "model",
                    optional=True,
                    tooltip="The model, for its patch size (tiles align to it); without it tiles align to "
                    "1 latent unit.",
                ),
            ],
            outputs=map_outputs(named=False),
        )

    @classmethod
    def validate_inputs(cls, min_denoise=None, max_denoise=None) -> bool | str:
        return denoise_order_error("SoluneTileMap", min_denoise, max_denoise) or True

    @classmethod
    def execute(cls, latent, denoise_mask=None, image=None, model=None, **kw) -> io.NodeOutput:
        from .tiled_hooks import model_family, model_geometry

        downscale, align = model_geometry(model) if model is not None else (8, 1)
        settings = settings_from("SoluneTileMap", **kw)
        family = model_family(model) if model is not None else None
        with shown_to_user():
            plan = build_plan(
                "SoluneTileMap",
                settings,
                latent["samples"],
                downscale,
                align,
                denoise_mask=denoise_mask,
                image=image,
                family=family,
            )
        return io.NodeOutput(*render_tile_map(plan, downscale, image))
