"""ComfyUI glue of the regional VAE passes (`solune.image`): a VAE's checks, its encode / decode as the
passes call them, per-stage progress with interruption, and the decode-and-stitch both image nodes end with.

Where a picture is not a multiple of the VAE's factor, ComfyUI's VAEEncode encodes its centred crop
(`VAE.vae_encode_crop_pixels`); `crop_box` gives that crop, the pixels outside it are never changed.
"""

from __future__ import annotations

import logging

import comfy.model_management
import comfy.utils
import torch

from ..checks import check_finite, check_int
from ..image import DECODE_CONTEXT, band_weight, decode_regional, stitch, vae_pass

log = logging.getLogger(__name__)


def vae_factor(node: str, vae) -> int:
    """Pixels per latent cell of an image VAE (the same both ways), or a ValueError naming `vae`."""
    dim = getattr(vae, "latent_dim", 2)
    down, up = vae.spacial_compression_encode(), vae.spacial_compression_decode()
    if dim != 2 or not isinstance(down, int) or down != up or down < 1:
        raise ValueError(
            f"{node}: vae must be an image VAE (2-D latent, one spatial factor both ways); got a "
            f"{dim}-D latent VAE with factors {down!r} / {up!r}"
        )
    return down


def check_vae_channels(node: str, vae, channels: int, what: str) -> None:
    """The VAE's latent channels must be `channels` (those of `what`), else a ValueError naming `vae`."""
    if int(vae.latent_channels) != int(channels):
        raise ValueError(
            f"{node}: vae must be of the same family as the {what}: it makes {vae.latent_channels}-channel latents, "
            f"the {what} has {channels} channels (load the VAE that belongs to the model)"
        )


def crop_box(height: int, width: int, factor: int) -> tuple[int, int, int, int]:
    """(y0, x0, h, w): the centred crop VAEEncode encodes, from pixel (y0, x0), h × w latent cells."""
    h, w = height // factor, width // factor
    return (height % factor) // 2, (width % factor) // 2, h, w


def stage(node: str, name: str):
    """tick(done, total) for one stage of a pass: honours interruption, shows progress (a bar per stage)."""
    bar = {}

    def tick(done: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        if total:
            bar.setdefault("bar", comfy.utils.ProgressBar(total)).update_absolute(done, total)
        if done == 0:
            log.debug("%s: %s, %d tiles", node, name, total)

    return tick


def vae_encoder(vae):
    """encode(pixels [B, H, W, C]) → latent [B, c, h, w] on the CPU, as VAEEncode calls the VAE."""
    return lambda pixels: vae.encode(pixels[..., :3]).to("cpu", torch.float32)


def vae_decoder(vae):
    """decode(latent [B, c, h, w]) → pixels [B, H, W, C] on the CPU, as VAEDecode calls the VAE."""
    return lambda latent: vae.decode(latent).to("cpu", torch.float32)


def check_blend(node: str, blend) -> int:
    try:
        return check_int("blend", blend, 0, 4096, hint="pixels")
    except ValueError as err:
        raise ValueError(f"{node}: {err}") from err


def check_tensor(node: str, name: str, x, dims: int, what: str) -> None:
    """A tensor of `dims` dimensions with finite values, else a ValueError naming the input."""
    if not isinstance(x, torch.Tensor) or x.dim() != dims or x.numel() == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{node}: {name} must be {what}; got {shape}")
    try:
        check_finite(name, x)
    except ValueError as err:
        raise ValueError(f"{node}: {err}") from err


def decode_and_stitch(
    node: str, vae, samples: torch.Tensor, picture: torch.Tensor, scale: torch.Tensor, factor: int, blend: int
) -> torch.Tensor:
    """`picture` [B or 1, H, W, C] with the decode of `samples` [B, c, h, w] stitched in where `scale`
    ([1 or B, h·factor, w·factor], the centred crop's per-pixel scale) is non-zero.

    Only the latent cells holding a changed pixel are decoded (plus the decoder's context); the stitch
    keeps every pixel of scale 0 bit for bit and fades over `blend` pixels inside the change.
    """
    y0, x0, h, w = crop_box(picture.shape[1], picture.shape[2], factor)
    batch = max(samples.shape[0], picture.shape[0], scale.shape[0])
    out = picture.to("cpu", torch.float32).expand(batch, *picture.shape[1:]).clone()
    changed = scale.to("cpu") != 0
    cells = torch.nn.functional.max_pool2d(changed.any(dim=0).to(torch.float32)[None, None], factor)[0, 0] > 0
    decode = vae_pass(cells, context=DECODE_CONTEXT)
    if len(decode) == 0:
        return out
    decoded = decode_regional(samples.to("cpu"), decode, vae_decoder(vae), factor, stage(node, "VAE decode"))
    rows, cols = slice(y0, y0 + h * factor), slice(x0, x0 + w * factor)
    crop = out[:, rows, cols, :]
    channels = min(crop.shape[-1], decoded.shape[-1])
    weight = band_weight(changed, blend)
    out[:, rows, cols, :channels] = stitch(
        crop[..., :channels], decoded[..., :channels].expand(batch, *decoded.shape[1:-1], channels), weight
    )
    return out
