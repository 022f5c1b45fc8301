"""Tier-2 test models of every family Solune supports, built with ComfyUI's own classes at the
smallest size its `model_detection` still recognises, random weights with PyTorch's default init.

- SD1.5: `tests/comfy_harness.tiny_sd15_unet_state_dict` (two levels, context 768).
- SDXL: ComfyUI's UNetModel with model_channels 320, context 2048, adm_in_channels 2816 (pooled
  CLIP-G + size embeddings) and input transformer depths [0, 2, 5] (the KOALA-700M config of
  the SDXL family, the shallowest ComfyUI ships), on two levels.
- SD3: an MMDiT of depth 1 (hidden 64, one head), patch 2, 16 channels, context 4096, pooled 2048.
- Flux: one double and one single block; ComfyUI's detection fixes hidden 3072 = 24 heads ·
  sum(axes_dim [16, 56, 56]) and context 4096, so this is the one large model (~0.5 G parameters).
- An LDM ControlNet (`comfy.cldm.cldm.ControlNet`, keys `zero_convs.*`, `input_hint_block.*`) for
  the SD1.5 and the SDXL UNet: ControlNetLoader rebuilds it from its own input blocks.

Each builder returns a state dict in the on-disk layout; `save` writes it as .safetensors so the
tests load it through the stock loaders (UNETLoader, ControlNetLoader). Conditioning of the right
shapes is built here too, since the text encoders would dominate the run time.
"""

from __future__ import annotations

from pathlib import Path

import torch

# the torch classes whose reset_parameters is PyTorch's default init (comfy.ops subclasses skip it)
_INIT_CLASSES = (
    torch.nn.Linear,
    torch.nn.Conv1d,
    torch.nn.Conv2d,
    torch.nn.Conv3d,
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
    torch.nn.Embedding,
)


def default_init(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every weight PyTorch's default init, seeded.

    Modules built with comfy.ops.disable_weight_init leave their weights uninitialised; this calls
    the torch base class's `reset_parameters` on every layer. Parameters that belong to no torch
    layer are ComfyUI's own: norm scales (RMSNorm `scale` / `weight`) get 1 as torch's norms do,
    anything else (positional tables, embeddings) N(0, 0.02) as in the models' reference inits.
    """
    done = set()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            for layer in module.modules():
                for cls in _INIT_CLASSES:
                    if isinstance(layer, cls):
                        cls.reset_parameters(layer)
                        done.update(id(p) for p in layer.parameters(recurse=False))
                        break
            for name, p in module.named_parameters():
                if id(p) in done:
                    continue
                leaf = name.rsplit(".", 1)[-1]
                if p.dim() == 1 and leaf in ("scale", "weight"):
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)
    return module


def mmdit_pos_embed(net: torch.nn.Module) -> torch.nn.Module:
    """Fill an MMDiT's `pos_embed` buffer with the fixed 2-D sin-cos table SD3 files carry (ComfyUI's
    own `get_2d_sincos_pos_embed`). The class registers it with `torch.empty`, so left alone it holds
    whatever memory it got: a file written from it gives NaN or not from run to run."""
    from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

    n, dim = net.pos_embed.shape[-2:]
    table = get_2d_sincos_pos_embed(dim, int(round(n**0.5)))
    with torch.no_grad():
        net.pos_embed.copy_(torch.from_numpy(table).to(net.pos_embed.dtype).reshape(net.pos_embed.shape))
    return net


def _state_dict(module: torch.nn.Module, prefix: str = "") -> dict:
    return {prefix + k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def save(state_dict: dict, path: Path, metadata: dict | None = None) -> Path:
    import comfy.utils

    path.parent.mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file(state_dict, str(path), metadata=metadata)
    return path


# ---------------------------------------------------------------- UNets and their ControlNet
SD15_UNET = {
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 1],
    "transformer_depth": [1, 0],
    "transformer_depth_output": [1, 1, 0, 0],
    "transformer_depth_middle": 0,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
}
SDXL_UNET = {
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1, 2],
    "channel_mult": [1, 1],
    "transformer_depth": [0, 2, 5],
    "transformer_depth_output": [0, 0, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 2048,
    "num_heads": -1,
    "num_head_channels": 64,
    "use_linear_in_transformer": True,
    "adm_in_channels": 2816,
    "num_classes": "sequential",
}


def sdxl_unet_state_dict(seed: int = 0) -> dict:
    """A UNet that ComfyUI detects as SDXL (KOALA-700M config: transformer depths [0, 2, 5])."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(
        image_size=32,
        use_temporal_attention=False,
        use_spatial_transformer=True,
        dtype=torch.float32,
        device="cpu",
        operations=comfy.ops.disable_weight_init,
        **SDXL_UNET,
    )
    return _state_dict(default_init(unet, seed))


def controlnet_state_dict(unet: dict, seed: int = 10, hint_channels: int = 3) -> dict:
    """An LDM-format ControlNet for a UNet config (SD15_UNET / SDXL_UNET) with default-init weights
    (zero_convs included, so its residuals are not zero as a fresh real ControlNet's would be).
    hint_channels 4 takes an RGB hint plus a mask (ControlNet's `extra_concat`)."""
    import comfy.cldm.cldm
    import comfy.ops

    cfg = {k: v for k, v in unet.items() if k not in ("out_channels", "transformer_depth_output")}
    net = comfy.cldm.cldm.ControlNet(
        image_size=32,
        hint_channels=hint_channels,
        use_spatial_transformer=True,
        dtype=torch.float32,
        device="cpu",
        operations=comfy.ops.disable_weight_init,
        **cfg,
    )
    return _state_dict(default_init(net, seed), prefix="control_model.")


# ---------------------------------------------------------------- transformers
def sd3_state_dict(seed: int = 0) -> dict:
    """An MMDiT that ComfyUI detects as SD3: depth 1 (hidden 64), patch 2, 16 channels."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT

    net = MMDiT(
        patch_size=2,
        in_channels=16,
        out_channels=16,
        depth=1,
        adm_in_channels=2048,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 64}},
        pos_embed_max_size=32,
        num_patches=32 * 32,
        pos_embed_scaling_factor=None,
        qk_norm=None,
        dtype=torch.float32,
        device="cpu",
        operations=comfy.ops.disable_weight_init,
    )
    return _state_dict(mmdit_pos_embed(default_init(net, seed)))


FLUX = {
    "in_channels": 16,
    "out_channels": 16,
    "vec_in_dim": 768,
    "context_in_dim": 4096,
    "hidden_size": 3072,
    "mlp_ratio": 4.0,
    "num_heads": 24,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [16, 56, 56],
    "theta": 10000,
    "patch_size": 2,
    "qkv_bias": True,
    "guidance_embed": True,
}


def flux_params() -> dict:
    """FLUX as the installed ComfyUI's `FluxParams` takes it: newer versions require `txt_ids_dims`
    (which text-token axes carry position ids), [] for Flux dev, as their model detection sets it."""
    import dataclasses

    from comfy.ldm.flux.model import FluxParams

    fields = {f.name for f in dataclasses.fields(FluxParams)}
    return {**FLUX, "txt_ids_dims": []} if "txt_ids_dims" in fields else dict(FLUX)


def flux_state_dict(seed: int = 0) -> dict:
    """A Flux-dev-shaped transformer with one double and one single block and guidance embedding."""
    import comfy.ops
    from comfy.ldm.flux.model import Flux

    net = Flux(dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init, **flux_params())
    return _state_dict(default_init(net, seed))


# ---------------------------------------------------------------- conditioning
def conditioning(family: str, seed: int = 0, tokens: int = 8):
    """(positive, negative) CONDITIONING lists with the shapes the family's text encoders give."""
    g = torch.Generator().manual_seed(seed)
    context, pooled = {"sd15": (768, None), "sdxl": (2048, 1280), "sd3": (4096, 2048), "flux": (4096, 768)}[family]
    n = 77 if family in ("sd15", "sdxl") else tokens
    out = []
    for scale in (1.0, 0.5):
        extra = {}
        if pooled is not None:
            extra["pooled_output"] = torch.randn(1, pooled, generator=g) * scale
        if family == "flux":
            extra["guidance"] = 3.5
        out.append([[torch.randn(1, n, context, generator=g) * scale, extra]])
    return out[0], out[1]
