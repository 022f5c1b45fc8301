"""SoluneTiledImg2Img (MODEL patch) and SoluneTiledSampler (all-in-one): tiled img2img with exact
per-tile preservation of the original latent."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..samplers.tiled import MODES
from .tiled_hooks import TiledImg2ImgHook, model_geometry
from .tiled_inputs import DEFAULTS, build_plan, check_inputs, guide_inputs, layout_inputs, run_inputs

log = logging.getLogger(__name__)

PLAN_KEYS = ("min_denoise", "max_denoise", "layout", "scale_mode", "tile_width", "tile_height", "overlap", "falloff",
             "min_tile", "max_tile", "threshold", "criterion")


def _check_run(node: str, mode, tile_batch_size, tiled_model) -> str | None:
    if mode is not None and mode not in MODES:
        return f"{node}: mode must be one of {', '.join(MODES)}; got {mode!r}"
    if tile_batch_size is not None and (isinstance(tile_batch_size, bool) or not isinstance(tile_batch_size, int) or tile_batch_size < 1):
        return f"{node}: tile_batch_size must be an integer >= 1; got {tile_batch_size!r}"
    if tiled_model is not None and not isinstance(tiled_model, bool):
        return f"{node}: tiled_model must be true or false; got {tiled_model!r}"
    return None


def tiled_model_patch(node: str, model, latent: dict, mode: str, tiled_model: bool, tile_batch_size: int,
                      denoise_mask=None, image=None, **plan_kw):
    """Validate, plan and patch; shared by both nodes. Nothing is modified on error."""
    error = _check_run(node, mode, tile_batch_size, tiled_model)
    if error:
        raise ValueError(error)
    samples = latent["samples"]
    downscale, align = model_geometry(model)
    plan = build_plan(node, samples, downscale, align, denoise_mask=denoise_mask, image=image, mode=mode, **plan_kw)
    log.debug("%s: %d tiles, scales %s", node, len(plan.layout), plan.scales)
    return TiledImg2ImgHook(samples, plan, mode, tiled_model, tile_batch_size).patch(model)


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
                "KSampler or SamplerCustomAdvanced on the same latent. Scale 0 returns the original exactly."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to patch (a copy is patched)."),
                io.Latent.Input("latent", tooltip="The clean original LATENT (what you encoded); it is preserved where the scale is below 1."),
                *layout_inputs(),
                *run_inputs(),
                *guide_inputs(),
            ],
            outputs=[io.Model.Output(tooltip="The patched copy of the model.")],
        )

    @classmethod
    def validate_inputs(cls, mode=None, tile_batch_size=None, tiled_model=None, **kw) -> bool | str:
        return _check_run("SoluneTiledImg2Img", mode, tile_batch_size, tiled_model) or check_inputs("SoluneTiledImg2Img", **kw) or True

    @classmethod
    def execute(cls, model, latent, mode=DEFAULTS["mode"], tiled_model=DEFAULTS["tiled_model"],
                tile_batch_size=DEFAULTS["tile_batch_size"], denoise_mask=None, image=None, **kw) -> io.NodeOutput:
        plan_kw = {k: kw.get(k, DEFAULTS[k]) for k in PLAN_KEYS}
        return io.NodeOutput(tiled_model_patch("SoluneTiledImg2Img", model, latent, mode, tiled_model, tile_batch_size,
                                               denoise_mask, image, **plan_kw))


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
                "(see Solune Tiled Img2Img). Equivalent to SoluneTiledImg2Img(latent=latent_image) → KSampler."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the noise."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Denoising steps."),
                io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="The sampling algorithm."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="The noise schedule."),
                io.Conditioning.Input("positive", tooltip="What to include."),
                io.Conditioning.Input("negative", tooltip="What to exclude."),
                io.Latent.Input("latent_image", tooltip="The clean original LATENT: it is sampled and preserved per tile."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="KSampler denoise of the whole run; per-tile scales act inside it."),
                *layout_inputs(),
                *run_inputs(),
                *guide_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="The sampled latent.")],
        )

    @classmethod
    def validate_inputs(cls, mode=None, tile_batch_size=None, tiled_model=None, sampler_name=None, scheduler=None,
                        **kw) -> bool | str:
        import comfy.samplers

        if sampler_name is not None and sampler_name not in comfy.samplers.KSampler.SAMPLERS:
            return f"SoluneTiledSampler: sampler_name {sampler_name!r} is not one of ComfyUI's samplers"
        if scheduler is not None and scheduler not in comfy.samplers.KSampler.SCHEDULERS:
            return f"SoluneTiledSampler: scheduler must be one of {', '.join(comfy.samplers.KSampler.SCHEDULERS)}; got {scheduler!r}"
        return _check_run("SoluneTiledSampler", mode, tile_batch_size, tiled_model) or check_inputs("SoluneTiledSampler", **kw) or True

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0,
                mode=DEFAULTS["mode"], tiled_model=DEFAULTS["tiled_model"], tile_batch_size=DEFAULTS["tile_batch_size"],
                denoise_mask=None, image=None, **kw) -> io.NodeOutput:
        import nodes

        error = cls.validate_inputs(sampler_name=sampler_name, scheduler=scheduler)
        if error is not True:
            raise ValueError(error)
        plan_kw = {k: kw.get(k, DEFAULTS[k]) for k in PLAN_KEYS}
        patched = tiled_model_patch("SoluneTiledSampler", model, latent_image, mode, tiled_model, tile_batch_size,
                                    denoise_mask, image, **plan_kw)
        # the stock KSampler path: noise from the seed, previews, per-step progress and interruption
        out = nodes.common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                    latent_image, denoise=denoise)
        return io.NodeOutput(out[0])
