"""The tiling inputs of SoluneTiledImg2Img, SoluneTiledSampler and SoluneTileMap, generated from
`TileSettings`, and the checks at the node boundary."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..checks import error_of
from ..samplers.tiled import TilePlan, TileSettings, check_guides, make_plan
from ..samplers.tiled.frames import image_latent


def _input(name: str, spec) -> io.Input:
    kind = spec.kind
    if kind == "choice":
        return io.Combo.Input(name, options=list(spec.choices), default=spec.default, tooltip=spec.tooltip)
    if kind == "bool":
        return io.Boolean.Input(name, default=spec.default, tooltip=spec.tooltip)
    numeric = {"min": spec.lo, "max": spec.hi, **({"step": spec.step} if spec.step is not None else {})}
    if kind == "int":
        return io.Int.Input(name, default=spec.default, tooltip=spec.tooltip, **numeric)
    return io.Float.Input(name, default=spec.default, tooltip=spec.tooltip, **numeric)


def setting_inputs(group: str) -> list:
    """The V3 inputs of one group of `TileSettings` ("layout": all three nodes; "run": the hook nodes)."""
    return [_input(name, spec) for name, spec in TileSettings.specs(group)]


def guide_inputs() -> list:
    """Optional denoise_mask and image."""
    return [
        io.Mask.Input(
            "denoise_mask",
            optional=True,
            tooltip="Needed by scale_mode mask and pixel: 1 = change, 0 = keep. Any size (stretched to the "
            "latent as ComfyUI does), batch 1 or the latent's.",
        ),
        io.Image.Input(
            "image",
            optional=True,
            tooltip="Drives the quadtree instead of the latent; must be the latent's pixel size.",
        ),
    ]


def settings_error(node: str, **values) -> str | None:
    """validate_inputs for the tile settings among `values`: a message naming the node and input, or None."""
    error = error_of(TileSettings.check_inputs, **values)
    return f"{node}: {error}" if error else None


def settings_from(node: str, **values) -> TileSettings:
    """The settings of a node's inputs (defaults for those it lacks); ValueError naming the node and input."""
    try:
        return TileSettings.from_inputs(**values)
    except ValueError as err:
        raise ValueError(f"{node}: {err}") from err


def build_plan(
    node: str,
    settings: TileSettings,
    samples: torch.Tensor,
    downscale: int,
    align: int,
    denoise_mask=None,
    image=None,
    family: str | None = None,
) -> TilePlan:
    """Check the tensors (ValueError naming the node and input) and build the plan.

    `samples` is [B, C, H, W] or, for families sampled with a frame axis, [B, C, 1, H, W]; the plan is
    made over H and W (`samplers/tiled/frames.py`); `family` names the model in the refusal of other shapes.
    """
    try:
        samples = image_latent(samples, "latent", family)
        check_guides(settings, samples, downscale, denoise_mask, image)
        return make_plan(
            samples.shape[-2],
            samples.shape[-1],
            settings,
            downscale=downscale,
            align=align,
            denoise_mask=denoise_mask,
            content=samples,
            image=image,
        )
    except ValueError as err:
        raise ValueError(f"{node}: {err}") from err
