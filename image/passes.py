"""Regional VAE passes: encode and decode tile by tile, only the tiles of a `VaePass` (pure torch).

The VAE is the caller's: `encode(pixels [B, h·d, w·d, C]) → latent [B, c, h, w]` and
`decode(latent [B, c, h, w]) → pixels [B, h·d, w·d, C]` (ComfyUI's IMAGE layout for pixels), d the
VAE's pixels per latent cell. Each tile reads its `reads` box, keeps the part it `writes`, and is
accumulated into the result with the pass's feathered ratios (`VaePass.ratios`): one tile in memory at
a time besides the result, no seam where tiles overlap, and exactly the tile's own output where one
tile writes. `tick(done, total)` runs before each tile and after the last (progress; a callback that
raises stops the pass between tiles, leaving nothing behind but the caller's own tensors).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .regions import VaePass

Tick = Callable[[int, int], None]


def _box(t, d: int) -> tuple[slice, slice]:
    return slice(t.y0 * d, t.y1 * d), slice(t.x0 * d, t.x1 * d)


def _inner(write, read, d: int) -> tuple[slice, slice]:
    """The part of a read box's output that the write box covers, at d pixels per cell."""
    return (
        slice((write.y0 - read.y0) * d, (write.y1 - read.y0) * d),
        slice((write.x0 - read.x0) * d, (write.x1 - read.x0) * d),
    )


def encode_regional(
    pixels: torch.Tensor,
    vae_pass: VaePass,
    encode: Callable[[torch.Tensor], torch.Tensor],
    downscale: int,
    channels: int,
    tick: Tick | None = None,
) -> torch.Tensor:
    """The latent [B, channels, h, w] (float32) of `pixels` [B, h·d, w·d, C] on the pass's tiles; 0 elsewhere."""
    d, h, w = downscale, vae_pass.latent_h, vae_pass.latent_w
    if pixels.dim() != 4 or tuple(pixels.shape[1:3]) != (h * d, w * d):
        raise ValueError(f"pixels must be [B, {h * d}, {w * d}, C]; got shape {tuple(pixels.shape)}")
    out = torch.zeros(pixels.shape[0], channels, h, w, dtype=torch.float32)
    n = len(vae_pass)
    for i, (write, read, ratio) in enumerate(zip(vae_pass.writes, vae_pass.reads, vae_pass.ratios(1))):
        if tick is not None:
            tick(i, n)
        latent = encode(pixels[:, _box(read, d)[0], _box(read, d)[1], :])
        if tuple(latent.shape[-2:]) != read.size or latent.shape[1] != channels:
            raise ValueError(
                f"the VAE encoded {read.h * d}×{read.w * d} pixels to shape {tuple(latent.shape)}; expected "
                f"[B, {channels}, {read.h}, {read.w}] (a VAE with {d} pixels per latent cell and {channels} channels)"
            )
        if out.device != latent.device:
            out = out.to(latent.device)
        rows, cols = write.slices
        inner = latent[(..., *_inner(write, read, 1))].to(torch.float32)
        out[..., rows, cols] = torch.lerp(out[..., rows, cols], inner, ratio.to(out.device))
    if tick is not None:
        tick(n, n)
    return out


def decode_regional(
    latent: torch.Tensor,
    vae_pass: VaePass,
    decode: Callable[[torch.Tensor], torch.Tensor],
    downscale: int,
    tick: Tick | None = None,
) -> torch.Tensor:
    """Pixels [B, h·d, w·d, C] (float32) decoded from `latent` [B, c, h, w] on the pass's tiles; 0 elsewhere."""
    d, h, w = downscale, vae_pass.latent_h, vae_pass.latent_w
    if latent.dim() != 4 or tuple(latent.shape[-2:]) != (h, w):
        raise ValueError(f"latent must be [B, c, {h}, {w}]; got shape {tuple(latent.shape)}")
    out = None
    n = len(vae_pass)
    for i, (write, read, ratio) in enumerate(zip(vae_pass.writes, vae_pass.reads, vae_pass.ratios(d))):
        if tick is not None:
            tick(i, n)
        pixels = decode(latent[..., read.slices[0], read.slices[1]])
        if pixels.dim() != 4 or tuple(pixels.shape[1:3]) != (read.h * d, read.w * d):
            raise ValueError(
                f"the VAE decoded a {read.h}×{read.w} latent to shape {tuple(pixels.shape)}; expected "
                f"[B, {read.h * d}, {read.w * d}, C] (a VAE with {d} pixels per latent cell)"
            )
        if out is None:
            out = torch.zeros(
                latent.shape[0], h * d, w * d, pixels.shape[-1], dtype=torch.float32, device=pixels.device
            )
        rows, cols = _box(write, d)
        inner = pixels[:, _inner(write, read, d)[0], _inner(write, read, d)[1], :].to(out)
        out[:, rows, cols, :] = torch.lerp(out[:, rows, cols, :], inner, ratio.to(out.device)[..., None])
    if tick is not None:
        tick(n, n)
    if out is None:
        raise ValueError("the decode pass has no tiles: nothing changed, so there is nothing to decode")
    return out


__all__ = ["decode_regional", "encode_regional"]
