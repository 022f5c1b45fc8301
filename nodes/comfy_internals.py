"""The ComfyUI internals the expert handoff relies on, in one place; written against ComfyUI 0.3.64.

Everything here reads or calls something ComfyUI does not document as an extension point: a
`WrapperExecutor`'s position in its wrapper list (`idx`, `wrappers`, `class_obj`), a
`ModelPatcher`'s keyed `wrappers` / `callbacks` dicts and its `model_function_wrapper` slot, and
`BaseModel._apply_model`. When ComfyUI changes one of them, this module is what to update (the
tier-2 tests in tests/test_expert_handoff_comfy.py exercise every function).
"""

from __future__ import annotations

import comfy.patcher_extension

COMFYUI_VERSION = "0.3.64"
APPLY_MODEL = comfy.patcher_extension.WrappersMP.APPLY_MODEL


def static_transformer_options(patcher) -> dict:
    """A patcher's transformer_options with its keyed wrappers and callbacks merged in, as ComfyUI
    does for the model it samples."""
    to = comfy.patcher_extension.copy_nested_dicts(patcher.model_options.get("transformer_options", {}))
    comfy.patcher_extension.merge_nested_dicts(to.setdefault("wrappers", {}), patcher.wrappers, copy_dict1=False)
    comfy.patcher_extension.merge_nested_dicts(to.setdefault("callbacks", {}), patcher.callbacks, copy_dict1=False)
    return to


def own_apply_model_wrappers(patcher) -> list:
    """A patcher's APPLY_MODEL wrappers in ComfyUI's order (model_options' first, then keyed ones)."""
    return comfy.patcher_extension.get_all_wrappers(APPLY_MODEL, static_transformer_options(patcher))


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
