"""SolunePredictionType: patch a MODEL's `model_sampling` with a velocity-core object."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..checks import check_bool, check_choice, error_of
from ..velocity import PREDICTION_TYPES, check_shift
from .comfy_sampling import comfy_model_sampling

log = logging.getLogger(__name__)

PREDICTIONS = list(PREDICTION_TYPES)


def _check_prediction_inputs(prediction, shift, zero_terminal_snr) -> None:
    if prediction is not None:
        check_choice("prediction", prediction, PREDICTIONS)
    if shift is not None:
        check_shift(shift)
    if zero_terminal_snr is not None:
        check_bool("zero_terminal_snr", zero_terminal_snr)


def check_prediction_inputs(prediction, shift, zero_terminal_snr=False) -> str | None:
    """The error message for bad node inputs, or None. Linked (not yet known) values pass."""
    return error_of(_check_prediction_inputs, prediction, shift, zero_terminal_snr)


class SolunePredictionType(io.ComfyNode):
    """Make a model's sampling use Solune's velocity core for a given prediction type."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SolunePredictionType",
            display_name="Solune Prediction Type",
            category="Solune/model",
            description=(
                "Needed to sample Sol or Lune (or any v-prediction / rectified-flow SD1.5 UNet) with ComfyUI's "
                "samplers: patch a model so that sampling reads its output as epsilon (standard SD1.5), sol_v "
                "(Sol: DDPM v-prediction) or lune_flow (Lune: rectified flow, timestep = 1000·σ with "
                "shift). Returns a patched copy; the input model is untouched."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to patch (a copy is patched; the original stays as it is)."),
                io.Combo.Input(
                    "prediction",
                    options=PREDICTIONS,
                    default="epsilon",
                    tooltip=(
                        "What the network predicts. epsilon: the noise (standard SD1.5). sol_v: DDPM "
                        "v-prediction, v = a·ε − s·x0 (Sol). lune_flow: rectified-flow velocity "
                        "v = noise − x0 (Lune)."
                    ),
                ),
                io.Float.Input(
                    "shift",
                    default=2.0,
                    min=0.01,
                    max=100.0,
                    step=0.01,
                    tooltip="For lune_flow: the time shift k the model was trained at (Lune: 2.0–2.5), "
                    "σ' = k·σ/(1 + (k − 1)·σ). Ignored by epsilon and sol_v.",
                ),
                io.Boolean.Input(
                    "zero_terminal_snr",
                    default=False,
                    tooltip="Rescale the DDPM schedule so its last step is pure noise (epsilon, sol_v). Rectified flow "
                    "already ends at pure noise, so lune_flow is unaffected.",
                ),
            ],
            outputs=[io.Model.Output(tooltip="The patched copy of the model.")],
        )

    @classmethod
    def validate_inputs(cls, shift=None) -> bool | str:
        # only shift: ComfyUI shows the message under every input declared here, and checks the others
        # itself (the prediction combo from some version after 0.3.64; execute checks it again)
        return check_prediction_inputs(None, shift, None) or True

    @classmethod
    def execute(cls, model, prediction, shift, zero_terminal_snr) -> io.NodeOutput:
        error = check_prediction_inputs(prediction, shift, zero_terminal_snr)
        if error:
            raise ValueError(f"SolunePredictionType: {error}")
        model_config = getattr(getattr(model, "model", None), "model_config", None)
        sampling = comfy_model_sampling(prediction, float(shift), bool(zero_terminal_snr), model_config)
        if prediction == "lune_flow" and zero_terminal_snr:
            log.info(
                "SolunePredictionType: lune_flow already ends at pure noise (σ = 1); zero_terminal_snr changes nothing"
            )
        patched = model.clone()
        patched.add_object_patch("model_sampling", sampling)
        return io.NodeOutput(patched)
