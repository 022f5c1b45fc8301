"""SoluneTiledImg2Img (MODEL patch) and SoluneTiledSampler (all-in-one): tiled img2img with exact
per-tile preservation of the original latent.

Both also return the plan the patch uses, drawn as SoluneTileMap draws it: `tile_map` (IMAGE) and
`scale` (MASK, the per-pixel feathered scale), so a preview never needs the settings twice."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..checks import check_choice, error_of
from .tile_map import map_outputs, render_tile_map
from .tiled_hooks import TiledImg2ImgHook, model_family, model_geometry
from .tiled_inputs import build_plan, guide_inputs, setting_inputs, settings_error, settings_from
from .tiled_model_patches import check_model_patches

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
    log.debug("%s: %d tiles, scales %s", node, len(plan.layout), plan.scales)
    hook = TiledImg2ImgHook(samples, plan, settings.mode, settings.tiled_model, settings.tile_batch_size)
    patched = hook.patch(model)
    return (patched, *render_tile_map(plan, downscale, image))


class SoluneTiledImg2Img(io.ComfyNode):
    """The sampler hook: a MODEL patch that preserves `latent` per tile during sampling."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneTiledImg2Img",
            display_name="Solune Tiled Img2Img",
            category="Solune/sampling",
            description=(
                "Patch a model for img2img where every tile has its own denoise scale m: each model evaluation "
                "blends the model's clean estimate with the original latent (blend: x0 = m·model + (1−m)·original; "
                "strength: a tile is a stock img2img at denoise m inside the schedule). Use the output MODEL with "
                "KSampler or SamplerCustomAdvanced on the same latent. Scale 0 returns the original exactly. "
                "tile_map and scale draw the tiles and the per-pixel scale this patch uses."
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
    def validate_inputs(cls, **kw) -> bool | str:
        return settings_error("SoluneTiledImg2Img", **kw) or True

    @classmethod
    def execute(cls, model, latent, denoise_mask=None, image=None, **kw) -> io.NodeOutput:
        return io.NodeOutput(*tiled_model_patch("SoluneTiledImg2Img", model, latent, denoise_mask, image, **kw))


class SoluneTiledSampler(io.ComfyNode):
    """KSampler with the tiled img2img hook built in; `latent_image` is both sampled and preserved."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        import comfy.samplers

        return io.Schema(
            node_id="SoluneTiledSampler",
            display_name="Solune Tiled Sampler",
            category="Solune/sampling",
            description=(
                "KSampler plus Solune's tiled img2img: latent_image is sampled and, per tile, preserved with scale m "
                "(see Solune Tiled Img2Img). Equivalent to SoluneTiledImg2Img(latent=latent_image) → KSampler. "
                "tile_map and scale draw the tiles and the per-pixel scale the run uses."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising."),
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
                io.Combo.Input(
                    "sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="The sampling algorithm."
                ),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="The noise schedule."),
                io.Conditioning.Input("positive", tooltip="What to include."),
                io.Conditioning.Input("negative", tooltip="What to exclude."),
                io.Latent.Input(
                    "latent_image", tooltip="The clean original LATENT: it is sampled and preserved per tile."
                ),
                io.Float.Input(
                    "denoise",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="KSampler denoise of the whole run; per-tile scales act inside it.",
                ),
                *setting_inputs("layout"),
                *setting_inputs("run"),
                *guide_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="The sampled latent."), *map_outputs()],
        )

    @classmethod
    def validate_inputs(cls, sampler_name=None, scheduler=None, **kw) -> bool | str:
        import comfy.samplers

        error = None
        if sampler_name is not None:
            error = error_of(check_choice, "sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS)
        if error is None and scheduler is not None:
            error = error_of(check_choice, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS)
        if error:
            return f"SoluneTiledSampler: {error}"
        return settings_error("SoluneTiledSampler", **kw) or True

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

        error = cls.validate_inputs(sampler_name=sampler_name, scheduler=scheduler)
        if error is not True:
            raise ValueError(error)
        patched, tile_map, scale = tiled_model_patch(
            "SoluneTiledSampler", model, latent_image, denoise_mask, image, **kw
        )
        # the stock KSampler path: noise from the seed, previews, per-step progress and interruption
        out = nodes.common_ksampler(
            patched, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=denoise
        )
        return io.NodeOutput(out[0], tile_map, scale)
