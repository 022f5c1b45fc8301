"""Solune's SAMPLER nodes (Sol DDPM, Lune Euler, epsilon DDIM) and the Lune SIGMAS node.

The sampler maths lives in `solune.samplers` (pure torch); this module checks, when sampling
starts, that the model is patched with the matching prediction type, adds interruption and hands
the stochastic samplers ComfyUI's own step-noise source (`default_noise_sampler` with the run's
seed), so their noise is what the installed ComfyUI's `ddpm` draws.
"""

from __future__ import annotations

import comfy.k_diffusion.sampling
import comfy.model_management
import comfy.samplers
from comfy_api.latest import io

from ..checks import check_bool, check_int, check_number, error_of
from ..samplers import lune_sigmas, sample_epsilon_ddim, sample_lune_euler, sample_sol_ddpm
from ..velocity import check_shift
from .model_checks import ddpm_alphas_cumprod_of, prediction_error, sampler_model_sampling


def _number_in(name, value, low, high, low_open=False):
    """Error text unless value is a finite number in [low, high] ((low, high] if low_open); None passes."""
    if value is None:
        return None
    return error_of(check_number, name, value, low, high, lo_open=low_open)


def step_noise_sampler(x, extra_args):
    """The step noise ComfyUI's own samplers draw for this run: the installed ComfyUI's
    `default_noise_sampler` seeded with the run's seed (0.3.64 seeds it like the initial noise;
    later versions add 1 to the seed on the CPU so the step noise is not the initial noise again)."""
    seed = None if extra_args is None else extra_args.get("seed")
    return comfy.k_diffusion.sampling.default_noise_sampler(x, seed=seed)


def checked_sampler(node_id: str, expected: str, function, draws_noise: bool = False, **knobs):
    """A KSAMPLER that checks the prediction type, passes the model's grid, honours interruption and,
    for a sampler that `draws_noise`, hands it ComfyUI's step-noise source for the run."""

    def sampler_function(model, x, sigmas, extra_args=None, callback=None, disable=None):
        ms = sampler_model_sampling(model)
        error = prediction_error(node_id, ms, expected)
        if error:
            raise ValueError(error)
        extra = dict(knobs)
        if draws_noise:
            extra["noise_sampler"] = step_noise_sampler(x, extra_args)
        if ms.frame == "ddpm":
            extra["alphas_cumprod"] = ddpm_alphas_cumprod_of(ms)
        else:
            extra["multiplier"] = float(ms.multiplier)

        def step_callback(info):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if callback is not None:
                callback(info)

        return function(model, x, sigmas, extra_args=extra_args, callback=step_callback, disable=disable, **extra)

    return comfy.samplers.KSAMPLER(sampler_function)


ETA_TOOLTIP = (
    "How much fresh noise each step adds (η): 1 = DDPM posterior step (ancestral, uses the run's seed), "
    "0 = deterministic DDIM, in between = DDIM with that much fresh noise."
)


class _EtaSampler(io.ComfyNode):
    """A SAMPLER node with one `eta` input for a grid sampler of the DDPM frame (subclasses fill
    in the class attributes)."""

    NODE_ID = DISPLAY_NAME = PREDICTION = DESCRIPTION = TOOLTIP = ""
    ETA_DEFAULT = 0.0
    SAMPLE_FN = None  # (not FUNCTION: ComfyUI reads that name on every node class)

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=cls.NODE_ID,
            display_name=cls.DISPLAY_NAME,
            category="Solune/sampling",
            description=cls.DESCRIPTION,
            inputs=[io.Float.Input("eta", default=cls.ETA_DEFAULT, min=0.0, max=1.0, step=0.01, tooltip=cls.TOOLTIP)],
            outputs=[io.Sampler.Output(tooltip="The sampler; connect to SamplerCustom or SamplerCustomAdvanced.")],
        )

    @classmethod
    def validate_inputs(cls, eta=None) -> bool | str:
        return _number_in("eta", eta, 0.0, 1.0) or True

    @classmethod
    def execute(cls, eta) -> io.NodeOutput:
        error = _number_in("eta", eta, 0.0, 1.0)
        if error:
            raise ValueError(f"{cls.NODE_ID}: {error}")
        sampler = checked_sampler(cls.NODE_ID, cls.PREDICTION, cls.SAMPLE_FN, draws_noise=True, eta=float(eta))
        return io.NodeOutput(sampler)


class SoluneSamplerSolDDPM(_EtaSampler):
    NODE_ID, DISPLAY_NAME, PREDICTION = "SoluneSamplerSolDDPM", "Solune Sampler Sol DDPM", "sol_v"
    DESCRIPTION = (
        "Sample Sol the way its authors do (their DDPM recipe). For SamplerCustom / SamplerCustomAdvanced with a "
        "model patched as sol_v (SolunePredictionType): v → x0 → ε, then the "
        "DDPM posterior step (eta = 1) or a DDIM step (eta < 1) on the 1000-step timestep grid; the SIGMAS are "
        "snapped to the nearest grid timestep."
    )
    TOOLTIP = ETA_TOOLTIP
    ETA_DEFAULT = 1.0
    SAMPLE_FN = staticmethod(sample_sol_ddpm)


class SoluneSamplerEpsilonDDIM(_EtaSampler):
    NODE_ID, DISPLAY_NAME, PREDICTION = "SoluneSamplerEpsilonDDIM", "Solune Sampler Epsilon DDIM", "epsilon"
    DESCRIPTION = (
        "Classic DDIM for standard SD1.5 (epsilon) checkpoints, with eta for fresh noise per step. For "
        "SamplerCustom / SamplerCustomAdvanced with a model patched as epsilon (SolunePredictionType), on the "
        "1000-step timestep grid; "
        "the SIGMAS are snapped to the nearest grid timestep."
    )
    TOOLTIP = (
        "How much fresh noise each step adds (η): 0 = deterministic DDIM; 1 = as much as the DDPM posterior "
        "(uses the run's seed)."
    )
    ETA_DEFAULT = 0.0
    SAMPLE_FN = staticmethod(sample_epsilon_ddim)


class SoluneSamplerLuneEuler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneSamplerLuneEuler",
            display_name="Solune Sampler Lune Euler",
            category="Solune/sampling",
            description=(
                "Sample Lune the way its authors do. For SamplerCustom / SamplerCustomAdvanced with a model "
                "patched as lune_flow (SolunePredictionType): Euler on the "
                "rectified-flow ODE, x ← x − v·(σ − σ_next), network timestep 1000·σ. Pair it with "
                "SoluneLuneScheduler."
            ),
            inputs=[
                io.Boolean.Input(
                    "quantize_timesteps",
                    default=False,
                    tooltip="Round the network's timestep 1000·σ to an integer (at least 1) as Lune's authors' script "
                    "does; the step itself uses the exact σ. Off = identical to ComfyUI's euler.",
                )
            ],
            outputs=[io.Sampler.Output(tooltip="The sampler; connect to SamplerCustom or SamplerCustomAdvanced.")],
        )

    @classmethod
    def validate_inputs(cls, quantize_timesteps=None) -> bool | str:
        if quantize_timesteps is None:
            return True
        return error_of(check_bool, "quantize_timesteps", quantize_timesteps) or True

    @classmethod
    def execute(cls, quantize_timesteps) -> io.NodeOutput:
        if error := error_of(check_bool, "quantize_timesteps", quantize_timesteps):
            raise ValueError(f"SoluneSamplerLuneEuler: {error}")
        return io.NodeOutput(
            checked_sampler(
                "SoluneSamplerLuneEuler", "lune_flow", sample_lune_euler, quantize_timesteps=quantize_timesteps
            )
        )


def check_scheduler_inputs(steps=None, shift=None, denoise=None) -> str | None:
    if steps is not None and (error := error_of(check_int, "steps", steps, 1, 10000)):
        return error
    if shift is not None and (error := error_of(check_shift, shift)):
        return error
    return _number_in("denoise", denoise, 0.0, 1.0, low_open=True)


class SoluneLuneScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneLuneScheduler",
            display_name="Solune Lune Scheduler",
            category="Solune/sampling",
            description=(
                "The noise schedule Lune was trained with, for SamplerCustom / SamplerCustomAdvanced with Lune (or "
                "any rectified-flow model at that shift): σ = linspace(1, 0, steps + 1) shifted with "
                "σ' = k·σ/(1 + (k − 1)·σ). With "
                "denoise < 1 (img2img) the last steps + 1 values of a schedule of int(steps/denoise) steps, as "
                "BasicScheduler does."
            ),
            inputs=[
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Number of sampling steps."),
                io.Float.Input(
                    "shift",
                    default=2.0,
                    min=0.01,
                    max=100.0,
                    step=0.01,
                    tooltip=(
                        "Time shift k (Lune was trained at 2.0–2.5; k > 1 spends more steps at high noise). "
                        "Use the same k as in SolunePredictionType."
                    ),
                ),
                io.Float.Input(
                    "denoise",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip=(
                        "Fraction of the schedule to run: 1 = from pure noise, < 1 = img2img starting part-way "
                        "(must be > 0)."
                    ),
                ),
            ],
            outputs=[io.Sigmas.Output(tooltip="steps + 1 descending σ values ending at 0.")],
        )

    @classmethod
    def validate_inputs(cls, denoise=None) -> bool | str:
        # only denoise, which must be > 0 (ComfyUI's range is [0, 1]; it checks steps and shift itself and
        # shows the message under every input declared here)
        return check_scheduler_inputs(denoise=denoise) or True

    @classmethod
    def execute(cls, steps, shift, denoise) -> io.NodeOutput:
        error = check_scheduler_inputs(steps, shift, denoise)
        if error:
            raise ValueError(f"SoluneLuneScheduler: {error}")
        return io.NodeOutput(lune_sigmas(int(steps), float(shift), float(denoise)))


SAMPLER_NODES = [SoluneSamplerSolDDPM, SoluneSamplerLuneEuler, SoluneSamplerEpsilonDDIM, SoluneLuneScheduler]
