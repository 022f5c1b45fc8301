"""SoluneExpertHandoff: one MODEL that samples with a structure expert at high noise and a detail
expert for the rest, each evaluated in its own frame (the rule is `solune.samplers.ExpertHandoff`).

Design:
* The output is a clone of `structure_model`; its model_sampling is the run's frame and σ schedule.
* A keyed `APPLY_MODEL` wrapper, the outermost one, routes each evaluation: each expert runs
  through its own `BaseModel._apply_model` (its input scaling, timestep and x0 formula, its weights
  with their patches) behind its own APPLY_MODEL wrappers and unet wrapper, with its own
  transformer options (every entry either expert holds is routed to its owner: `model_keys`); the
  detail expert gets the state converted to its frame. Both return x0. APPLY_MODEL wrappers added
  to the output later run inside the routing, for either expert, whether another pack adds them to
  the patcher or to its transformer_options (ComfyUI changed which of those runs first;
  `comfy_internals.add_outermost_apply_model_wrapper` puts the routing first under either order).
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

from ..checks import check_number, error_of
from ..samplers import ExpertHandoff
from ..velocity import ddpm_sigma_to_flow_t, flow_t_to_ddpm_sigma
from . import comfy_internals
from .model_checks import frame_of

KEY = "solune_expert_handoff"
#: the transformer_options entries ComfyUI's ModelPatcher keeps per model whether or not an expert
#: has any yet (its patch lists, and the wrappers and callbacks it merges in when sampling starts)
PATCHER_KEYS = frozenset(("patches", "patches_replace", "wrappers", "callbacks"))


def model_keys(*experts) -> frozenset:
    """The transformer_options entries that belong to a model rather than to a step or a run: every
    entry any of `experts` holds in its own transformer_options (`optimized_attention_override`,
    `rope_options`, a cache holder, ... whatever the installed ComfyUI or a pack sets there), and
    ComfyUI's per-model patch lists, wrappers and callbacks."""
    keys = set(PATCHER_KEYS)
    for expert in experts:
        keys.update(comfy_internals.static_transformer_options(expert))
    return frozenset(keys)


def check_handoff_inputs(switch=None, blend_width=None) -> str | None:
    """The message for a bad switch / blend_width, or None (None values are not known yet)."""
    if switch is not None and (
        error := error_of(
            check_number,
            "switch",
            switch,
            0.0,
            1.0,
            hint="the fraction of the schedule done when control passes to detail_model",
        )
    ):
        return error
    if blend_width is not None:
        return error_of(check_number, "blend_width", blend_width, 0.0, 1.0)
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


class ExpertHandoffHook:
    """The routing of one handoff; its methods are the APPLY_MODEL wrapper and the post-CFG function.

    Wrapper order: the routing wrapper is the outermost APPLY_MODEL wrapper of the output. Each
    expert's own APPLY_MODEL wrappers and unet wrapper run on its side only; APPLY_MODEL wrappers
    added to the output later (run level, e.g. tiling) run inside the routing, for either expert,
    in that expert's frame. The hook holds the two experts and what was read off them when the node
    ran, never changes afterwards, and is shared by clones of the output (`__deepcopy__`).
    """

    def __init__(self, structure_model, detail_model, switch: float, blend_width: float):
        run_ms = structure_model.get_model_object("model_sampling")
        detail_ms = detail_model.get_model_object("model_sampling")
        run_frame = frame_of(run_ms, "structure_model")
        self.rule = ExpertHandoff(
            run_frame, run_frame, frame_of(detail_ms, "detail_model"), run_ms.percent_to_sigma, switch, blend_width
        )
        self.detail_model = detail_model
        self.detail_to = comfy_internals.static_transformer_options(detail_model)
        self.model_keys = model_keys(structure_model, detail_model)
        self.detail_wrappers = comfy_internals.own_apply_model_wrappers(detail_model)
        self.detail_unet = comfy_internals.unet_wrapper(detail_model)
        self.structure_wrappers = comfy_internals.own_apply_model_wrappers(structure_model)
        self.structure_unet = comfy_internals.unet_wrapper(structure_model)
        self.structure_post = list(structure_model.model_options.get("sampler_post_cfg_function", []))
        self.detail_post = list(detail_model.model_options.get("sampler_post_cfg_function", []))

    def __deepcopy__(self, memo):
        return self  # immutable after construction: clones of the handoff share it

    def patch(self, structure_model):
        """The handoff MODEL: a clone of structure_model with the routing installed."""
        handoff = structure_model.clone()
        # the structure expert's own APPLY_MODEL wrappers and unet wrapper move behind the routing
        comfy_internals.detach_apply_model_wrappers(handoff)
        handoff.set_additional_models(KEY, handoff.get_additional_models_with_key(KEY) + [self.detail_model])
        comfy_internals.add_outermost_apply_model_wrapper(handoff, KEY, self.apply_model)
        if self.structure_post or self.detail_post:
            handoff.model_options["sampler_post_cfg_function"] = [self.post_cfg]
        return handoff

    def detail_transformer_options(self, incoming: dict, sigma_detail) -> dict:
        """The run's per-step transformer options, with the detail expert's own model entries and σ:
        an entry either expert holds (`model_keys`) is the detail expert's or absent; the rest
        (per-step values, options added to the handoff's output later) pass as they are."""
        to = {k: v for k, v in incoming.items() if k not in self.model_keys}
        to.update(comfy.patcher_extension.copy_nested_dicts(self.detail_to))
        to["sigmas"] = sigma_detail
        if "sample_sigmas" in incoming:
            to["sample_sigmas"] = sigma_in_frame(incoming["sample_sigmas"], self.rule.run_frame, self.rule.detail_frame)
        return to

    def apply_model(
        self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs
    ):
        inner = comfy_internals.wrappers_after(executor)  # APPLY_MODEL wrappers added after the handoff
        structure_base = comfy_internals.base_model(executor)

        def structure(xs, ts):
            return comfy_internals.call_apply_model(
                structure_base,
                self.structure_wrappers + inner,
                self.structure_unet,
                xs,
                ts,
                c_concat,
                c_crossattn,
                control,
                transformer_options,
                kwargs,
            )

        def detail(xd, td):
            return comfy_internals.call_apply_model(
                self.detail_model.model,
                self.detail_wrappers + inner,
                self.detail_unet,
                xd,
                td,
                c_concat,
                c_crossattn,
                control,
                self.detail_transformer_options(transformer_options, td),
                kwargs,
            )

        return self.rule.evaluate(x, t, structure, detail)

    def post_cfg(self, args):
        """Each expert's post-CFG functions where it answers, blended in the crossfade."""
        rule = self.rule
        lam = rule.detail_weight(args["sigma"])
        out_s = out_d = None
        if bool((lam < 1).any()):
            out_s = _chain(self.structure_post, args)
        if bool((lam > 0).any()):
            x_d, s_d = rule.state_for(args["input"], args["sigma"], rule.detail_frame, "detail")
            out_d = _chain(
                self.detail_post,
                dict(
                    args,
                    input=x_d,
                    sigma=s_d,
                    model=self.detail_model.model,
                    model_options=self.detail_model.model_options,
                ),
            )
        if out_d is None:
            return out_s
        if out_s is None:
            return out_d
        w = lam.to(out_s).view(-1, *([1] * (out_s.ndim - 1)))
        return out_s.where(w <= 0, out_d.where(w >= 1, out_s + w * (out_d - out_s)))


class SoluneExpertHandoff(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoluneExpertHandoff",
            display_name="Solune Expert Handoff (Sol → Lune)",
            category="Solune/model",
            description=(
                "Get one model's composition and another's detail in a single run: structure_model (e.g. Sol) "
                "samples the high-noise part of the schedule, detail_model (e.g. Lune) the rest. Each expert is "
                "evaluated in its own frame (σ/timestep, input "
                "scaling, prediction type) and answers with x0. The run uses structure_model's σ schedule and frame; "
                "any sampler and scheduler can drive it."
            ),
            inputs=[
                io.Model.Input(
                    "structure_model",
                    tooltip=(
                        "The expert for the noisy start (composition), e.g. Sol patched as sol_v. "
                        "Its prediction type sets the run's frame and schedule."
                    ),
                ),
                io.Model.Input(
                    "detail_model",
                    tooltip="The expert for the rest (texture, detail), e.g. Lune patched as lune_flow. "
                    "Must share the latent space (same VAE) with structure_model.",
                ),
                io.Float.Input(
                    "switch",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip=(
                        "When detail_model takes over: the fraction of structure_model's noise schedule done "
                        "(ComfyUI 'percent' units, like ControlNet start/end): 0 = detail_model throughout, "
                        "1 = structure_model throughout."
                    ),
                ),
                io.Float.Input(
                    "blend_width",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    optional=True,
                    tooltip=(
                        "Width of a smooth crossfade centred on switch, in the same units (0 = hard switch). Inside it "
                        "both experts run and x0 = (1 − λ)·x0_structure + λ·x0_detail."
                    ),
                ),
            ],
            outputs=[io.Model.Output(tooltip="The handoff model; connect it to any KSampler / SamplerCustom.")],
        )

    @classmethod
    def validate_inputs(cls, switch=None) -> bool | str:
        # only switch (ComfyUI shows the message under every input declared here; it checks blend_width's range)
        return check_handoff_inputs(switch) or True

    @classmethod
    def execute(cls, structure_model, detail_model, switch, blend_width=0.0) -> io.NodeOutput:
        error = check_handoff_inputs(switch, blend_width) or check_experts(structure_model, detail_model)
        if error:
            raise ValueError(f"SoluneExpertHandoff: {error}")
        hook = ExpertHandoffHook(structure_model, detail_model, float(switch), float(blend_width))
        return io.NodeOutput(hook.patch(structure_model))
