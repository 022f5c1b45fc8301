"""Velocity core: one object per prediction type (epsilon, Sol v, Lune flow), pure torch."""

from .frames import FRAMES, convert_state, ddpm_sigma_to_flow_t, ddpm_to_flow, flow_t_to_ddpm_sigma, flow_to_ddpm, state_for
from .prediction import (
    OUTPUT_TYPES,
    PREDICTION_TYPES,
    Epsilon,
    LuneFlow,
    SolV,
    VelocityModelSampling,
    make_prediction,
)
from .schedule import (
    check_shift,
    ddpm_alphas_cumprod,
    ddpm_betas,
    flow_shift,
    flow_unshift,
    rescale_zero_terminal_snr,
    sigmas_from_alphas_cumprod,
)

__all__ = [
    "FRAMES", "OUTPUT_TYPES", "PREDICTION_TYPES", "Epsilon", "LuneFlow", "SolV", "VelocityModelSampling",
    "check_shift", "convert_state", "ddpm_alphas_cumprod", "ddpm_betas", "ddpm_sigma_to_flow_t", "ddpm_to_flow",
    "flow_shift", "flow_t_to_ddpm_sigma", "flow_to_ddpm", "flow_unshift", "make_prediction",
    "rescale_zero_terminal_snr", "sigmas_from_alphas_cumprod", "state_for",
]
