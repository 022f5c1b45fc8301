"""Latents with a frame axis: [B, C, T, H, W] as well as [B, C, H, W].

Image models whose latent format is a video format (Qwen-Image uses Wan 2.1's, `latent_dimensions`
3) are sampled by ComfyUI (from 0.33) with a frame axis of length 1: a 4-D LATENT becomes
[B, C, 1, H, W] before sampling, and the family's own VAE already encodes [B, C, 1, H, W]. The tile
plan is made over H and W only (`image_latent`); the hook keeps the original in the layout of the
latent being sampled (`as_sampled`), so every pixel-wise step broadcasts over the frame axis and the
tiles are cut over the last two axes, whatever shape the user's LATENT comes in.

Latents with more than one frame (video) are refused: the hook is proven on images.
"""

from __future__ import annotations

import torch


def frame_count(samples: torch.Tensor) -> int | None:
    """T of a [B, C, T, H, W] latent; None for [B, C, H, W]."""
    return samples.shape[2] if samples.dim() == 5 else None


def image_latent(samples: torch.Tensor, what: str = "latent", family: str | None = None) -> torch.Tensor:
    """The [B, C, H, W] picture of an image LATENT: as is, or its one frame of [B, C, 1, H, W].

    Raises a ValueError naming `what` (and the model `family`, when known) for any other shape,
    video latents with T > 1 included.
    """
    if samples.dim() == 4:
        return samples
    if samples.dim() == 5 and samples.shape[2] == 1:
        return samples[:, :, 0]
    of = f" for {family}" if family else ""
    if samples.dim() == 5:
        raise ValueError(
            f"{what} must be an image LATENT{of} ([B, C, H, W] or [B, C, 1, H, W], one frame); got shape "
            f"{tuple(samples.shape)} with {samples.shape[2]} frames (video latents are not supported)"
        )
    raise ValueError(
        f"{what} must be an image LATENT{of} ([B, C, H, W] or [B, C, 1, H, W]); got shape {tuple(samples.shape)}"
    )


def as_sampled(original: torch.Tensor, sampled_shape: torch.Size | tuple) -> torch.Tensor | None:
    """`original` in the layout of the latent being sampled (a frame axis of 1 added or dropped),
    or None when its channels or size differ or the sampled latent has more than one frame."""
    if len(sampled_shape) == 5 and sampled_shape[2] != 1:
        return None
    if original.dim() == len(sampled_shape):
        converted = original
    elif original.dim() == 4 and len(sampled_shape) == 5:
        converted = original.unsqueeze(2)
    elif original.dim() == 5 and original.shape[2] == 1 and len(sampled_shape) == 4:
        converted = original[:, :, 0]
    else:
        return None
    return converted if tuple(converted.shape[1:]) == tuple(sampled_shape[1:]) else None
