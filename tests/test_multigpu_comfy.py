"""Tier 2, in process: the tiled hook with ControlNets under core's MultiGPU CFG Split
(`MultiGPU_WorkUnits`, ComfyUI 0.33+: comfy/multigpu.py, `_calc_cond_batch_multigpu` in
comfy/samplers.py), and its absence in ComfyUI 0.3.64.

A CPU-only machine has one torch device, on which `MultiGPU_WorkUnits` makes no clone. The test
builds what the node builds the way core builds it (the body of `create_multigpu_deepclones`): a
deep clone of the model for a second device from its loader's factory (`deepclone_multigpu`, which
needs the `cached_patcher_init` that UNETLoader's `load_diffusion_model` registers), flagged
`is_multigpu_base_clone`, registered as the additional models "multigpu", then
`match_multigpu_clones`. The second device is `torch.device("cpu", 1)`: a key of its own in core's
per-device dicts and thread pool, whose tensors live in host memory. From there everything is
core's own: `prepare_sampling` makes the ControlNets' device clones (`preprocess_multigpu_conds`),
`outer_sample` puts `multigpu_clones` in the run's `model_options` and starts one thread per device,
and `_calc_cond_batch_multigpu` runs cond and uncond on different devices, each thread asking the
cond's control for `get_instance_for_device(device)`.

Not exercised here: two real accelerators (tensors on different CUDA devices, `set_torch_device`,
the device-to-host copies core makes asynchronously), core's per-device free-memory batching on a
GPU, and the tile progress bar sent from a device thread in a running server.
"""

from __future__ import annotations

import threading

import pytest
import torch
from families_helpers import (
    FamilyFiles,
    apply_controlnet,
    family_latent,
    hint_image,
    load_controlnet,
    load_unet,
    sample,
)
from test_families_comfy import TILES, WIDE, conds, right_mask
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui

SECOND = torch.device("cpu", 1)


@pytest.fixture(scope="session")
def files(comfy, tmp_path_factory):
    return FamilyFiles(tmp_path_factory.getbasetemp() / "family_models")


def has_multigpu_cfg_split() -> bool:
    """Whether the installed ComfyUI has core's MultiGPU CFG Split (probed, not by version)."""
    import comfy.samplers

    return hasattr(comfy.samplers, "_calc_cond_batch_multigpu")


def with_device_clone(model, device):
    """`model` as `MultiGPU_WorkUnits` leaves it with one extra device (core's own calls, in order)."""
    m = model.clone()
    clone = m.deepclone_multigpu(new_load_device=device)
    clone.is_multigpu_base_clone = True
    m.set_additional_models("multigpu", m.get_additional_models_with_key("multigpu") + [clone])
    m.match_multigpu_clones()
    return m


def controlled(files):
    """Two chained ControlNets applied the way ControlNetApplyAdvanced does; (pos, neg, nets)."""
    pos, neg = conds("sd15")
    a, b = load_controlnet(files, "sd15"), load_controlnet(files, "sd15")
    h, w = WIDE
    pos, neg = apply_controlnet(pos, neg, a, hint_image(h * 8, w * 8, seed=1), strength=0.7, start=0.0, end=0.7)
    pos, neg = apply_controlnet(pos, neg, b, hint_image(h * 8, w * 8, seed=2), strength=1.2, start=0.2, end=1.0)
    return pos, neg, [a, b]


def recording(model, calls):
    """A clone with a keyed APPLY_MODEL wrapper (added after Solune's, so it sees every tile call)
    recording the thread's device, the BaseModel the call runs on, the input size and the thread."""
    import comfy.patcher_extension

    def wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kw):
        to = transformer_options or {}
        calls.append(
            (to.get("multigpu_thread_device"), executor.class_obj, tuple(x.shape[-2:]), threading.current_thread())
        )
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kw)

    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "solune_test_devices", wrapper)
    return m


def test_tiled_controlnets_under_multigpu_cfg_split_run_per_device_on_tiles(files):
    """Each device thread evaluates its tiles on its own model clone with the ControlNet clone core
    made for that device, on crops only; the result is the single-device run's."""
    import comfy.controlnet
    import comfy.model_management

    if not has_multigpu_cfg_split():
        # ComfyUI 0.3.64: no MultiGPU CFG Split, no per-device ControlNets; the deferral still
        # answers the per-device question with itself, so a later core can ask it
        from solune.nodes.tiled_control import RunControls, TileControl

        assert not hasattr(comfy.controlnet.ControlBase, "get_instance_for_device")
        proxy = TileControl(load_controlnet(files, "sd15"), RunControls("test"))
        assert proxy.get_instance_for_device(SECOND) is proxy
        return

    model, lat = load_unet(files, "sd15"), family_latent("sd15", *WIDE)
    pos, neg, nets = controlled(files)
    kw = dict(min_denoise=0.0, max_denoise=1.0, scale_mode="mask", denoise_mask=right_mask(start=12), **TILES)
    single_calls, multi_calls = [], []
    single = recording(tiled_patch(model, lat, tiled_model=True, **kw), single_calls)
    expected = sample(single, lat, pos, neg, steps=3)

    forwards = []  # (control model, thread) of every ControlNet forward, device clones' included
    lock = threading.Lock()

    def on_forward(module, args, kwargs):
        with lock:
            forwards.append((module, threading.current_thread(), tuple(kwargs["x"].shape[-2:])))

    handles = [n.control_model.register_forward_pre_hook(on_forward, with_kwargs=True) for n in nets]
    try:  # core deep-copies the control models for the second device: the hook goes with them
        multi = with_device_clone(recording(tiled_patch(model, lat, tiled_model=True, **kw), multi_calls), SECOND)
        out = sample(multi, lat, pos, neg, steps=3)
    finally:
        for h in handles:
            h.remove()
        # core's device clones and the model they came from reference each other, so they are freed
        # as a cycle, where ComfyUI's record of a loaded clone can no longer fall back to its parent:
        # it would stay "currently used" with no model, and a later load that reloads what is in use
        # (a DiffSynth patch's first call) trips on it. Unload them while they are alive.
        comfy.model_management.unload_all_models()

    devices = {d for d, *_ in multi_calls}
    assert devices == {torch.device("cpu"), SECOND}, f"core's per-device threads did not run: {devices}"
    clone_model = multi.get_additional_models_with_key("multigpu")[0].model
    assert clone_model is not model.model
    for device, base, size, _ in multi_calls:
        assert base is (clone_model if device == SECOND else model.model), "a tile ran on another device's model"
        assert size != WIDE, "the whole image reached the model"
    user_models = {id(n.control_model) for n in nets}
    chain, control = [], pos[0][1]["control"]
    while control is not None:
        chain.append(control)
        control = control.previous_controlnet
    clone_models = {id(c.get_instance_for_device(SECOND).control_model) for c in chain}
    assert not user_models & clone_models
    used = {id(m) for m, _, _ in forwards}
    assert used & user_models and used & clone_models, "each device's ControlNets must run"
    assert all(size != WIDE for _, _, size in forwards), "a ControlNet ran on the whole image"
    device_of = {thread: device for device, _, _, thread in multi_calls}
    assert all((id(m) in clone_models) == (device_of[t] == SECOND) for m, t, _ in forwards), (
        "a thread ran another device's ControlNet"
    )
    # the same tile batches, cond and uncond apart (one per device) instead of batched together
    assert sorted(2 * [c[2] for c in single_calls]) == sorted(c[2] for c in multi_calls)
    assert float((out - expected).abs().max()) <= 1e-4 * max(1.0, float(expected.abs().max()))
