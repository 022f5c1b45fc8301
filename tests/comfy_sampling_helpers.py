"""Helpers for tier-2 tests that sample a ModelPatcher in process."""

from __future__ import annotations

import torch


def conds(seed: int = 0, batch: int = 1):
    """(positive, negative) CLIP-L-shaped conditioning without a text encoder."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(batch, 77, 768, generator=g)
    neg = torch.randn(batch, 77, 768, generator=g) * 0.5
    return [[pos, {}]], [[neg, {}]]


def ksample(
    model, latent, *, sampler="euler", scheduler="normal", steps=6, cfg=4.0, denoise=1.0, seed=42, noise_mask=None
):
    """What the stock KSampler node does with these inputs (noise from the seed, then sample)."""
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    pos, neg = conds()
    return comfy.sample.sample(
        model,
        noise,
        steps,
        cfg,
        sampler,
        scheduler,
        pos,
        neg,
        latent,
        denoise=denoise,
        noise_mask=noise_mask,
        disable_pbar=True,
        seed=seed,
    )


def stock_sampling_model(model, prediction: str, shift: float = 2.0, zsnr: bool = False):
    """The same model patched with ComfyUI's own nodes (ModelSamplingDiscrete / ModelSamplingSD3)."""
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete, ModelSamplingSD3

    if prediction == "lune_flow":
        return ModelSamplingSD3().patch(model, shift)[0]
    return ModelSamplingDiscrete().patch(model, {"epsilon": "eps", "sol_v": "v_prediction"}[prediction], zsnr)[0]
