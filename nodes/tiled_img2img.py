"""SoluneTiledImg2Img (MODEL patch) and SoluneTiledSampler (all-in-one): tiled img2img with exact
per-tile preservation of the original latent.

Both also return the plan the patch uses, drawn as SoluneTileMap draws it: `tile_map` (IMAGE) and
`scale` (MASK, the per-pixel feathered scale), so a preview never needs the settings twice."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..checks import check_choice, error_of
from ..samplers.tiled import TilePlan, TileSettings
from .tile_map import map_outputs, render_tile_map
from .tiled_hooks import TiledImg2ImgHook, model_family, model_geometry
from .tiled_inputs import build_plan, denoise_order_error, guide_inputs, setting_inputs, settings_from
from .tiled_model_patches import check_model_patches
from .user_warnings import shown_to_user

log = logging.getLogger(__name__)


def tiled_model_patch(node: str, model, latent: dict, denoise_mask=None, image=None, **values):
    """Check, plan and patch; shared by both nodes. Nothing is modified on error.

    Returns (the patched clone, tile_map IMAGE, scale MASK): the drawings of the patch's own plan.
    """
    settings = settings_from(node, **values)
    if settings.tiled_model:
        check_model_patches(node, model)
    samples = latent["samples"]
    downscale, align = model_geometry(model)
    family = model_family(model)
    plan = build_plan(node, settings, samples, downscale, align, denoise_mask=denoise_mask, image=image, family=family)
    return (patch_with_plan(node, model, samples, plan, settings), *render_tile_map(plan, downscale, image))


def patch_with_plan(node: str, model, samples, plan: TilePlan, settings: TileSettings):
    """The patched clone of `model` that preserves `samples` with a plan already built (and checked)."""
    log.debug("%s: %d tiles, scales %s", node, len(plan.layout), plan.scales)
    hook = TiledImg2ImgHook(samples, plan, settings.mode, settings.tiled_model, settings.tile_batch_size)
    return hook.patch(model)


def ksampler_inputs() -> list:
    """KSampler's seed, steps, cfg, sampler_name and scheduler inputs (the tiled sampler and Solune Refine)."""
    import comfy.samplers

    return [
        io.Int.Input(
            "seed",
            default=0,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            control_after_generate=True,
            tooltip="Seed of the noise.",
        ),
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Denoising steps."),
        io.Float.Input(
            "cfg",
            default=8.0,
            min=0.0,
            max=100.0,
            step=0.1,
            round=0.01,
            tooltip="Classifier-free guidance scale.",
        ),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="The sampling algorithm."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="The noise schedule."),
    ]


def denoise_input() -> io.Float.Input:
    """KSampler's denoise input."""
    return io.Float.Input(
        "denoise",
        default=1.0,
        min=0.0,
        max=1.0,
        step=0.01,
        tooltip="Leave at 1.0: max_denoise is your strength. Below 1 the whole schedule is shortened "
        "and every tile's scale acts inside it, so the two multiply.",
    )


def sampler_choice_error(sampler_name, scheduler) -> str | None:
    """sampler_name and scheduler among KSampler's lists (ComfyUI 0.3.64 lets a bad V3 combo value through)."""
    import comfy.samplers

    return error_of(check_choice, "sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS) or error_of(
        check_choice, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS
    )


def ksampler_error(node: str, sampler_name, scheduler) -> str | None:
    """`sampler_choice_error` naming the node: what the sampling nodes check when they run."""
    error = sampler_choice_error(sampler_name, scheduler)
    return f"{node}: {error}" if error else None


class SoluneTiledImg2Img(io.ComfyNode):
    """The sampler hook: a MODEL patch that preserves `latent` per tile during sampling."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneTiledImg2Img",
            display_name="Solune Tiled Img2Img",
            category="Solune/sampling",
            description=(
                "Img2img that changes each part of a picture as much as you choose and leaves the rest exactly as "
                "it was: retouch a painted area, re-render busy detail, refine an upscale. Put it between your "
                "model and the stock KSampler (or SamplerCustomAdvanced), sample the same latent, and leave the "
                "sampler's denoise at 1.0: max_denoise is your strength. Every tile gets a denoise scale m; each "
                "model evaluation blends the model's clean estimate with the original latent (blend: "
                "x0 = m·model + (1−m)·original; strength: a tile is a stock img2img at denoise m inside the "
                "schedule). Scale 0 returns the original exactly. tile_map and scale draw the tiles and the "
                "per-pixel scale this patch uses."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to patch (a copy is patched)."),
                io.Latent.Input(
                    "latent",
                    tooltip="The clean original LATENT (what you encoded); it is preserved where the scale is below 1.",
                ),
                *setting_inputs("layout"),
                *setting_inputs("run"),
                *guide_inputs(),
            ],
            outputs=[io.Model.Output(tooltip="The patched copy of the model."), *map_outputs()],
        )

    @classmethod
    def validate_inputs(cls, min_denoise=None, max_denoise=None) -> bool | str:
        return denoise_order_error("SoluneTiledImg2Img", min_denoise, max_denoise) or True

    @classmethod
    def execute(cls, model, latent, denoise_mask=None, image=None, **kw) -> io.NodeOutput:
        with shown_to_user():
            return io.NodeOutput(*tiled_model_patch("SoluneTiledImg2Img", model, latent, denoise_mask, image, **kw))


class SoluneTiledSampler(io.ComfyNode):
    """KSampler with the tiled img2img hook built in; `latent_image` is both sampled and preserved."""

    @classmethod
    def define_schema(cls) -> io.Schema:

        return io.Schema(
            node_id="SoluneTiledSampler",
            display_name="Solune Tiled Sampler",
            category="Solune/sampling",
            description=(
                "One node for tiled img2img and upscale refines: a KSampler that changes each tile of latent_image "
                "as much as you choose and keeps the rest. Leave denoise at 1.0: max_denoise is your strength. "
                "Equivalent to Solune Tiled Img2Img(latent=latent_image) → KSampler; per tile, the original is "
                "preserved with scale m. tile_map and scale draw the tiles and the per-pixel scale the run uses."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising."),
                *ksampler_inputs(),
                io.Conditioning.Input("positive", tooltip="What to include."),
                io.Conditioning.Input("negative", tooltip="What to exclude."),
                io.Latent.Input(
                    "latent_image", tooltip="The clean original LATENT: it is sampled and preserved per tile."
                ),
                denoise_input(),
                *setting_inputs("layout"),
                *setting_inputs("run"),
                *guide_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="The sampled latent."), *map_outputs()],
        )

    @classmethod
    def validate_inputs(cls, min_denoise=None, max_denoise=None) -> bool | str:
        return denoise_order_error("SoluneTiledSampler", min_denoise, max_denoise) or True

    @classmethod
    def execute(
        cls,
        model,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latent_image,
        denoise=1.0,
        denoise_mask=None,
        image=None,
        **kw,
    ) -> io.NodeOutput:
        import nodes

        error = ksampler_error("SoluneTiledSampler", sampler_name, scheduler)
        if error:
            raise ValueError(error)
        with shown_to_user():
            patched, tile_map, scale = tiled_model_patch(
                "SoluneTiledSampler", model, latent_image, denoise_mask, image, **kw
            )
            # the stock KSampler path: noise from the seed, previews, per-step progress and interruption
            out = nodes.common_ksampler(
                patched, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=denoise
            )
        return io.NodeOutput(out[0], tile_map, scale)
