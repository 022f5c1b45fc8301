"""Tier 2: Sol and Lune ship as diffusers-layout SD1.5 UNets. A UNet saved in diffusers layout loads
through UNETLoader's loader (comfy.sd.load_diffusion_model) as SD1.5, with the same weights and
the same output as the original-layout UNet.

ComfyUI recognises a diffusers UNet only when its block structure is one of the known ones, so
the tiny test UNet (two levels) is not detected; this test uses a full-size SD1.5 UNet with random
fp16 weights (~1.7 GB on disk, ~9 GB peak memory, about a minute on two CPU cores).
"""

from __future__ import annotations

import gc

import pytest
import torch

pytestmark = pytest.mark.comfyui


def sd15_unet_config():
    import comfy.model_detection

    return comfy.model_detection.convert_config(
        {
            "use_checkpoint": False,
            "image_size": 32,
            "out_channels": 4,
            "use_spatial_transformer": True,
            "legacy": False,
            "adm_in_channels": None,
            "dtype": torch.float16,
            "in_channels": 4,
            "model_channels": 320,
            "num_res_blocks": [2, 2, 2, 2],
            "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
            "channel_mult": [1, 2, 4, 4],
            "transformer_depth_middle": 1,
            "use_linear_in_transformer": False,
            "context_dim": 768,
            "num_heads": 8,
            "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
            "use_temporal_attention": False,
            "use_temporal_resblock": False,
        }
    )


def random_sd15_state_dict(config, seed=0):
    """Original (LDM) layout, random fp16 weights: shapes from a meta-device UNet."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    kwargs = {k: v for k, v in config.items() if k not in ("dtype",)}
    meta = UNetModel(**kwargs, dtype=torch.float16, device="meta", operations=comfy.ops.disable_weight_init)
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in meta.state_dict().items():
        scale = 1.0 if ("norm" in key and value.ndim == 1 and key.endswith("weight")) else 0.0
        if value.ndim > 1:
            sd[key] = (torch.randn(value.shape, generator=gen) * (0.5 / max(1, value[0].numel()) ** 0.5)).half()
        else:
            sd[key] = torch.full(value.shape, scale, dtype=torch.float16)
    return sd


def forward(patcher, x, sigma, context):
    import comfy.model_management

    comfy.model_management.load_models_gpu([patcher])
    return patcher.model.apply_model(x, sigma, c_crossattn=context)


def test_diffusers_layout_unet_loads_as_sd15_with_identical_weights_and_output(comfy, tmp_path):
    import comfy.model_management
    import comfy.sd
    import comfy.supported_models
    import comfy.utils

    config = sd15_unet_config()
    ldm = random_sd15_state_dict(config)
    mapping = comfy.utils.unet_to_diffusers(config)  # diffusers key → original key
    diffusers = {d: ldm[k] for d, k in mapping.items() if k in ldm}
    assert len(diffusers) == len(ldm), sorted(set(ldm) - set(mapping.values()))[:5]
    assert "conv_in.weight" in diffusers and "input_blocks.0.0.weight" not in diffusers
    path = tmp_path / "sol_unet.safetensors"
    comfy.utils.save_torch_file(diffusers, str(path))
    del diffusers

    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 768, generator=g)
    sigma = torch.tensor([3.0])

    loaded = comfy.sd.load_diffusion_model(str(path))
    assert isinstance(loaded.model.model_config, comfy.supported_models.SD15)
    loaded_sd = loaded.model.diffusion_model.state_dict()
    assert set(loaded_sd) == set(ldm)
    assert all(torch.equal(loaded_sd[k].to(ldm[k].dtype), ldm[k]) for k in ldm)
    out_diffusers = forward(loaded, x, sigma, context)
    del loaded, loaded_sd
    comfy.model_management.unload_all_models()
    gc.collect()

    original = comfy.sd.load_diffusion_model_state_dict(ldm)
    out_original = forward(original, x, sigma, context)
    assert torch.isfinite(out_original).all() and out_original.abs().max() > 1e-3
    assert torch.equal(out_diffusers, out_original)
    del original
    comfy.model_management.unload_all_models()
    gc.collect()
