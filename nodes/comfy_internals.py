"""The ComfyUI internals the expert handoff relies on, in one place.

Tested against ComfyUI 0.3.64 (October 2025) and 0.33.0 (August 2026), in process by
tests/test_expert_handoff_comfy.py, which exercises every function here on both.

Everything here reads or calls something ComfyUI does not document as an extension point: a
`WrapperExecutor`'s position in its wrapper list (`idx`, `wrappers`, `class_obj`), a
`ModelPatcher`'s keyed `wrappers` / `callbacks` dicts and its `model_function_wrapper` slot, and
`BaseModel._apply_model`. When ComfyUI changes one of them, this module is what to update.

What differs between the two versions, and how this module follows it (by probing the behaviour,
not the version number):
- Wrapper order. When sampling starts ComfyUI merges a patcher's keyed wrappers into its
  transformer_options' wrappers with `merge_nested_dicts`; 0.3.64 lists the patcher's keyed
  wrappers first, 0.33.0 those already in transformer_options first (ComfyUI PR #10362).
  `patcher_wrappers_run_first` probes ComfyUI's own merge; `add_outermost_apply_model_wrapper`
  registers the handoff where it runs first under either order, and `static_transformer_options`
  merges with ComfyUI's own function, so an expert's own wrappers keep the installed order.
- Model-level transformer_options entries. 0.33.0's ModelPatcher also keeps
  `optimized_attention_override` (`set_model_optimized_attention`) and `rope_options`
  (`set_model_rope_options`) there, and core nodes keep holders such as `easycache`; the handoff
  derives the per-expert entries from each expert's own transformer_options
  (`expert_handoff.model_keys`) instead of listing them.
- Unchanged in both: `WrapperExecutor.new_class_executor`, its `idx` / `wrappers` / `class_obj`,
  `get_all_wrappers`, `copy_nested_dicts`, `BaseModel._apply_model`'s signature and the
  `model_function_wrapper` call convention.
"""

from __future__ import annotations

import comfy.patcher_extension

APPLY_MODEL = comfy.patcher_extension.WrappersMP.APPLY_MODEL


def static_transformer_options(patcher) -> dict:
    """A patcher's transformer_options with its keyed wrappers and callbacks merged in, as ComfyUI
    does for the model it samples."""
    to = comfy.patcher_extension.copy_nested_dicts(patcher.model_options.get("transformer_options", {}))
    comfy.patcher_extension.merge_nested_dicts(to.setdefault("wrappers", {}), patcher.wrappers, copy_dict1=False)
    comfy.patcher_extension.merge_nested_dicts(to.setdefault("callbacks", {}), patcher.callbacks, copy_dict1=False)
    return to


def own_apply_model_wrappers(patcher) -> list:
    """A patcher's APPLY_MODEL wrappers in the order the installed ComfyUI calls them (keyed ones and
    transformer_options' merged by ComfyUI's own function: see `patcher_wrappers_run_first`)."""
    return comfy.patcher_extension.get_all_wrappers(APPLY_MODEL, static_transformer_options(patcher))


def patcher_wrappers_run_first() -> bool:
    """Whether the installed ComfyUI calls a patcher's keyed wrappers before the wrappers already in
    its transformer_options (0.3.64: yes; 0.33.0: no). Probed on `merge_nested_dicts` as sampling
    calls it: transformer_options' wrappers first argument, the patcher's second."""
    merged = comfy.patcher_extension.merge_nested_dicts({"type": {"options": []}}, {"type": {"patcher": []}})
    return next(iter(merged["type"])) == "patcher"


def add_outermost_apply_model_wrapper(patcher, key: str, fn) -> None:
    """Register `fn` as the APPLY_MODEL wrapper ComfyUI calls first for `patcher`, and before any
    APPLY_MODEL wrapper added to it later, keyed or in its transformer_options, under either merge
    order. The patcher must have no APPLY_MODEL wrappers yet (`detach_apply_model_wrappers`)."""
    if patcher_wrappers_run_first():
        patcher.add_wrapper_with_key(APPLY_MODEL, key, fn)
    else:
        comfy.patcher_extension.add_wrapper_with_key(APPLY_MODEL, key, fn, patcher.model_options, is_model_options=True)


def unet_wrapper(patcher):
    """The patcher's single-slot `model_function_wrapper`, or None."""
    return patcher.model_options.get("model_function_wrapper")


def wrappers_after(executor) -> list:
    """The wrappers an executor would call after the one now running (those added later)."""
    return executor.wrappers[executor.idx + 1 :]


def base_model(executor):
    """The BaseModel an APPLY_MODEL executor wraps."""
    return executor.class_obj


def detach_apply_model_wrappers(patcher) -> None:
    """Remove a (cloned) patcher's APPLY_MODEL wrappers and its unet wrapper, in place."""
    patcher.wrappers.pop(APPLY_MODEL, None)
    patcher.model_options.get("transformer_options", {}).get("wrappers", {}).pop(APPLY_MODEL, None)
    patcher.model_options.pop("model_function_wrapper", None)


def call_apply_model(base, wrappers, unet_fn, x, t, c_concat, c_crossattn, control, transformer_options, kwargs):
    """base._apply_model(x, t, …) → x0, through `wrappers` and the unet wrapper `unet_fn`."""

    def apply_model(input_x, timestep, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kw):
        executor = comfy.patcher_extension.WrapperExecutor.new_class_executor(base._apply_model, base, wrappers)
        return executor.execute(input_x, timestep, c_concat, c_crossattn, control, transformer_options, **kw)

    if unet_fn is None:
        return apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
    c = dict(
        kwargs, c_concat=c_concat, c_crossattn=c_crossattn, control=control, transformer_options=transformer_options
    )
    return unet_fn(
        apply_model,
        {"input": x, "timestep": t, "c": c, "cond_or_uncond": transformer_options.get("cond_or_uncond", [])},
    )
