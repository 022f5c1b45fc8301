"""The tiled img2img patch on a ComfyUI MODEL: `TiledImg2ImgHook`, whose methods are the wrappers.

`TiledImg2ImgHook(original, plan, mode, tiled_model, tile_batch_size).patch(model)` clones the model
and registers, under a key unique to this hook (so several Solune patches and other packs' wrappers
stack):

1. `sampler_sample` (`WrappersMP.SAMPLER_SAMPLE`) — once per run: checks the original against the
   sampled latent (before any step), builds the run's `PreserveState` (original in model space,
   scale map, the run's σ and noise) and puts it in the run's own `transformer_options` under the
   key; after the schedule writes the original back exactly where the scale is 0.
2. `predict_noise` (`WrappersMP.PREDICT_NOISE`, strength mode) — every evaluation: held pixels of
   the model input become the original re-noised to σ with the run's noise (ComfyUI's noise_mask
   mechanism).
3. `post_cfg` (`sampler_post_cfg_function`, chainable) — every evaluation:
   x0 = lerp(x0_orig, x0_model, weight).
4. `apply_model` (`WrappersMP.APPLY_MODEL`, tiled_model) — every cond/uncond chunk: `evaluate`
   runs the model tile by tile; tiles `active` calls inactive (weight 0 over their footprint) are
   not evaluated and take x0_orig.
5. `calc_cond_batch` (`WrappersMP.CALC_COND_BATCH`, tiled_model) — every evaluation: the conds'
   ControlNets are deferred (`nodes/tiled_control.py`), so each tile batch gets its control from the
   ControlNet run on its own crop of the input and of the hint.

The hook itself holds only what the node built (the original latent, the plan, the settings) and
never changes after construction; a clone of the patched model shares it (`__deepcopy__` returns
the hook, so `model_options`, which a clone deep-copies, copies no tensor). Everything that belongs
to one run lives in that run's own `transformer_options`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import comfy.model_management
import comfy.patcher_extension
import comfy.utils
import torch

from ..samplers.tiled import PreserveState, TilePlan, active_tiles, evaluate_tiled, tile_args
from .tiled_control import DeferredControl, RunControls, defer_controls

NODE = "SoluneTiledImg2Img"
WRAPPERS = comfy.patcher_extension.WrappersMP


@dataclass
class TiledRun:
    """Per-run state, kept in the run's transformer_options under the hook's key."""

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
            f"{NODE}: latent (the original, shape {tuple(original.shape)}) must have the channels and size of "
            f"the latent being sampled (shape {tuple(sampled.shape)}); encode the same image size with the same VAE"
        )
    if original.shape[0] not in (1, sampled.shape[0]):
        raise ValueError(
            f"{NODE}: latent batch must be 1 (broadcast) or the sampled batch {sampled.shape[0]}; "
            f"got {original.shape[0]}"
        )


class TiledImg2ImgHook:
    """The tiled img2img hooks of one patch; `original` is the LATENT's samples (not in model space).

    Inputs are the node's, already validated there (`nodes/tiled_img2img.py`).
    """

    def __init__(self, original: torch.Tensor, plan: TilePlan, mode: str, tiled_model: bool, tile_batch_size: int):
        self.key = f"solune_tiled_img2img_{uuid.uuid4().hex}"
        self.controls_key = f"{self.key}_controls"
        self.original = original.detach().to(torch.float32).clone()
        self.plan = plan
        self.mode = mode
        self.tiled_model = tiled_model
        self.tile_batch_size = tile_batch_size

    def __deepcopy__(self, memo):
        return self  # immutable after construction: clones of the patched model share it

    def patch(self, model):
        """A clone of `model` with this hook's wrappers and post-CFG function."""
        m = model.clone()
        m.add_wrapper_with_key(WRAPPERS.SAMPLER_SAMPLE, self.key, self.sampler_sample)
        if self.mode == "strength":
            m.add_wrapper_with_key(WRAPPERS.PREDICT_NOISE, self.key, self.predict_noise)
        m.set_model_sampler_post_cfg_function(self.post_cfg)
        if self.tiled_model:
            m.add_wrapper_with_key(WRAPPERS.APPLY_MODEL, self.key, self.apply_model)
            m.add_wrapper_with_key(WRAPPERS.CALC_COND_BATCH, self.key, self.calc_cond_batch)
        return m

    def run(self, transformer_options: dict) -> TiledRun:
        """This hook's state of the current run."""
        run = transformer_options.get(self.key)
        if run is None:
            raise RuntimeError(f"{NODE}: the model was evaluated outside a sampling run; use it with a sampler node")
        return run

    # -- the wrappers ---------------------------------------------------------------------------

    def sampler_sample(self, executor, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask,
                       disable_pbar):
        check_original(self.original, noise)
        inner = guider.inner_model
        x0_orig = inner.process_latent_in(self.original.to(noise.device)).to(torch.float32)
        state = PreserveState(
            x0_orig, self.plan.scale_map.to(noise.device), self.mode, sigmas.detach().clone(), noise,
            lambda sigma, n, x0: inner.scale_latent_inpaint(sigma=sigma, noise=n, latent_image=x0),
        )
        options = extra_args["model_options"]
        previous = options.get("transformer_options", {})
        options["transformer_options"] = {**previous, self.key: TiledRun(state, self.plan),
                                          self.controls_key: RunControls(NODE)}
        try:
            samples = executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        finally:
            options["transformer_options"] = previous
        return state.write_back(samples)

    def calc_cond_batch(self, executor, model, conds, x_in, timestep, model_options):
        controls = model_options.get("transformer_options", {}).get(self.controls_key)
        if controls is not None and any(c.get("control") is not None for cond in conds if cond for c in cond):
            conds = defer_controls(conds, controls)
        return executor(model, conds, x_in, timestep, model_options)

    def predict_noise(self, executor, x, timestep, model_options, seed):
        run = self.run(model_options.get("transformer_options", {}))
        return executor(run.state.hold_input(x, timestep), timestep, model_options, seed)

    def post_cfg(self, args):
        run = self.run(args["model_options"].get("transformer_options", {}))
        return run.state.blend(args["denoised"], args["sigma"])

    def apply_model(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},
                    **kwargs):
        run = transformer_options.get(self.key)
        layout = self.plan.layout
        if run is None or tuple(x.shape[-2:]) != (layout.latent_h, layout.latent_w):
            # an area conditioning evaluates a crop: it is small already, evaluate it whole
            if isinstance(control, DeferredControl):
                control = control.resolve()
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        return self.evaluate(run, executor, x, t, c_concat, c_crossattn, control, transformer_options, kwargs)

    # -- the tiled evaluation -------------------------------------------------------------------

    def active(self, run: TiledRun, t: torch.Tensor) -> list[bool]:
        """Per tile, whether the model evaluates it at σ = t (else it takes x0_orig)."""
        return active_tiles(run.plan.layout, run.state.any_weight(t))

    def evaluate(self, run: TiledRun, executor, x, t, c_concat, c_crossattn, control, transformer_options: dict,
                 kwargs: dict) -> torch.Tensor:
        """x0 of the whole model input from tile batches (`samplers.tiled.evaluate_tiled`)."""
        layout = run.plan.layout
        chunks = len(transformer_options.get("cond_or_uncond", [])) or 1
        if x.shape[0] % chunks:
            chunks = 1
        fill = run.state.x0_orig.to(x)
        if fill.shape[0] not in (1, x.shape[0]):
            fill = fill.repeat(x.shape[0] // fill.shape[0], *([1] * (fill.dim() - 1)))
        deferred = control if isinstance(control, DeferredControl) else None
        rest = (t, c_concat, c_crossattn, None if deferred is not None else control, kwargs)
        bar = {}

        def denoise(x_tiles, indices):
            comfy.model_management.throw_exception_if_processing_interrupted()
            tt, cc, ca, ctl, kw = tile_args(rest, layout, indices, x.shape[0], chunks)
            if deferred is not None:  # the ControlNet on this batch's crops (nodes/tiled_control.py)
                regions = [(t.y0, t.x0, t.h, t.w) for t in (layout.tiles[i] for i in indices)]
                cond = {"c_concat": cc, "c_crossattn": ca, **kw, "transformer_options": transformer_options}
                ctl = deferred.for_tiles(x_tiles, tt, cond, regions, chunks, transformer_options)
            return executor(x_tiles, tt, cc, ca, ctl, transformer_options, **kw)

        def progress(done, total):
            if total > 1:
                bar.setdefault("bar", comfy.utils.ProgressBar(total)).update_absolute(done, total)

        return evaluate_tiled(denoise, x, layout, run.plan.weights, self.active(run, t), fill, self.tile_batch_size,
                              chunks, progress)
