"""The tiled img2img patch on a ComfyUI MODEL: `TiledImg2ImgHook`, whose methods are the wrappers.

`TiledImg2ImgHook(original, plan, mode, tiled_model, tile_batch_size).patch(model)` clones the model
and registers, under a key unique to this hook (so several Solune patches and other packs' wrappers
stack):

1. `sampler_sample` (`WrappersMP.SAMPLER_SAMPLE`) — once per run: checks the original against the
   sampled latent (before any step) and brings it to the sampled layout (a family sampled with a
   frame axis, such as Qwen-Image on ComfyUI 0.33, gets [B, C, 1, H, W] whether the LATENT was 4-D
   or 5-D; tiles are cut over H and W, `samplers/tiled/frames.py`; more frames are refused),
   builds the run's `PreserveState` (original in model space, scale map, the run's σ and noise) and
   puts it in the run's own `transformer_options` under the key; after the schedule writes the
   original back exactly where the scale is 0.
2. `predict_noise` (`WrappersMP.PREDICT_NOISE`, strength mode) — every evaluation: held pixels of
   the model input become the original re-noised to σ with the run's noise (ComfyUI's noise_mask
   mechanism).
3. `post_cfg` (`sampler_post_cfg_function`, chainable) — every evaluation:
   x0 = lerp(x0_orig, x0_model, weight).
4. `apply_model` (`WrappersMP.APPLY_MODEL`, tiled_model) — every cond/uncond chunk: `evaluate`
   runs the model only on windows (at most the user's tile size) that cover the pixels whose
   weight is non-zero, grown by a margin of the overlap (`samplers/tiled/windows.py`); the rest
   takes x0_orig.
5. `calc_cond_batch` (`WrappersMP.CALC_COND_BATCH`, tiled_model) — every evaluation: the conds'
   ControlNets are deferred (`nodes/tiled_control.py`), so each tile batch gets its control from the
   ControlNet run on its own crop of the input and of the hint. An edit model's reference latents
   (`ReferenceLatent`) the size of the sampled latent are cropped to each tile; others pass whole;
   DiffSynth and Z-Image Fun model-patch ControlNets get their pictures' crops (`nodes/tiled_model_patches.py`).

The per-evaluation maths is `samplers.tiled.TiledRun` (pure torch, tested without ComfyUI): it
decides what is active from CPU data (strength mode: after one host read of σ per evaluation, in
`predict_noise`), so no step reads a device tensor otherwise.

The hook itself holds only what the node built (the original latent, the plan, the settings) and
never changes after construction; a clone of the patched model shares it (`__deepcopy__` returns
the hook, so `model_options`, which a clone deep-copies, copies no tensor). Everything that belongs
to one run lives in that run's own `transformer_options`.
"""

from __future__ import annotations

import uuid

import comfy.model_management
import comfy.patcher_extension
import comfy.utils
import torch

from ..samplers.tiled import PreserveState, TiledRun, TilePlan, tile_args
from ..samplers.tiled.evaluate import tile_references
from ..samplers.tiled.frames import as_sampled
from .tiled_control import DeferredControl, RunControls, defer_controls
from .tiled_model_patches import RunPatches
from .user_warnings import shown_to_user

NODE = "SoluneTiledImg2Img"
WRAPPERS = comfy.patcher_extension.WrappersMP


# Latent formats that ComfyUI 0.3.64 ships without `spacial_downscale_ratio` although their VAE is not
# 8x (later versions name it on the format, and that is read first).
_DOWNSCALE_OF_FORMAT = {"HunyuanImage21": 32}


def model_geometry(model) -> tuple[int, int]:
    """(downscale, align): pixels per latent unit and the network's patch size in latent units.

    The VAE's factor is not on the MODEL; the latent format names it (`spacial_downscale_ratio`,
    16 for Flux.2, 32 for HunyuanImage 2.1). Formats without it are 8 (SD1.5, SDXL, SD3, Flux,
    Qwen-Image), except HunyuanImage 2.1's on ComfyUI 0.3.64 (32). The patch size is the diffusion
    model's `patch_size` (2 for Flux, SD3 and Qwen-Image, absent → 1 for UNets; the last entry of a
    per-axis list).
    """
    latent_format = model.get_model_object("latent_format")
    default = _DOWNSCALE_OF_FORMAT.get(type(latent_format).__name__, 8)
    downscale = int(getattr(latent_format, "spacial_downscale_ratio", default))
    patch = getattr(getattr(model.model, "diffusion_model", None), "patch_size", 1)
    if isinstance(patch, (tuple, list)):
        patch = patch[-1]
    return downscale, int(patch) if isinstance(patch, int) and patch >= 1 else 1


def model_family(model) -> str | None:
    """The name of the model's ComfyUI family (its `supported_models` class, e.g. "QwenImage"), if known."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    return type(config).__name__ if config is not None else None


def check_original(original: torch.Tensor, sampled: torch.Tensor, family: str | None = None) -> torch.Tensor:
    """The original latent in the layout of the sampled one ([B, C, H, W] or [B, C, 1, H, W],
    `samplers/tiled/frames.py`); a ValueError if it cannot be preserved in it."""
    if sampled.dim() == 5 and sampled.shape[2] != 1:
        of = f" {family}" if family else ""
        raise ValueError(
            f"{NODE}: the{of} model samples a latent of shape {tuple(sampled.shape)} with {sampled.shape[2]} frames; "
            f"only image latents (one frame) can be tiled (video latents are not supported)"
        )
    converted = as_sampled(original, sampled.shape)
    if converted is None:
        raise ValueError(
            f"{NODE}: latent (the original, shape {tuple(original.shape)}) must have the channels and size of "
            f"the latent being sampled (shape {tuple(sampled.shape)}); encode the same image size with the same VAE"
        )
    if original.shape[0] not in (1, sampled.shape[0]):
        raise ValueError(
            f"{NODE}: latent batch must be 1 (broadcast) or the sampled batch {sampled.shape[0]}; "
            f"got {original.shape[0]}"
        )
    return converted


class TiledImg2ImgHook:
    """The tiled img2img hooks of one patch; `original` is the LATENT's samples (not in model space).

    Inputs are the node's, already validated there (`nodes/tiled_img2img.py`).
    """

    def __init__(self, original: torch.Tensor, plan: TilePlan, mode: str, tiled_model: bool, tile_batch_size: int):
        self.key = f"solune_tiled_img2img_{uuid.uuid4().hex}"
        self.controls_key = f"{self.key}_controls"
        self.patches_key = f"{self.key}_patches"
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

    def sampler_sample(
        self, executor, guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar
    ):
        inner = guider.inner_model
        original = check_original(self.original, noise, model_family(guider.model_patcher))
        x0_orig = inner.process_latent_in(original.to(noise.device)).to(torch.float32)
        state = PreserveState(
            x0_orig,
            self.plan.scale_map,
            self.mode,
            sigmas.detach().clone(),
            noise,
            lambda sigma, n, x0: inner.scale_latent_inpaint(sigma=sigma, noise=n, latent_image=x0),
        )
        options = extra_args["model_options"]
        previous = options.get("transformer_options", {})
        options["transformer_options"] = {
            **previous,
            self.key: TiledRun(state, self.plan),
            self.controls_key: RunControls(NODE),
            self.patches_key: RunPatches(),
        }
        try:
            with shown_to_user():  # warnings of the run (a ControlNet hint of another aspect) reach the user
                samples = executor(
                    guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar
                )
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
        run.enter(timestep)  # strength mode: σ read once on the host, the active set looked up on the CPU
        try:
            return executor(run.hold_input(x, timestep), timestep, model_options, seed)
        finally:
            run.leave()

    def post_cfg(self, args):
        run = self.run(args["model_options"].get("transformer_options", {}))
        return run.blend(args["denoised"], args["sigma"])

    def apply_model(
        self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs
    ):
        run = transformer_options.get(self.key)
        layout = self.plan.layout
        if run is None or tuple(x.shape[-2:]) != (layout.latent_h, layout.latent_w):
            # an area conditioning evaluates a crop: it is small already, evaluate it whole
            if isinstance(control, DeferredControl):
                control = control.resolve()
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        return self.evaluate(run, executor, x, t, c_concat, c_crossattn, control, transformer_options, kwargs)

    # -- the tiled evaluation -------------------------------------------------------------------

    def evaluate(
        self, run: TiledRun, executor, x, t, c_concat, c_crossattn, control, transformer_options: dict, kwargs: dict
    ) -> torch.Tensor:
        """x0 of the whole model input from the active windows (`samplers.tiled.TiledRun.evaluate`)."""
        chunks = len(transformer_options.get("cond_or_uncond", [])) or 1
        if x.shape[0] % chunks:
            chunks = 1
        deferred = control if isinstance(control, DeferredControl) else None
        patches = transformer_options.get(self.patches_key)
        refs = kwargs.get("ref_latents")  # an edit model's references: cropped or whole (`tile_references`)
        if refs is not None:
            kwargs = {k: v for k, v in kwargs.items() if k != "ref_latents"}
        rest = (t, c_concat, c_crossattn, None if deferred is not None else control, kwargs)
        bar = {}

        def denoise(x_crops, windows, indices):
            comfy.model_management.throw_exception_if_processing_interrupted()
            tt, cc, ca, ctl, kw = tile_args(rest, windows, indices, x.shape[0], chunks)
            if refs is not None:
                kw["ref_latents"] = tile_references(refs, windows, indices, x.shape[0], chunks)
            regions = [(w.y0, w.x0, w.h, w.w) for w in (windows.tiles[i] for i in indices)]
            if deferred is not None:  # the ControlNet on this batch's crops (nodes/tiled_control.py)
                cond = {"c_concat": cc, "c_crossattn": ca, **kw, "transformer_options": transformer_options}
                ctl = deferred.for_tiles(x_crops, tt, cond, regions, chunks, transformer_options)
            to = transformer_options
            if patches is not None:  # model-patch ControlNets on this batch's crops (nodes/tiled_model_patches.py)
                to = patches.for_tiles(transformer_options, regions, tuple(x.shape[-2:]), x.shape[0], chunks, x.device)
            return executor(x_crops, tt, cc, ca, ctl, to, **kw)

        def progress(done, total):
            if total > 1:
                bar.setdefault("bar", comfy.utils.ProgressBar(total)).update_absolute(done, total)

        return run.evaluate(denoise, x, self.tile_batch_size, chunks, progress)
