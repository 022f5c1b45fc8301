"""The tiling inputs of SoluneTiledImg2Img, SoluneTiledSampler and SoluneTileMap, generated from
`TileSettings`, and the checks at the node boundary."""

from __future__ import annotations

import inspect

import torch
from comfy_api.latest import io

from ..checks import error_of
from ..samplers.tiled import TilePlan, TileSettings, check_guides, make_plan
from ..samplers.tiled.frames import image_latent


def has_advanced_inputs() -> bool:
    """Whether the installed ComfyUI's V3 inputs take `advanced` (folded away by frontend 1.49's Nodes 2.0
    view and parameters panel until the user shows them; ComfyUI 0.3.64 has no such flag). Probed on the
    API, not on a version number."""
    return "advanced" in inspect.signature(io.Int.Input.__init__).parameters


def _input(name: str, spec, advanced: bool) -> io.Input:
    kind = spec.kind
    common = {"default": spec.default, "tooltip": spec.tooltip, **({"advanced": True} if advanced else {})}
    if kind == "choice":
        return io.Combo.Input(name, options=list(spec.choices), **common)
    if kind == "bool":
        return io.Boolean.Input(name, **common)
    numeric = {"min": spec.lo, "max": spec.hi, **({"step": spec.step} if spec.step is not None else {})}
    if kind == "int":
        return io.Int.Input(name, **common, **numeric)
    return io.Float.Input(name, **common, **numeric)


def setting_inputs(group: str) -> list:
    """The V3 inputs of one group of `TileSettings` ("layout": all three nodes; "run": the hook nodes), in
    declaration order (saved workflows list widget values in that order); the `advanced` ones folded away
    where ComfyUI supports it."""
    foldable = has_advanced_inputs()
    return [_input(name, spec, foldable and spec.advanced) for name, spec in TileSettings.specs(group)]


def guide_inputs() -> list:
    """Optional denoise_mask and image."""
    return [
        io.Mask.Input(
            "denoise_mask",
            optional=True,
            tooltip="Where to change the picture (paint it): 1 = change, 0 = keep; needed by scale_mode mask and "
            "pixel. Any size (stretched to the latent as ComfyUI does), batch 1 or the latent's.",
        ),
        io.Image.Input(
            "image",
            optional=True,
            tooltip="Optional: the picture whose busy areas shape the quadtree (instead of the latent); must be the "
            "latent's pixel size.",
        ),
    ]


def denoise_order_error(node: str, min_denoise=None, max_denoise=None) -> str | None:
    """The tiled nodes' `validate_inputs`: min_denoise and max_denoise in range and in order, or a message
    naming the node and input. None values (linked, not known yet) pass.

    ComfyUI attaches the message under every input `validate_inputs` declares, and checks the ranges
    (and, from some version after 0.3.64, the V3 combo values) of the inputs it does not declare: so the
    nodes declare only these two, the one check that needs two inputs; `settings_from` checks every
    setting again when the node runs (where ComfyUI let a bad combo value through)."""
    error = error_of(TileSettings.check_inputs, min_denoise=min_denoise, max_denoise=max_denoise)
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
