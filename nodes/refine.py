"""SoluneRefine: image in, image out. Upscale (optional), encode only what the model and the decoder
will read, sample with the tiled hook (SoluneTiledImg2Img + KSampler), decode only the changed pixels
and stitch them into the picture: every pixel of scale 0 is the (upscaled) input's, bit for bit.

Stages, each with progress and interruption: upscale (ComfyUI's ImageUpscaleWithModel and / or a
bicubic resample), VAE encode (tile by tile, `solune.image.encode_regional`), sampling (ComfyUI's
`common_ksampler` on the hook's patched model), VAE decode and stitch (`regional_vae.decode_and_stitch`).
"""

from __future__ import annotations

import logging

import comfy.utils
import torch
from comfy_api.latest import io

from ..checks import check_number
from ..image import DECODE_CONTEXT, ENCODE_CONTEXT, encode_needed, encode_regional, model_region, vae_pass
from ..samplers.tiled import check_guides
from .regional_vae import (
    check_blend,
    check_tensor,
    check_vae_channels,
    crop_box,
    decode_and_stitch,
    stage,
    vae_encoder,
    vae_factor,
)
from .stitch import blend_input
from .tile_map import map_outputs, render_tile_map
from .tiled_hooks import model_geometry
from .tiled_img2img import denoise_input, ksampler_error, ksampler_inputs, patch_with_plan
from .tiled_inputs import build_plan, denoise_order_error, setting_inputs, settings_from
from .tiled_model_patches import check_model_patches
from .user_warnings import shown_to_user

log = logging.getLogger(__name__)

NODE = "SoluneRefine"
#: the resampling of upscale_by without (or after) an upscale model: torch bicubic, clamped to [0, 1]
RESAMPLE = "bicubic"


def target_size(height: int, width: int, upscale_by: float) -> tuple[int, int]:
    """The refined picture's size: the input's times upscale_by, rounded to whole pixels."""
    return max(1, round(height * upscale_by)), max(1, round(width * upscale_by))


def upscale(image: torch.Tensor, upscale_model, upscale_by: float) -> torch.Tensor:
    """The picture to refine: the upscale model's output (if any) resampled to input size × upscale_by."""
    size = target_size(image.shape[1], image.shape[2], upscale_by)
    if upscale_model is not None:
        from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel

        out = ImageUpscaleWithModel.execute(upscale_model, image)
        image = out.result[0] if hasattr(out, "result") else out[0]
    if tuple(image.shape[1:3]) != size:
        image = comfy.utils.common_upscale(image.movedim(-1, 1), size[1], size[0], RESAMPLE, "disabled")
        image = image.movedim(1, -1).clamp(0.0, 1.0)
    return image.to("cpu", torch.float32)


def mask_on_picture(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The mask [B, H, W] at the refined picture's size (bilinear, as ComfyUI stretches masks)."""
    if tuple(mask.shape[-2:]) == size:
        return mask.to(torch.float32)
    out = comfy.utils.common_upscale(mask[:, None].to(torch.float32), size[1], size[0], "bilinear", "disabled")
    return out[:, 0].clamp(0.0, 1.0)


def check_inputs(image, model, vae, denoise_mask, upscale_by, blend, settings) -> tuple[int, int, int]:
    """(factor, align, blend) once every input is checked, before any work; a ValueError naming the input."""
    blend = check_blend(NODE, blend)
    try:
        upscale_by = check_number("upscale_by", upscale_by, 0, 64, lo_open=True, hint="1 = no upscale")
    except ValueError as err:
        raise ValueError(f"{NODE}: {err}") from err
    check_tensor(NODE, "image", image, 4, "an IMAGE [B, H, W, C]")
    factor = vae_factor(NODE, vae)
    downscale, align = model_geometry(model)
    channels = getattr(model.get_model_object("latent_format"), "latent_channels", None)
    if channels is not None:
        check_vae_channels(NODE, vae, channels, "model")
    if factor != downscale:
        raise ValueError(
            f"{NODE}: vae must be of the same family as the model: it has {factor} pixels per latent cell, "
            f"the model's latents {downscale}"
        )
    H, W = image.shape[1:3]
    size = target_size(H, W, upscale_by)
    if min(size) < factor:
        raise ValueError(
            f"{NODE}: image must be at least {factor} pixels per side after the upscale; got {size[0]}×{size[1]} "
            f"({H}×{W} × upscale_by {upscale_by:g})"
        )
    mask = None
    if denoise_mask is not None:
        mask = (
            denoise_mask[None] if isinstance(denoise_mask, torch.Tensor) and denoise_mask.dim() == 2 else denoise_mask
        )
        check_tensor(NODE, "denoise_mask", mask, 3, "a MASK [B, H, W]")
        if tuple(mask.shape[1:]) not in ((H, W), size):
            raise ValueError(
                f"{NODE}: denoise_mask must be the size of image ({H}×{W}) or of the upscaled picture "
                f"({size[0]}×{size[1]}); got {mask.shape[1]}×{mask.shape[2]}"
            )
        if mask.shape[0] not in (1, image.shape[0]):
            raise ValueError(
                f"{NODE}: denoise_mask batch must be 1 or the image's {image.shape[0]}; got {mask.shape[0]}"
            )
    _, _, h, w = crop_box(*size, factor)
    try:  # the plan's own checks (mask and scale_mode agree, mask values) on a latent-size stand-in
        check_guides(settings, torch.zeros(image.shape[0], 1, h, w), factor, mask)
    except ValueError as err:
        raise ValueError(f"{NODE}: {err}") from err
    return factor, align, blend


class SoluneRefine(io.ComfyNode):
    """Image to image with Solune's tiled img2img: what is not changed is not touched."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Solune Refine (image)",
            category="Solune/sampling",
            description=(
                "Refine, retouch or upscale-refine a picture in one node: every pixel whose scale is 0 comes back "
                "exactly as it went in (after the upscale), because it never goes through the VAE. Only what the "
                "model and the decoder read is encoded, only the tiles with a non-zero scale are sampled (with "
                "tiled_model), and only the changed pixels are decoded, tile by tile; across `blend` pixels inside "
                "the change the result fades into the original. Same tiles, scales and guarantees as Solune Tiled "
                "Img2Img + KSampler. With every scale at 0 the picture is returned without running the VAE or model."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The picture to refine."),
                io.Model.Input("model", tooltip="The model used for denoising."),
                io.Conditioning.Input("positive", tooltip="What to include."),
                io.Conditioning.Input("negative", tooltip="What to exclude."),
                io.Vae.Input("vae", tooltip="The model's VAE (same latent channels and factor)."),
                *ksampler_inputs(),
                denoise_input(),
                *setting_inputs("layout"),
                *setting_inputs("run"),
                io.Mask.Input(
                    "denoise_mask",
                    optional=True,
                    tooltip="Needed by scale_mode mask and pixel: 1 = change, 0 = keep. The size of image or of the "
                    "upscaled picture (stretched to it), batch 1 or the image's.",
                ),
                io.UpscaleModel.Input(
                    "upscale_model",
                    optional=True,
                    tooltip="Upscale first with this model (its output is then resampled to image × upscale_by).",
                ),
                io.Float.Input(
                    "upscale_by",
                    default=1.0,
                    min=0.05,
                    max=8.0,
                    step=0.05,
                    tooltip="The refined picture is the input × this (with upscale_model: its output resized to it; "
                    "without: a bicubic resample). 1 = same size.",
                ),
                blend_input(),
            ],
            outputs=[
                io.Image.Output(tooltip="The refined picture: the input's pixels wherever the scale is 0."),
                *map_outputs(),
            ],
        )

    @classmethod
    def validate_inputs(cls, min_denoise=None, max_denoise=None) -> bool | str:
        # only the check that needs two inputs: ComfyUI checks every other range under its own input
        # (upscale_by ≥ 0.05, blend ≥ 0), and execute checks everything again before any work
        return denoise_order_error(NODE, min_denoise, max_denoise) or True

    @classmethod
    def execute(cls, *args, **inputs) -> io.NodeOutput:
        with shown_to_user():  # the warnings of the plan and the passes reach the web UI and the runner
            return cls.refine(*args, **inputs)

    @classmethod
    def refine(
        cls,
        image,
        model,
        positive,
        negative,
        vae,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        denoise=1.0,
        denoise_mask=None,
        upscale_model=None,
        upscale_by=1.0,
        blend=16,
        **kw,
    ) -> io.NodeOutput:
        import comfy.samplers

        import nodes

        # 1. every check before any work
        error = ksampler_error(NODE, sampler_name, scheduler)
        if error:
            raise ValueError(error)
        settings = settings_from(NODE, **kw)
        if settings.tiled_model:  # a model patch with a hint of its own would see the whole image per tile
            check_model_patches(NODE, model)
        factor, align, blend = check_inputs(image, model, vae, denoise_mask, upscale_by, blend, settings)
        # 2. the picture to refine (upscaled), its VAE crop and the mask on it
        picture = image.to("cpu", torch.float32) if upscale_model is None and upscale_by == 1 else None
        if picture is None:
            picture = upscale(image, upscale_model, upscale_by)
        y0, x0, h, w = crop_box(picture.shape[1], picture.shape[2], factor)
        crop = picture[:, y0 : y0 + h * factor, x0 : x0 + w * factor, :3]
        mask = None
        if denoise_mask is not None:
            mask = denoise_mask[None] if denoise_mask.dim() == 2 else denoise_mask
            mask = mask_on_picture(mask, tuple(picture.shape[1:3]))[:, y0 : y0 + h * factor, x0 : x0 + w * factor]
        # 3. the hook's plan, drawn
        stand_in = torch.zeros(picture.shape[0], 1, h, w)
        plan = build_plan(NODE, settings, stand_in, factor, align, denoise_mask=mask, image=crop)
        tile_map, scale = render_tile_map(plan, factor, crop)
        if not bool((plan.scale_map != 0).any()):
            log.info("%s: every scale is 0; the picture is returned as is (no VAE, no model)", NODE)
            return io.NodeOutput(picture, tile_map, scale)
        # 4. the regions: what the model reads, what the decoder reads, what the encoder must produce
        sigmas = None
        if settings.mode == "strength" and settings.tiled_model:
            sigmas = comfy.samplers.KSampler(
                model, steps, model.load_device, sampler_name, scheduler, denoise, model_options=model.model_options
            ).sigmas
        model_cells = model_region(plan, settings.mode, settings.tiled_model, sigmas)
        decode = vae_pass((plan.scale_map.reshape(-1, h, w) != 0).any(dim=0), context=DECODE_CONTEXT)
        encode = vae_pass(encode_needed(model_cells, decode), context=ENCODE_CONTEXT)
        log.debug(
            "%s: encode reads %d of %d latent cells, decode %d", NODE, encode.read_area(), h * w, decode.read_area()
        )
        # 5. encode, sample, decode and stitch
        latent = encode_regional(
            crop, encode, vae_encoder(vae), factor, int(vae.latent_channels), stage(NODE, "VAE encode")
        )
        patched = patch_with_plan(NODE, model, latent, plan, settings)
        sampled = nodes.common_ksampler(
            patched, seed, steps, cfg, sampler_name, scheduler, positive, negative, {"samples": latent}, denoise=denoise
        )[0]["samples"]
        out = decode_and_stitch(NODE, vae, sampled, picture, scale, factor, blend)
        return io.NodeOutput(out, tile_map, scale)


__all__ = ["SoluneRefine"]
