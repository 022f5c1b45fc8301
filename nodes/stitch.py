"""SoluneStitch: decode only what the tiled hook changed and stitch it into the original picture."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from .regional_vae import (
    check_blend,
    check_tensor,
    check_vae_channels,
    crop_box,
    decode_and_stitch,
    vae_factor,
)
from .user_warnings import shown_to_user

NODE = "SoluneStitch"


def blend_input() -> io.Int.Input:
    """The `blend` input of both image nodes."""
    return io.Int.Input(
        "blend",
        default=16,
        min=0,
        max=4096,
        step=2,
        tooltip="Width in pixels of the band inside the changed area over which the decoded picture fades "
        "into the original (rounded up to even); 0 = a hard edge. Pixels of scale 0 are always the original's.",
    )


def check_stitch_inputs(samples, vae, image, scale, blend) -> tuple[int, int]:
    """(factor, blend) once every input is checked; a ValueError naming the input otherwise."""
    blend = check_blend(NODE, blend)
    latent = samples.get("samples") if isinstance(samples, dict) else None
    check_tensor(NODE, "samples", latent, 4, "an image LATENT [B, C, H, W]")
    check_tensor(NODE, "image", image, 4, "an IMAGE [B, H, W, C]")
    s = scale[None] if isinstance(scale, torch.Tensor) and scale.dim() == 2 else scale
    check_tensor(NODE, "scale", s, 3, "a MASK [B, H, W]")
    factor = vae_factor(NODE, vae)
    check_vae_channels(NODE, vae, latent.shape[1], "samples")
    b, _, h, w = latent.shape
    H, W = image.shape[1:3]
    if crop_box(H, W, factor)[2:] != (h, w):
        raise ValueError(
            f"{NODE}: image must be the picture the latent was encoded from ({h * factor}×{w * factor} pixels, "
            f"up to {factor - 1} more per side); got {H}×{W}"
        )
    if image.shape[0] not in (1, b):
        raise ValueError(f"{NODE}: image batch must be 1 or the latent's {b}; got {image.shape[0]}")
    if tuple(s.shape[1:]) != (h * factor, w * factor) or s.shape[0] not in (1, b):
        raise ValueError(
            f"{NODE}: scale must be the tiled node's scale MASK: {h * factor}×{w * factor} pixels, batch 1 or {b}; "
            f"got shape {tuple(scale.shape)}"
        )
    lo, hi = float(s.min()), float(s.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{NODE}: scale must hold values in [0, 1]; got values in [{lo:g}, {hi:g}]")
    return factor, blend


class SoluneStitch(io.ComfyNode):
    """The end of a hook graph: VAE-decode only where the scale is non-zero and keep every other pixel."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Solune Stitch",
            category="Solune/sampling",
            description=(
                "Put the sampled result back into the original picture without touching the rest: only the latent "
                "where the scale is non-zero is decoded (tile by tile, with the decoder's context), and every pixel "
                "of scale 0 is the input picture's, bit for bit. Across `blend` pixels inside the changed area the "
                "decoded picture fades smoothly into the original. Use it instead of VAEDecode after a sampler fed "
                "by Solune Tiled Img2Img (connect that node's scale output)."
            ),
            inputs=[
                io.Latent.Input("samples", tooltip="The sampled LATENT (from the sampler after the tiled hook)."),
                io.Vae.Input("vae", tooltip="The VAE that encoded the original picture."),
                io.Image.Input(
                    "image", tooltip="The picture the original latent was encoded from: its pixels are kept."
                ),
                io.Mask.Input("scale", tooltip="The tiled node's scale output: where it is 0, nothing changed."),
                blend_input(),
            ],
            outputs=[io.Image.Output(tooltip="The original picture with the changed region decoded into it.")],
        )

    @classmethod
    def execute(cls, *args, **inputs) -> io.NodeOutput:
        with shown_to_user():  # the warnings of the plan and the passes reach the web UI and the runner
            return cls.stitch(*args, **inputs)

    @classmethod
    def stitch(cls, samples, vae, image, scale, blend=16) -> io.NodeOutput:
        factor, blend = check_stitch_inputs(samples, vae, image, scale, blend)
        s = scale if scale.dim() == 3 else scale[None]
        return io.NodeOutput(decode_and_stitch(NODE, vae, samples["samples"], image, s, factor, blend))
