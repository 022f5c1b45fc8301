"""Tier-2 test models of the families people refine with in 2026 (Qwen-Image, Flux.2, HunyuanImage
2.1) and of SD3.5, each built with ComfyUI's own class at the smallest size its
`model_detection` still recognises, PyTorch's default init (`comfy_families.default_init`), written
as .safetensors and loaded by the stock loader (what UNETLoader does).

Widths are what detection fixes; where it reads them off the weights, the smallest that builds:

- qwen_image: `QwenImageTransformer2DModel`, one block; detection reads only the input width and
  the depth, so the block is full width (24 heads x 128, text 3584): the one large model here (~1.4 GB).
- flux2: `comfy.ldm.flux.model.Flux` with Flux.2's fixed settings (global modulation, 4 rope axes
  of 32, 128 latent channels, patch 1), hidden 128 = one head, one double and one single block,
  text 7680 (Flux.2 klein's Qwen3-4B, three layers stacked), no guidance embedding (klein).
- hunyuan_image21: `comfy.ldm.hunyuan_video.model.HunyuanVideo` with a 2-D patch (HunyuanImage 2.1's
  64-channel latent at 1/32 of the pixels), hidden 128 = one head, one double and one single block.

Not here: Lumina 2 and Z-Image (NextDiT): detection fixes their width (2304 / 3840) and the class
always builds two refiner blocks per stream, so one layer is 5 full blocks (0.33's Lumina 2 ffn
alone is 36864 wide: ~1.3 G parameters; Z-Image ~0.9 G): too large for a CPU test. HiDream:
detection fixes 16 + 32 mixture-of-experts blocks at width 2560 (~17 G parameters).
- sd35: an MMDiT-X (SD3.5 Medium: RMS q/k norm, the x-block self-attention) of depth 1; ComfyUI
  runs it as its SD3 family (there is no separate class), on every version.

Latent sizes per family come from its latent format (channels, pixels per latent unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from comfy_families import _state_dict, default_init, mmdit_pos_embed


def qwen_image_state_dict(seed: int = 0) -> dict:
    import comfy.ops
    from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel

    net = QwenImageTransformer2DModel(
        num_layers=1, in_channels=64, out_channels=16, dtype=torch.float32, device="cpu",
        operations=comfy.ops.disable_weight_init,
    )  # fmt: skip
    return _state_dict(default_init(net, seed))


FLUX2 = {
    "in_channels": 128,
    "out_channels": 128,
    "vec_in_dim": None,
    "context_in_dim": 7680,
    "hidden_size": 128,
    "mlp_ratio": 3.0,
    "num_heads": 1,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [32, 32, 32, 32],
    "theta": 2000,
    "patch_size": 1,
    "qkv_bias": False,
    "guidance_embed": False,
    "txt_ids_dims": [3],
    "global_modulation": True,
    "mlp_silu_act": True,
    "ops_bias": False,
    "default_ref_method": "index",
    "ref_index_scale": 10.0,
}


def flux2_state_dict(seed: int = 0) -> dict:
    import comfy.ops
    from comfy.ldm.flux.model import Flux

    net = Flux(dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init, **FLUX2)
    return _state_dict(default_init(net, seed))


HUNYUAN_IMAGE21 = {
    "in_channels": 64,
    "out_channels": 64,
    "vec_in_dim": None,
    "context_in_dim": 3584,
    "hidden_size": 128,
    "mlp_ratio": 4.0,
    "num_heads": 1,
    "depth": 1,
    "depth_single_blocks": 1,
    "axes_dim": [64, 64],
    "theta": 256,
    "patch_size": [1, 1],
    "qkv_bias": True,
    "guidance_embed": False,
    "byt5": False,
    "meanflow": False,
    "use_cond_type_embedding": False,
    "vision_in_dim": None,
    "meanflow_sum": False,
}


def hunyuan_image21_state_dict(seed: int = 0) -> dict:
    import dataclasses

    import comfy.ops
    from comfy.ldm.hunyuan_video.model import HunyuanVideo, HunyuanVideoParams

    known = {f.name for f in dataclasses.fields(HunyuanVideoParams)}  # later versions added fields (all off here)
    config = {k: v for k, v in HUNYUAN_IMAGE21.items() if k in known}
    net = HunyuanVideo(dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init, **config)
    return _state_dict(default_init(net, seed))


def sd35_state_dict(seed: int = 0) -> dict:
    """An MMDiT-X (SD3.5 Medium's architecture): depth 1, RMS q/k norm, x-block self-attention in block 0."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT

    net = MMDiT(
        patch_size=2, in_channels=16, out_channels=16, depth=1, adm_in_channels=2048,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 64}},
        pos_embed_max_size=32, num_patches=32 * 32, pos_embed_scaling_factor=None, qk_norm="rms",
        x_block_self_attn_layers=[0], dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init,
    )  # fmt: skip
    return _state_dict(mmdit_pos_embed(default_init(net, seed)))


@dataclass(frozen=True)
class Family:
    """One family: the ComfyUI class that must detect it, its builder, and its conditioning shapes."""

    name: str
    supported: str  # the class in comfy.supported_models the loader must pick
    build: object
    channels: int
    downscale: int
    tokens: int
    context: int
    pooled: int | None = None
    extra: dict = field(default_factory=dict)  # per-cond extras (guidance, ...)
    cfg: float = 3.0


FAMILIES_2026 = {
    f.name: f
    for f in (
        Family("qwen_image", "QwenImage", qwen_image_state_dict, 16, 8, 8, 3584),
        Family("flux2", "Flux2", flux2_state_dict, 128, 16, 8, 7680, cfg=1.0),
        Family("hunyuan_image21", "HunyuanImage21", hunyuan_image21_state_dict, 64, 32, 8, 3584, cfg=1.0),
        Family("sd35", "SD3", sd35_state_dict, 16, 8, 8, 4096, pooled=2048),
    )
}
#: the families that need a ComfyUI newer than 0.3.64 (0.3.64 already has QwenImage, Lumina2, HunyuanImage21, SD3)
NEW_FAMILIES = ["flux2"]


def comfyui_of_2026() -> bool:
    """Whether the installed ComfyUI is of the 0.33 era, probed apart from the families: Flux's
    parameters name the text position axes (`FluxParams.txt_ids_dims`, required from 0.33 on)."""
    import dataclasses

    from comfy.ldm.flux.model import FluxParams

    return "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}


def installed_families() -> list[str]:
    """The families whose class the installed ComfyUI has (probed; [] when ComfyUI cannot be imported)."""
    from comfy_harness import import_comfy

    comfy, _ = import_comfy()
    if comfy is None:
        return []
    import comfy.supported_models

    import nodes  # noqa: F401  ComfyUI's, imported now while its folder leads sys.path (pytest prepends this checkout later)

    return [name for name, f in FAMILIES_2026.items() if hasattr(comfy.supported_models, f.supported)]


def model_file(root, name: str):
    """The family's .safetensors file in folder `root`, written on first use."""
    from comfy_families import save

    path = root / f"tiny_{name}.safetensors"
    if not path.exists():
        save(FAMILIES_2026[name].build(), path)
    return path


def conditioning(name: str, seed: int = 0):
    """(positive, negative) CONDITIONING lists with the shapes the family's text encoders give."""
    f = FAMILIES_2026[name]
    g = torch.Generator().manual_seed(seed)
    out = []
    for scale in (1.0, 0.5):
        extra = dict(f.extra)
        if f.pooled is not None:
            extra["pooled_output"] = torch.randn(1, f.pooled, generator=g) * scale
        out.append([[torch.randn(1, f.tokens, f.context, generator=g) * scale, extra]])
    return out[0], out[1]


def latent(name: str, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A [1, C, h, w] latent of the family's channels."""
    return torch.randn(1, FAMILIES_2026[name].channels, h, w, generator=torch.Generator().manual_seed(seed))
