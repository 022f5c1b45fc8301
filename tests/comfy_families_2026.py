"""Tier-2 test models of the families people refine with in 2026 (Qwen-Image, Flux.2, HunyuanImage
2.1, Chroma, Lumina 2, Z-Image, Kandinsky 5 image, HiDream, Ernie-Image) and of SD3.5, each built with
ComfyUI's own class at the smallest size its `model_detection` still recognises, PyTorch's default
init (`comfy_families.default_init`), written as .safetensors and loaded by the stock loader (what
UNETLoader does); HiDream and Ernie-Image, whose detection fixes a full-size model whatever the file
holds, reduced and loaded through ComfyUI's loading steps with the reduced config (below).

Widths are what detection fixes; where it reads them off the weights, the smallest that builds.
Parameter counts are ComfyUI 0.33.0's; "bf16" files are loaded into a float32 model on the CPU.

- qwen_image: `QwenImageTransformer2DModel`, one block; detection reads only the input width and
  the depth, so the block is full width (24 heads x 128, text 3584) (~1.4 GB).
- flux2: `comfy.ldm.flux.model.Flux` with Flux.2's fixed settings (global modulation, 4 rope axes
  of 32, 128 latent channels, patch 1), hidden 128 = one head, one double and one single block,
  text 7680 (Flux.2 klein's Qwen3-4B, three layers stacked), no guidance embedding (klein).
- hunyuan_image21: `comfy.ldm.hunyuan_video.model.HunyuanVideo` with a 2-D patch (HunyuanImage 2.1's
  64-channel latent at 1/32 of the pixels), hidden 128 = one head, one double and one single block.
- sd35: an MMDiT-X (SD3.5 Medium: RMS q/k norm, the x-block self-attention) of depth 1; ComfyUI
  runs it as its SD3 family (there is no separate class), on every version.
- chroma: `comfy.ldm.chroma.model.Chroma`, one double and one single block. Detection reads the
  width off the weights but fixes the distilled-guidance approximator (5 layers of 5120, run on 344
  index tokens per call, whatever the picture) and its output, 3072, which every block's modulation
  takes: so the blocks are 3072 wide too. 631 M parameters, 278 M of them the approximator; bf16
  file 1.26 GB.
- lumina2: `comfy.ldm.lumina.model.NextDiT` at the width detection maps to Lumina 2 (2304, 24 query /
  8 key-value heads; any other width but Z-Image's gets NextDiT's defaults, 32 heads of 128, i.e.
  4096 wide), one joint layer plus the two noise- and two context-refiner blocks the class always
  builds (the refiners attend within the picture or the text only: without a joint layer the
  prompt would not reach the picture): 427 M parameters, bf16 file 0.85 GB.
- z_image: the same class at Z-Image's pinned width 3840 (30 heads), its modulation and pad tokens,
  one joint layer and the four refiner blocks: 909 M parameters, bf16 file 1.8 GB, 3.6 GB in
  memory once loaded (peak ~6 GB in the loading process, file and model together).
- kandinsky5_image: `comfy.ldm.kandinsky5.model.Kandinsky5` at the lite image model's pinned width
  2560 (20 heads of 128) and visual input 64 (16 channels x 2 x 2); detection reads the feed-forward
  and time widths off the weights, so they are 256 and 64 here; one text and one visual block:
  94 M parameters.

Reduced below what detection builds (HiDream, Ernie-Image). ComfyUI's detection recognises these
files (by `caption_projection.0.linear.weight`, `layers.0.mlp.linear_fc2.weight`) but reads no size
off them, so UNETLoader (`comfy.sd.load_diffusion_model`) can only build the full model; counted on
the meta device (nothing allocated), on 0.33.0 and 0.3.64 alike:
- HiDream: 16 double + 32 single mixture-of-experts blocks at width 2560 (20 heads of 128):
  17.1 G parameters (68 GB in float32).
- Ernie-Image (0.33 era only; 0.3.64 detects no family in the file): only the family name, so the
  class's defaults, 36 layers of 4096 with feed-forward 12288: 8.0 G parameters (32 GB in float32).
So they are built with ComfyUI's own class at a small width and depth, PyTorch's default init, and
written as .safetensors with the reduced config in the file's metadata; the test-only loader
(tests/fixtures/reduced_model_loader, `load_model` here; `SoluneTestReducedModelLoader` over HTTP)
runs ComfyUI's own loading steps on the file (supported-models class, dtypes, `get_model`,
`load_model_weights`, `ModelPatcher`) with only detection's config replaced, after checking that
detection names the family and that the reduced config picks the same class. Kept real: the
latent format, channels and patch size, the per-call interface of each `model_base` class and the
widths of the text encoders' outputs the model takes.
- hidream: `comfy.ldm.hidream.model.HiDreamImageTransformer2DModel`, one double- and one
  single-stream block, each with HiDream's mixture of experts (4 routed, 2 active, plus the
  shared one), one head of 128 (the rope axes [64, 32, 32] fix the head width), 16-channel Flux
  latent at patch 2; conditioning as HiDream's text encoders give it: T5-XXL context [1, T, 4096],
  pooled CLIP-L + CLIP-G [1, 2048] and Llama 3.1 8B's 32 hidden layers `conditioning_llama3`
  [1, 32, T, 4096], of which the two blocks read the layers the real model's first double and
  first single block read (0 and 16). 4.4 M parameters.
- ernie_image: `comfy.ldm.ernie.model.ErnieImageModel`, one layer of one head of 128 (rope axes
  (32, 48, 48)), feed-forward 3 x width as the real model's, the 128-channel Flux.2 latent at patch 1,
  Ministral 3 3B's context [1, T, 3072] and token mask. 0.8 M parameters.

Latent sizes per family come from its latent format (channels, pixels per latent unit).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

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


def _bf16_weights(module: torch.nn.Module) -> dict:
    """The module's weights as written (bf16, as these families' checkpoints ship), without a second
    fp32 copy: the large builders below build in bf16 and hand their tensors over as they are."""
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in module.state_dict().items()}


def _known(cls_or_fields, config: dict) -> dict:
    """`config` less the keys the installed class does not take (older versions lack some)."""
    return {k: v for k, v in config.items() if k in cls_or_fields}


CHROMA = {
    "in_channels": 64,
    "out_channels": 64,
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
    "in_dim": 64,
    "out_dim": 3072,
    "hidden_dim": 5120,
    "n_layers": 5,
    "txt_ids_dims": [],
    "vec_in_dim": None,
}


def chroma_state_dict(seed: int = 0) -> dict:
    """Chroma: Flux's blocks without per-block modulation, fed by the distilled-guidance approximator."""
    import dataclasses

    import comfy.ops
    from comfy.ldm.chroma.model import Chroma, ChromaParams

    config = _known({f.name for f in dataclasses.fields(ChromaParams)}, CHROMA)
    net = Chroma(dtype=torch.bfloat16, device="cpu", operations=comfy.ops.disable_weight_init, **config)
    return _bf16_weights(default_init(net, seed))


LUMINA2 = {
    "patch_size": 2,
    "in_channels": 16,
    "dim": 2304,
    "n_layers": 1,
    "n_heads": 24,
    "n_kv_heads": 8,
    "qk_norm": True,
    "cap_feat_dim": 2304,
    "axes_dims": [32, 32, 32],
    "axes_lens": [300, 512, 512],
}
#: what 0.33-era detection adds for Lumina 2 (its NextDiT takes `rope_theta`; 0.3.64's builds the same
#: 4 x dim feed-forward from its own defaults and has no such argument)
LUMINA2_RECENT = {"rope_theta": 10000.0, "ffn_dim_multiplier": 4.0}

Z_IMAGE = {
    "patch_size": 2,
    "in_channels": 16,
    "dim": 3840,
    "n_layers": 1,
    "n_heads": 30,
    "n_kv_heads": 30,
    "qk_norm": True,
    "cap_feat_dim": 2560,
    "axes_dims": [32, 48, 48],
    "axes_lens": [1536, 512, 512],
    "rope_theta": 256.0,
    "ffn_dim_multiplier": 8.0 / 3.0,
    "z_image_modulation": True,
    "time_scale": 1000.0,
    "pad_tokens_multiple": 32,
}


def _next_dit(config: dict, seed: int) -> dict:
    import comfy.ops
    from comfy.ldm.lumina.model import NextDiT

    net = NextDiT(dtype=torch.bfloat16, device="cpu", operations=comfy.ops.disable_weight_init, **config)
    return _bf16_weights(default_init(net, seed))


def lumina2_state_dict(seed: int = 0) -> dict:
    """Lumina 2 (NextDiT at width 2304, grouped-query attention 24/8 heads): one joint layer, and the
    two noise- and two context-refiner blocks the class always builds."""
    import inspect

    from comfy.ldm.lumina.model import NextDiT

    recent = "rope_theta" in inspect.signature(NextDiT.__init__).parameters
    return _next_dit({**LUMINA2, **(LUMINA2_RECENT if recent else {})}, seed)


def z_image_state_dict(seed: int = 0) -> dict:
    """Z-Image (NextDiT at width 3840, 30 heads, Z-Image's modulation and pad tokens): one joint layer
    and the four refiner blocks."""
    return _next_dit(Z_IMAGE, seed)


KANDINSKY5_IMAGE = {
    "in_visual_dim": 16,
    "out_visual_dim": 16,
    "in_text_dim": 3584,
    "in_text_dim2": 768,
    "time_dim": 64,
    "model_dim": 2560,
    "ff_dim": 256,
    "visual_embed_dim": 64,
    "patch_size": (1, 2, 2),
    "num_text_blocks": 1,
    "num_visual_blocks": 1,
    "axes_dims": (32, 48, 48),
    "rope_scale_factor": (1.0, 1.0, 1.0),
}


def kandinsky5_image_state_dict(seed: int = 0) -> dict:
    """Kandinsky 5 image (lite): width 2560 (20 heads of 128), one text and one visual block;
    detection reads the feed-forward and time widths off the weights, so those are narrow here."""
    import comfy.ops
    from comfy.ldm.kandinsky5.model import Kandinsky5

    net = Kandinsky5(dtype=torch.bfloat16, device="cpu", operations=comfy.ops.disable_weight_init, **KANDINSKY5_IMAGE)
    return _bf16_weights(default_init(net, seed))


#: HiDream (I1) reduced: one double- and one single-stream mixture-of-experts block (4 routed experts, 2
#: active, as the real model), one head of 128 (the rope axes [64, 32, 32] fix the head width); the
#: real text widths: T5-XXL context 4096, Llama 3.1 8B's 32 hidden layers of 4096, pooled CLIP-L +
#: CLIP-G 2048; `llama_layers` the layers the real model's first double and first single block read
HIDREAM = {
    "image_model": "hidream",
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 128,
    "num_attention_heads": 1,
    "caption_channels": [4096, 4096],
    "text_emb_dim": 2048,
    "num_routed_experts": 4,
    "num_activated_experts": 2,
    "axes_dims_rope": [64, 32, 32],
    "max_resolution": [128, 128],
    "llama_layers": [0, 16],
}

#: Ernie-Image reduced: one layer of one head of 128 (the rope axes (32, 48, 48) fix the head width),
#: feed-forward 3 x width as the real 12288 / 4096; the real text width (Ministral 3 3B, 3072), the
#: real 128-channel Flux.2 latent at patch 1
ERNIE_IMAGE = {
    "image_model": "ernie",
    "hidden_size": 128,
    "num_attention_heads": 1,
    "num_layers": 1,
    "ffn_hidden_size": 384,
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "text_in_dim": 3072,
    "rope_theta": 256,
    "rope_axes_dim": [32, 48, 48],
}


def _reduced(net_class, config: dict, seed: int):
    """(state dict, metadata naming the reduced config) of `net_class` built at `config`."""
    import json

    import comfy.ops

    kw = {k: v for k, v in config.items() if k != "image_model"}
    net = net_class(dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init, **kw)
    return _state_dict(default_init(net, seed)), {reduced_loader().CONFIG_KEY: json.dumps(config)}


@functools.cache
def reduced_loader():
    """The test-only loader node's module (tests/fixtures/reduced_model_loader), imported from its file."""
    import importlib.util

    path = Path(__file__).parent / "fixtures" / "reduced_model_loader" / "__init__.py"
    spec = importlib.util.spec_from_file_location("solune_test_reduced_model_loader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hidream_state_dict(seed: int = 0):
    from comfy.ldm.hidream.model import HiDreamImageTransformer2DModel

    return _reduced(HiDreamImageTransformer2DModel, HIDREAM, seed)


def ernie_image_state_dict(seed: int = 0):
    from comfy.ldm.ernie.model import ErnieImageModel

    return _reduced(ErnieImageModel, ERNIE_IMAGE, seed)


GEMMA_MASK = torch.ones(1, 8, dtype=torch.int64)  # Gemma 2's token mask for 8 unpadded tokens
MASK = {"attention_mask": GEMMA_MASK}  # a text encoder's token mask, 8 unpadded tokens (Ministral 3's alike)
LLAMA3 = {"conditioning_llama3": (1, 32, 8, 4096)}  # HiDream: Llama 3.1 8B's 32 hidden layers of 8 tokens


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
    tensors: dict = field(default_factory=dict)  # per-cond extra tensors (name: shape), random like the context
    reduced: bool = False  # built below detection's fixed size: loaded by the test-only loader, not UNETLoader


FAMILIES_2026 = {
    f.name: f
    for f in (
        Family("qwen_image", "QwenImage", qwen_image_state_dict, 16, 8, 8, 3584),
        Family("flux2", "Flux2", flux2_state_dict, 128, 16, 8, 7680, cfg=1.0),
        Family("hunyuan_image21", "HunyuanImage21", hunyuan_image21_state_dict, 64, 32, 8, 3584, cfg=1.0),
        Family("sd35", "SD3", sd35_state_dict, 16, 8, 8, 4096, pooled=2048),
        # cfg 1 (no negative batch) for the two whose calls cost most on a CPU: Z-Image Turbo runs so,
        # Chroma's fixed-size guidance approximator alone is ~0.2 TFLOP per image per call
        # T5 gives no pooled output (CLIPTextEncode passes None; 0.3.64's Chroma reads the key)
        Family("chroma", "Chroma", chroma_state_dict, 16, 8, 8, 4096, extra={"pooled_output": None}, cfg=1.0),
        # Gemma 2's token mask, all ones for one unpadded prompt (0.3.64 counts the tokens from it)
        Family("lumina2", "Lumina2", lumina2_state_dict, 16, 8, 8, 2304, extra={"attention_mask": GEMMA_MASK}),
        Family("z_image", "ZImage", z_image_state_dict, 16, 8, 8, 2560, cfg=1.0),
        Family("kandinsky5_image", "Kandinsky5Image", kandinsky5_image_state_dict, 16, 8, 8, 3584, pooled=768),
        # T5-XXL context, CLIP-L + CLIP-G pooled, and Llama 3.1 8B's 32 hidden layers (`conditioning_llama3`)
        Family("hidream", "HiDream", hidream_state_dict, 16, 8, 8, 4096, pooled=2048, tensors=LLAMA3, reduced=True),
        # Ministral 3 3B's hidden states and its token mask (ComfyUI's Ernie text encoder returns it)
        Family("ernie_image", "ErnieImage", ernie_image_state_dict, 128, 16, 8, 3072, extra=MASK, reduced=True),
    )
}
#: the families that need a ComfyUI newer than 0.3.64 (0.3.64 already has QwenImage, HunyuanImage21, SD3,
#: Chroma, Lumina2 and HiDream)
NEW_FAMILIES = ["flux2", "z_image", "kandinsky5_image", "ernie_image"]


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

    f = FAMILIES_2026[name]
    path = root / f"tiny_{name}.safetensors"
    if not path.exists():
        if f.reduced:  # the reduced config goes into the file's metadata, for the test-only loader
            state_dict, metadata = f.build()
            save(state_dict, path, metadata)
        else:
            save(f.build(), path)
    return path


def load_model(path, name: str):
    """The family's file loaded as a workflow loads it: UNETLoader's `comfy.sd.load_diffusion_model`, or
    for a reduced family the test-only loader (ComfyUI's loading steps with the reduced config)."""
    if FAMILIES_2026[name].reduced:
        return reduced_loader().load_reduced(path)
    import comfy.sd

    return comfy.sd.load_diffusion_model(str(path))


def conditioning(name: str, seed: int = 0):
    """(positive, negative) CONDITIONING lists with the shapes the family's text encoders give."""
    f = FAMILIES_2026[name]
    g = torch.Generator().manual_seed(seed)
    out = []
    for scale in (1.0, 0.5):
        extra = dict(f.extra)
        if f.pooled is not None:
            extra["pooled_output"] = torch.randn(1, f.pooled, generator=g) * scale
        for key, shape in f.tensors.items():
            extra[key] = torch.randn(*shape, generator=g) * scale
        out.append([[torch.randn(1, f.tokens, f.context, generator=g) * scale, extra]])
    return out[0], out[1]


def latent(name: str, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A [1, C, h, w] latent of the family's channels."""
    return torch.randn(1, FAMILIES_2026[name].channels, h, w, generator=torch.Generator().manual_seed(seed))
