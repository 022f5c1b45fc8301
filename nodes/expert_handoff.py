"""SoluneExpertHandoff: one MODEL that samples with a structure expert at high noise and a detail
expert for the rest, each evaluated in its own frame (the rule is `solune.samplers.ExpertHandoff`).

Design:
* The output is a clone of `structure_model`; its model_sampling is the run's frame and σ schedule.
* A keyed `APPLY_MODEL` wrapper, the outermost one, routes each evaluation: each expert runs
  through its own `BaseModel._apply_model` (its input scaling, timestep and x0 formula, its weights
  with their patches) behind its own APPLY_MODEL wrappers and unet wrapper, with its own
  transformer options; the detail expert gets the state converted to its frame. Both return x0.
  APPLY_MODEL wrappers added to the output later run inside the routing, for either expert.
* The detail expert's ModelPatcher is registered as an additional model of the clone, so ComfyUI's
  model management loads it (with its LoRA / object patches) next to the structure expert when the
  run starts and releases it after; nothing is copied.
* Post-CFG functions are per expert: those of the structure expert run where it answers, those of
  the detail expert (with the state, σ and model of its own frame) where it answers, blended in the
  crossfade. CFG itself, `sampler_cfg_function` and pre-CFG functions are the run's (the structure
  expert's and whatever is patched onto the handoff's output).
"""

from __future__ import annotations

import comfy.patcher_extension
from comfy_api.latest import io

from ..samplers import ExpertHandoff, check_fraction
from ..velocity import ddpm_sigma_to_flow_t, flow_t_to_ddpm_sigma
from .model_checks import frame_of

KEY = "solune_expert_handoff"
#: transformer_options entries that belong to a model (the rest are per-step, per-run values)
MODEL_KEYS = ("patches", "patches_replace", "wrappers", "callbacks")


def check_handoff_inputs(switch=None, blend_width=None) -> str | None:
    for name, value in (("switch", switch), ("blend_width", blend_width)):
        if value is None:
            continue
        try:
            check_fraction(name, value)
        except ValueError as err:
            return str(err) + (" (the fraction of the schedule done when control passes to detail_model)" if name == "switch" else "")
    return None


def check_experts(structure_model, detail_model) -> str | None:
    """Error text when the two experts cannot share a run, else None."""
    if structure_model.model is detail_model.model:
        return (
            "structure_model and detail_model are the same loaded model (two patches of one UNet cannot be loaded at "
            "once); connect two different UNETLoader / checkpoint outputs"
        )
    formats = []
    for name, model in (("structure_model", structure_model), ("detail_model", detail_model)):
        lf = model.get_model_object("latent_format")
        formats.append((name, type(lf).__name__, getattr(lf, "latent_channels", None)))
    (_, a_cls, a_ch), (_, b_cls, b_ch) = formats
    if (a_cls, a_ch) != (b_cls, b_ch):
        return (
            f"the experts use different latent formats: structure_model is {a_cls} ({a_ch} channels), detail_model is "
            f"{b_cls} ({b_ch} channels). Both experts must share one latent space and VAE: connect two SD1.5 UNets "
            f"(e.g. Sol and Lune), not a mix of SD1.5, SDXL or Flux models"
        )
    for name, model in (("structure_model", structure_model), ("detail_model", detail_model)):
        try:
            frame_of(model.get_model_object("model_sampling"), name)
        except ValueError as err:
            return str(err)
    return None


def _static_transformer_options(patcher) -> dict:
    """A patcher's transformer_options with its keyed wrappers and callbacks merged in, as ComfyUI
    does for the model it samples."""
    to = comfy.patcher_extension.copy_nested_dicts(patcher.model_options.get("transformer_options", {}))
    comfy.patcher_extension.merge_nested_dicts(to.setdefault("wrappers", {}), patcher.wrappers, copy_dict1=False)
    comfy.patcher_extension.merge_nested_dicts(to.setdefault("callbacks", {}), patcher.callbacks, copy_dict1=False)
    return to


def sigma_in_frame(sigmas, src: str, dst: str):
    """σ values of frame `src` as the σ of the same noise level in frame `dst` (flow σ = 1 → ∞)."""
    if src == dst:
        return sigmas
    return ddpm_sigma_to_flow_t(sigmas) if src == "ddpm" else flow_t_to_ddpm_sigma(sigmas)


def _chain(functions, args):
    denoised = args["denoised"]
    for fn in functions:
        denoised = fn(dict(args, denoised=denoised))
    return denoised


APPLY_MODEL = comfy.patcher_extension.WrappersMP.APPLY_MODEL


def _own_apply_model_wrappers(patcher) -> list:
    """A patcher's APPLY_MODEL wrappers in ComfyUI's order (model_options' first, then keyed ones)."""
    return comfy.patcher_extension.get_all_wrappers(APPLY_MODEL, _static_transformer_options(patcher))


def _call_expert(base, wrappers, unet_wrapper, x, t, c_concat, c_crossattn, control, transformer_options, kwargs):
    """base._apply_model(x, t, …) → x0, through `wrappers` and the expert's unet wrapper."""

    def apply_model(input_x, timestep, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kw):
        executor = comfy.patcher_extension.WrapperExecutor.new_class_executor(base._apply_model, base, wrappers)
        return executor.execute(input_x, timestep, c_concat, c_crossattn, control, transformer_options, **kw)

    if unet_wrapper is None:
        return apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
    c = dict(kwargs, c_concat=c_concat, c_crossattn=c_crossattn, control=control, transformer_options=transformer_options)
    return unet_wrapper(apply_model, {"input": x, "timestep": t, "c": c, "cond_or_uncond": transformer_options.get("cond_or_uncond", [])})


def make_handoff(structure_model, detail_model, switch: float, blend_width: float):
    """The handoff MODEL (a clone of structure_model); see the module docstring.

    Wrapper order: the routing wrapper is the outermost APPLY_MODEL wrapper of the output. Each
    expert's own APPLY_MODEL wrappers and unet wrapper run on its side only; APPLY_MODEL wrappers
    added to the output later (run level, e.g. tiling) run inside the routing, for either expert,
    in that expert's frame.
    """
    run_ms = structure_model.get_model_object("model_sampling")
    detail_ms = detail_model.get_model_object("model_sampling")
    rule = ExpertHandoff(
        frame_of(run_ms, "structure_model"), frame_of(run_ms, "structure_model"), frame_of(detail_ms, "detail_model"),
        run_ms.percent_to_sigma, switch, blend_width,
    )
    detail_base = detail_model.model
    detail_to = _static_transformer_options(detail_model)
    detail_wrappers = _own_apply_model_wrappers(detail_model)
    detail_unet_wrapper = detail_model.model_options.get("model_function_wrapper")
    structure_wrappers = _own_apply_model_wrappers(structure_model)
    structure_unet_wrapper = structure_model.model_options.get("model_function_wrapper")

    def detail_transformer_options(incoming: dict, sigma_detail):
        to = {k: v for k, v in incoming.items() if k not in MODEL_KEYS}
        to.update(comfy.patcher_extension.copy_nested_dicts(detail_to))
        to["sigmas"] = sigma_detail
        if "sample_sigmas" in incoming:
            to["sample_sigmas"] = sigma_in_frame(incoming["sample_sigmas"], rule.run_frame, rule.detail_frame)
        return to

    def apply_model_wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        inner = executor.wrappers[executor.idx + 1:]  # APPLY_MODEL wrappers added after the handoff

        def structure(xs, ts):
            return _call_expert(executor.class_obj, structure_wrappers + inner, structure_unet_wrapper,
                                xs, ts, c_concat, c_crossattn, control, transformer_options, kwargs)

        def detail(xd, td):
            return _call_expert(detail_base, detail_wrappers + inner, detail_unet_wrapper,
                                xd, td, c_concat, c_crossattn, control, detail_transformer_options(transformer_options, td), kwargs)

        return rule.evaluate(x, t, structure, detail)

    handoff = structure_model.clone()
    # the structure expert's own APPLY_MODEL wrappers and unet wrapper move behind the routing
    handoff.wrappers.pop(APPLY_MODEL, None)
    handoff.model_options.get("transformer_options", {}).get("wrappers", {}).pop(APPLY_MODEL, None)
    handoff.model_options.pop("model_function_wrapper", None)
    handoff.set_additional_models(KEY, handoff.get_additional_models_with_key(KEY) + [detail_model])
    handoff.add_wrapper_with_key(APPLY_MODEL, KEY, apply_model_wrapper)

    structure_post = list(structure_model.model_options.get("sampler_post_cfg_function", []))
    detail_post = list(detail_model.model_options.get("sampler_post_cfg_function", []))
    if structure_post or detail_post:
        def post_cfg(args):
            lam = rule.detail_weight(args["sigma"])
            out_s = out_d = None
            if bool((lam < 1).any()):
                out_s = _chain(structure_post, args)
            if bool((lam > 0).any()):
                x_d, s_d = rule.state_for(args["input"], args["sigma"], rule.detail_frame, "detail")
                out_d = _chain(detail_post, dict(args, input=x_d, sigma=s_d, model=detail_base, model_options=detail_model.model_options))
            if out_d is None:
                return out_s
            if out_s is None:
                return out_d
            w = lam.to(out_s).view(-1, *([1] * (out_s.ndim - 1)))
            return out_s.where(w <= 0, out_d.where(w >= 1, out_s + w * (out_d - out_s)))

        handoff.model_options["sampler_post_cfg_function"] = [post_cfg]
    return handoff


class SoluneExpertHandoff(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneExpertHandoff",
            display_name="Solune Expert Handoff (Sol → Lune)",
            category="Solune/model",
            description=(
                "One MODEL from two experts: structure_model (e.g. Sol) samples the high-noise part of the schedule, "
                "detail_model (e.g. Lune) the rest. Each expert is evaluated in its own frame (σ/timestep, input scaling, "
                "prediction type) and answers with x0. The run uses structure_model's σ schedule and frame; any sampler "
                "and scheduler can drive it."
            ),
            inputs=[
                io.Model.Input("structure_model", tooltip="The expert for the noisy start (composition), e.g. Sol patched as sol_v. Its prediction type sets the run's frame and schedule."),
                io.Model.Input("detail_model", tooltip="The expert for the rest (texture, detail), e.g. Lune patched as lune_flow. Must share the latent space (same VAE) with structure_model."),
                io.Float.Input("switch", default=0.5, min=0.0, max=1.0, step=0.01, tooltip="Fraction of structure_model's noise schedule done when control passes to detail_model (ComfyUI 'percent' units, like ControlNet start/end): 0 = detail_model throughout, 1 = structure_model throughout."),
                io.Float.Input("blend_width", default=0.0, min=0.0, max=1.0, step=0.01, optional=True, tooltip="Width of a smooth crossfade centred on switch, in the same units (0 = hard switch). Inside it both experts run and x0 = (1 − λ)·x0_structure + λ·x0_detail."),
            ],
            outputs=[io.Model.Output(tooltip="The handoff model; connect it to any KSampler / SamplerCustom.")],
        )

    @classmethod
    def validate_inputs(cls, structure_model=None, detail_model=None, switch=None, blend_width=None) -> bool | str:
        return check_handoff_inputs(switch, blend_width) or True

    @classmethod
    def execute(cls, structure_model, detail_model, switch, blend_width=0.0) -> io.NodeOutput:
        error = check_handoff_inputs(switch, blend_width) or check_experts(structure_model, detail_model)
        if error:
            raise ValueError(f"SoluneExpertHandoff: {error}")
        return io.NodeOutput(make_handoff(structure_model, detail_model, float(switch), float(blend_width)))
