"""The tiled img2img patch on a ComfyUI MODEL: keyed wrappers and a chainable post-CFG function.

`patch_model` clones the model and installs, under a key unique to this patch (so several Solune
patches and other packs' wrappers stack):

1. `WrappersMP.SAMPLER_SAMPLE` — once per run: checks the original against the sampled latent
   (before any step), builds the run's `PreserveState` (original in model space, scale map, the
   run's σ and noise) and puts it in the run's own `transformer_options` under the key; after the
   schedule writes the original back exactly where the scale is 0.
2. `WrappersMP.PREDICT_NOISE` (strength mode) — every evaluation: held pixels of the model input
   become the original re-noised to σ with the run's noise (ComfyUI's noise_mask mechanism).
3. `sampler_post_cfg_function` — every evaluation: x0 = lerp(x0_orig, x0_model, weight).
4. `WrappersMP.APPLY_MODEL` (tiled_model) — every cond/uncond chunk: tile-by-tile evaluation;
   tiles whose weight is 0 over their footprint are not evaluated and take x0_orig.

No tensor lives in `model_options` of the patcher (it is deep-copied on clone): the plan is held
by the closures, the per-run state by the run's own `transformer_options`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import comfy.model_management
import comfy.patcher_extension
import comfy.utils
import torch

from ..samplers.tiled import PreserveState, TilePlan, active_tiles, check_mode, evaluate_tiled, tile_args

log = logging.getLogger(__name__)

NODE = "SoluneTiledImg2Img"


@dataclass
class TiledRun:
    """Per-run state, kept in the run's transformer_options under the patch key."""

    state: PreserveState
    plan: TilePlan


def model_geometry(model) -> tuple[int, int]:
    """(downscale, align): pixels per latent unit and the network's patch size in latent units.

    The VAE's factor is not on the MODEL; every latent format ComfyUI ships for image models that
    lacks `spacial_downscale_ratio` is 8 (SD1.5, SDXL, SD3, Flux). The patch size is the diffusion
    model's `patch_size` (2 for Flux and SD3, absent → 1 for UNets).
    """
    latent_format = model.get_model_object("latent_format")
    downscale = int(getattr(latent_format, "spacial_downscale_ratio", 8))
    patch = getattr(getattr(model.model, "diffusion_model", None), "patch_size", 1)
    if isinstance(patch, (tuple, list)):
        patch = patch[-1]
    return downscale, int(patch) if isinstance(patch, int) and patch >= 1 else 1


def check_original(original: torch.Tensor, sampled: torch.Tensor) -> None:
    """Raise a ValueError if the original latent cannot be preserved in the sampled one."""
    if original.dim() != sampled.dim() or tuple(original.shape[1:]) != tuple(sampled.shape[1:]):
        raise ValueError(
            f"{NODE}: latent (the original, shape {tuple(original.shape)}) must have the channels and size of the "
            f"latent being sampled (shape {tuple(sampled.shape)}); encode the same image size with the same VAE"
        )
    if original.shape[0] not in (1, sampled.shape[0]):
        raise ValueError(
            f"{NODE}: latent batch {original.shape[0]} must be 1 (broadcast) or the sampled batch {sampled.shape[0]}"
        )


def _run(options: dict, key: str) -> TiledRun:
    run = options.get(key)
    if run is None:
        raise RuntimeError(f"{NODE}: the model was evaluated outside a sampling run; use it with a sampler node")
    return run


def patch_model(model, original: torch.Tensor, plan: TilePlan, mode: str, tiled_model: bool, tile_batch_size: int):
    """A clone of `model` with the tiled img2img hooks; `original` is the LATENT's samples (not in model space)."""
    check_mode(mode)
    key = f"solune_tiled_img2img_{uuid.uuid4().hex}"
    original = original.detach().to(torch.float32).clone()
    m = model.clone()

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar):
        check_original(original, noise)
        inner = guider.inner_model
        x0_orig = inner.process_latent_in(original.to(noise.device)).to(torch.float32)
        state = PreserveState(
            x0_orig, plan.scale_map.to(noise.device), mode, sigmas.detach().clone(), noise,
            lambda sigma, n, x0: inner.scale_latent_inpaint(sigma=sigma, noise=n, latent_image=x0),
        )
        options = extra_args["model_options"]
        previous = options.get("transformer_options", {})
        options["transformer_options"] = {**previous, key: TiledRun(state, plan)}
        try:
            samples = executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        finally:
            options["transformer_options"] = previous
        return state.write_back(samples)

    def predict_noise(executor, x, timestep, model_options, seed):
        run = _run(model_options.get("transformer_options", {}), key)
        return executor(run.state.hold_input(x, timestep), timestep, model_options, seed)

    def post_cfg(args):
        run = _run(args["model_options"].get("transformer_options", {}), key)
        return run.state.blend(args["denoised"], args["sigma"])

    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        run = transformer_options.get(key)
        layout = plan.layout
        if run is None or tuple(x.shape[-2:]) != (layout.latent_h, layout.latent_w):
            # an area conditioning evaluates a crop: it is small already, evaluate it whole
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        state = run.state
        active = active_tiles(layout, state.any_weight(t))
        chunks = len(transformer_options.get("cond_or_uncond", [])) or 1
        if x.shape[0] % chunks:
            chunks = 1
        fill = state.x0_orig.to(x)
        if fill.shape[0] not in (1, x.shape[0]):
            fill = fill.repeat(x.shape[0] // fill.shape[0], *([1] * (fill.dim() - 1)))
        rest = (t, c_concat, c_crossattn, control, kwargs)
        bar = {}

        def denoise(x_tiles, indices):
            comfy.model_management.throw_exception_if_processing_interrupted()
            tt, cc, ca, ctl, kw = tile_args(rest, layout, indices, x.shape[0], chunks)
            return executor(x_tiles, tt, cc, ca, ctl, transformer_options, **kw)

        def progress(done, total):
            if total > 1:
                bar.setdefault("bar", comfy.utils.ProgressBar(total)).update_absolute(done, total)

        return evaluate_tiled(denoise, x, layout, plan.weights, active, fill, tile_batch_size, chunks, progress)

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, key, sampler_sample)
    if mode == "strength":
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, key, predict_noise)
    m.set_model_sampler_post_cfg_function(post_cfg)
    if tiled_model:
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, key, apply_model)
    return m
