"""Tier-2 helpers of the image nodes: a random-weight VAE with the full SD1.5 layout, counted VAE wrappers,
and the pictures and masks the tests refine."""

from __future__ import annotations

SD_VAE_CONFIG = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def sd_vae_state_dict(seed: int = 3):
    """The state dict of ComfyUI's own AutoencoderKL with the SD1.5 VAE's layout (83M parameters, mid-block
    attention included), torch's default initialisation (ComfyUI's layers skip it, so it is run here)."""
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL

    torch.manual_seed(seed)
    model = AutoencoderKL(ddconfig=dict(SD_VAE_CONFIG), embed_dim=4)
    for module in model.modules():
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm):
            if isinstance(module, base):
                base.reset_parameters(module)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def sd_vae(seed: int = 3):
    """A comfy.sd.VAE built from `sd_vae_state_dict` (what VAELoader would give for that file)."""
    import comfy.sd

    return comfy.sd.VAE(sd=sd_vae_state_dict(seed))


class CountedVAE:
    """Wraps a comfy.sd.VAE and records the spatial size of every encode / decode input (keyed: counts live
    on this object, nothing global). Everything else is the VAE's own."""

    def __init__(self, vae):
        self._vae, self.encoded, self.decoded = vae, [], []

    def __getattr__(self, name):
        return getattr(self._vae, name)

    def encode(self, pixels):
        self.encoded.append(tuple(pixels.shape[1:3]))
        return self._vae.encode(pixels)

    def decode(self, latent):
        self.decoded.append(tuple(latent.shape[-2:]))
        return self._vae.decode(latent)

    @property
    def encoded_pixels(self) -> int:
        return sum(h * w for h, w in self.encoded)

    @property
    def decoded_cells(self) -> int:
        return sum(h * w for h, w in self.decoded)


def picture(height: int, width: int, seed: int = 0):
    """A smooth random picture [1, H, W, 3] with 8-bit values (what LoadImage gives for a PNG)."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 16), max(2, width // 16), generator=gen)
    img = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    img = img + 0.05 * torch.rand(1, 3, height, width, generator=gen)
    return (img.clamp(0, 1) * 255).round().div(255).movedim(1, -1).contiguous()
