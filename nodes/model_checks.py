"""What a ComfyUI `model_sampling` is, in Solune's terms: its prediction type and its frame."""

from __future__ import annotations

import comfy.model_sampling
import torch

from ..velocity import VelocityModelSampling, alphas_cumprod_from_sigmas

#: the Solune SAMPLER node meant for each prediction type
SAMPLER_FOR = {
    "sol_v": "SoluneSamplerSolDDPM",
    "lune_flow": "SoluneSamplerLuneEuler",
    "epsilon": "SoluneSamplerEpsilonDDIM",
}


def describe(ms) -> str:
    """A short human description of a model_sampling object's prediction type."""
    if isinstance(ms, VelocityModelSampling):
        return f"{ms.prediction} (set by SolunePredictionType)"
    for cls in (
        comfy.model_sampling.CONST,
        comfy.model_sampling.V_PREDICTION,
        comfy.model_sampling.EDM,
        comfy.model_sampling.X0,
        comfy.model_sampling.EPS,
    ):
        if isinstance(ms, cls):
            return f"ComfyUI's own {cls.__name__} ({type(ms).__name__}), not a Solune prediction type"
    return f"{type(ms).__name__}, not a Solune prediction type"


def prediction_error(node_id: str, ms, expected: str) -> str | None:
    """The error text when `ms` is not the Solune prediction type `expected`, else None."""
    if isinstance(ms, VelocityModelSampling) and ms.prediction == expected:
        return None
    actual = describe(ms)
    other = SAMPLER_FOR.get(getattr(ms, "prediction", None)) if isinstance(ms, VelocityModelSampling) else None
    hint = f", or use {other} for a {ms.prediction} model" if other else ""
    return (
        f"{node_id} needs a model patched as {expected}, but the model being sampled is {actual}. Connect the "
        f"model through SolunePredictionType with prediction = {expected}{hint}."
    )


def sampler_model_sampling(k_model):
    """The model_sampling of the model a k-diffusion sampler function drives (ComfyUI's
    KSAMPLER hands the sampler KSamplerX0Inpaint → guider → BaseModel)."""
    guider = getattr(k_model, "inner_model", None)
    base = getattr(guider, "inner_model", None)
    ms = getattr(base, "model_sampling", None)
    if ms is None:
        raise RuntimeError(
            "Solune sampler: cannot find the model's model_sampling; connect the SAMPLER to SamplerCustom or "
            "SamplerCustomAdvanced"
        )
    return ms


def frame_of(ms, who: str) -> str:
    """ "ddpm" (x = x0 + σ·ε) or "flow" (x = (1 − σ)·x0 + σ·ε) for a model_sampling object."""
    if isinstance(ms, VelocityModelSampling):
        return ms.frame
    if isinstance(ms, comfy.model_sampling.CONST):
        return "flow"
    if isinstance(ms, comfy.model_sampling.EPS):
        return "ddpm"
    raise ValueError(
        f"{who}: its sampling type {type(ms).__name__} is neither a DDPM-frame (epsilon / v) nor a flow-frame model; "
        f"patch it with SolunePredictionType (epsilon, sol_v or lune_flow)"
    )


def ddpm_alphas_cumprod_of(ms) -> torch.Tensor:
    """float64 ᾱ of a DDPM-frame model (Solune's own table, else ᾱ = 1/(1 + σ²) from its σ table)."""
    table = getattr(ms, "alphas_cumprod", None)
    if isinstance(ms, VelocityModelSampling) and table is not None:
        return table.double().cpu()
    return alphas_cumprod_from_sigmas(ms.sigmas.double().cpu())
