"""Velocity core: one object per prediction type (epsilon, Sol v, Lune flow), pure torch.

- `prediction`: the three prediction types (x0 ↔ model output, σ ↔ timestep, noise scaling).
- `schedule`: DDPM ᾱ / σ tables, zero terminal SNR, the flow time shift.
- `frames`: converting a state between the DDPM and flow frames.
"""

from .frames import FRAMES, convert_state, ddpm_sigma_to_flow_t, flow_t_to_ddpm_sigma
from .prediction import PREDICTION_TYPES, Epsilon, LuneFlow, SolV, VelocityModelSampling, make_prediction
from .schedule import alphas_cumprod_from_sigmas, check_shift, ddpm_alphas_cumprod, flow_shift

__all__ = [
    "FRAMES",
    "PREDICTION_TYPES",
    "Epsilon",
    "LuneFlow",
    "SolV",
    "VelocityModelSampling",
    "alphas_cumprod_from_sigmas",
    "check_shift",
    "convert_state",
    "ddpm_alphas_cumprod",
    "ddpm_sigma_to_flow_t",
    "flow_shift",
    "flow_t_to_ddpm_sigma",
    "make_prediction",
]
