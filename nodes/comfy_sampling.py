"""Velocity-core objects combined with ComfyUI's prediction classes.

ComfyUI's flow samplers (ancestral, SDE, DPM++) switch to rectified-flow math only on
`isinstance(model_sampling, comfy.model_sampling.CONST)`; the other classes are combined the same
way so every `isinstance` test in ComfyUI sees the type it expects. The velocity-core methods come
first in the MRO, so the maths is Solune's.
"""

from __future__ import annotations

import comfy.model_sampling

from ..velocity import Epsilon, LuneFlow, SolV, make_prediction


class ComfyEpsilon(Epsilon, comfy.model_sampling.EPS):
    """Solune epsilon, recognised by ComfyUI as an EPS model."""


class ComfySolV(SolV, comfy.model_sampling.V_PREDICTION):
    """Solune Sol (DDPM v-prediction), recognised by ComfyUI as a V_PREDICTION model."""


class ComfyLuneFlow(LuneFlow, comfy.model_sampling.CONST):
    """Solune Lune (rectified flow), recognised by ComfyUI as a CONST (flow) model."""


COMFY_CLASSES = {"epsilon": ComfyEpsilon, "sol_v": ComfySolV, "lune_flow": ComfyLuneFlow}


def comfy_model_sampling(prediction: str, shift: float = 2.0, zero_terminal_snr: bool = False, model_config=None):
    """The velocity-core object for `prediction`, usable as ComfyUI's `model_sampling`.

    For the DDPM types the β range and step count come from the model's own sampling settings
    (SD1.5's for every SD1.x/SDXL checkpoint), so the σ table is the one the model was trained on.
    """
    obj = make_prediction(
        prediction, shift=shift, zero_terminal_snr=zero_terminal_snr, cls=COMFY_CLASSES.get(prediction)
    )
    settings = getattr(model_config, "sampling_settings", None) or {}
    if obj.frame == "ddpm" and settings:
        schedule = settings.get("beta_schedule", "linear")
        if schedule != "linear":
            raise ValueError(
                f"prediction {prediction!r} needs a model with the scaled-linear DDPM schedule; this model's "
                f"beta_schedule is {schedule!r}"
            )
        custom = {k: settings[k] for k in ("timesteps", "linear_start", "linear_end") if k in settings}
        if custom:
            obj = COMFY_CLASSES[prediction](
                zero_terminal_snr=zero_terminal_snr,
                num_timesteps=custom.get("timesteps", obj.num_timesteps),
                linear_start=custom.get("linear_start", obj.linear_start),
                linear_end=custom.get("linear_end", obj.linear_end),
            )
    return obj
