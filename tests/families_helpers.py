"""Tier-2 helpers shared by the family tests: the family models written once per session and
loaded through ComfyUI's stock loaders, conditioning, ControlNet application, sampling, and a
recorder of the model calls Solune's tiled evaluation makes."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

FAMILIES = ["sd15", "sdxl", "sd3", "flux"]
CONTROLNET_FAMILIES = ["sd15", "sdxl"]


class FamilyFiles:
    """The family models as .safetensors files in one folder, each written on first use."""

    def __init__(self, root: Path):
        self.root = root

    def _file(self, name: str, build) -> Path:
        path = self.root / name
        if not path.exists():
            from comfy_families import save

            save(build(), path)
        return path

    def unet(self, family: str) -> Path:
        import comfy_families as F
        from comfy_harness import tiny_sd15_unet_state_dict

        build = {
            "sd15": tiny_sd15_unet_state_dict,
            "sdxl": F.sdxl_unet_state_dict,
            "sd3": F.sd3_state_dict,
            "flux": F.flux_state_dict,
        }[family]
        return self._file(f"tiny_{family}.safetensors", build)

    def controlnet(self, family: str, hint_channels: int = 3) -> Path:
        import comfy_families as F

        cfg = {"sd15": F.SD15_UNET, "sdxl": F.SDXL_UNET}[family]
        return self._file(
            f"tiny_{family}_controlnet_{hint_channels}.safetensors",
            functools.partial(F.controlnet_state_dict, cfg, hint_channels=hint_channels),
        )


@functools.cache
def _load_unet(path: str):
    import comfy.sd

    return comfy.sd.load_diffusion_model(path)  # what UNETLoader does


def load_unet(files: FamilyFiles, family: str):
    return _load_unet(str(files.unet(family)))


def load_controlnet(files: FamilyFiles, family: str, hint_channels: int = 3):
    import comfy.controlnet

    return comfy.controlnet.load_controlnet(str(files.controlnet(family, hint_channels)))  # ControlNetLoader


def hint_image(h: int, w: int, seed: int = 5, channels: int = 3) -> torch.Tensor:
    """An IMAGE [1, h, w, channels] in [0, 1]."""
    return torch.rand(1, h, w, channels, generator=torch.Generator().manual_seed(seed))


def apply_controlnet(pos, neg, control_net, image, strength=1.0, start=0.0, end=1.0, extra_concat=()):
    """ControlNetApplyAdvanced, as the node runs it."""
    import nodes

    return nodes.ControlNetApplyAdvanced().apply_controlnet(
        pos, neg, control_net, image, strength, start, end, extra_concat=list(extra_concat)
    )


def sample(model, latent, pos, neg, *, sampler="euler", scheduler="simple", steps=2, cfg=3.0, denoise=0.6, seed=7):
    """What KSampler does with these inputs."""
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(
        model, noise, steps, cfg, sampler, scheduler, pos, neg, latent, denoise=denoise, disable_pbar=True, seed=seed
    )


def family_latent(family: str, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    channels = 16 if family in ("sd3", "flux") else 4
    return torch.randn(1, channels, h, w, generator=torch.Generator().manual_seed(seed))


class CallRecorder:
    """Keyed APPLY_MODEL wrappers that record the model calls: `outer` (added before Solune's
    patch) sees every whole-image evaluation, `inner` (added after) every call that reaches the
    model — the tiles, when Solune evaluates tile by tile."""

    def __init__(self):
        self.outer_calls, self.inner_calls = [], []

    def _wrapper(self, calls):
        def wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kw):
            # the model pops ControlNet residuals off their lists: keep a copy of the lists (a
            # deferred control of Solune's is kept as is, unread)
            if transformer_options is None:
                transformer_options = {}
            seen = {k: list(v) for k, v in control.items()} if type(control) is dict else control
            out = executor(x, t, c_concat, c_crossattn, control, transformer_options, **kw)
            calls.append(
                {
                    "x": x.clone(),
                    "t": t.clone(),
                    "c_crossattn": c_crossattn,
                    "c_concat": c_concat,
                    "control": seen,
                    "kwargs": dict(kw),
                    "transformer_options": transformer_options,
                    "out": out.clone(),
                    "outer": len(self.outer_calls),
                }
            )
            return out

        return wrapper

    def add_outer(self, model):
        import comfy.patcher_extension

        m = model.clone()
        m.add_wrapper_with_key(
            comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_outer", self._wrapper(self.outer_calls)
        )
        return m

    def add_inner(self, model):
        import comfy.patcher_extension

        m = model.clone()
        m.add_wrapper_with_key(
            comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test_inner", self._wrapper(self.inner_calls)
        )
        return m
