"""Tier-2 helpers for the tiled img2img tests: a cheap stand-in network wrapped in ComfyUI's
BaseModel / ModelPatcher, and the patch node called in process."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """A stand-in diffusion network: output = f(x, t, context) with weights from a seed.

    pointwise=True uses only 1x1 mixing (each output pixel depends on that input pixel only), so
    tile-by-tile evaluation must equal whole-image evaluation. Otherwise a 3x3 conv mixes neighbours.
    """

    def __init__(self, channels=4, pointwise=False, seed=0, **_):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        k = 1 if pointwise else 3
        self.pointwise = pointwise
        self.conv = torch.nn.Conv2d(channels, channels, k, padding=k // 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3 / k)
            self.conv.bias.copy_(torch.randn(channels, generator=g) * 0.1)
        self.ctx = torch.nn.Parameter(torch.randn(768, channels, generator=g) * 0.02)
        self.calls = []  # input shape of every call
        self.requires_grad_(False)
        self.dtype = torch.float32

    def forward(self, x, timesteps, context=None, control=None, transformer_options=None, **kwargs):
        self.calls.append(tuple(x.shape))
        t = (timesteps.float() / 1000.0).view(-1, 1, 1, 1)
        if self.pointwise:  # elementwise only, so its bits do not depend on the input's size
            w = self.conv.weight[:, :, 0, 0]
            mixed = x * w.diagonal().view(1, -1, 1, 1) + x.roll(1, dims=1) * w[:, 0].view(1, -1, 1, 1)
            out = mixed * (0.5 + t) + torch.tanh(x) * 0.3 + self.conv.bias.view(1, -1, 1, 1)
        else:
            out = self.conv(x) * (0.5 + t) + torch.tanh(x) * 0.3
        if context is not None:
            ctx = (context.float().mean(dim=1)[:, :, None] * self.ctx[None]).sum(dim=1)
            out = out + ctx.view(x.shape[0], -1, 1, 1)
        return out


def standin_model(prediction="epsilon", channels=4, pointwise=False, seed=0, patch_size=None):
    """A ModelPatcher around TinyNet, patched to `prediction` with SolunePredictionType.
    channels=16 uses ComfyUI's Flux latent format (SD3/Flux-like 16-channel latents)."""
    import comfy.latent_formats
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models

    from solune.nodes.prediction_type import SolunePredictionType

    config_cls = comfy.supported_models.SD15 if channels == 4 else comfy.supported_models.Flux
    config = config_cls({"disable_unet_model_creation": True})
    if channels != 4:
        config.latent_format = comfy.latent_formats.Flux()
    base = comfy.model_base.BaseModel(config, comfy.model_base.ModelType.EPS, device="cpu")
    base.diffusion_model = TinyNet(channels, pointwise, seed)
    if patch_size is not None:
        base.diffusion_model.patch_size = patch_size
    base.eval()
    patcher = comfy.model_patcher.ModelPatcher(
        base, load_device=torch.device("cpu"), offload_device=torch.device("cpu")
    )
    return SolunePredictionType.execute(
        model=patcher, prediction=prediction, shift=2.0, zero_terminal_snr=False
    ).result[0]


def tiled_patch(model, latent, **kw):
    """SoluneTiledImg2Img.execute (TileSettings defaults for anything not given)."""
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img

    return SoluneTiledImg2Img.execute(model=model, latent={"samples": latent}, **kw).result[0]
