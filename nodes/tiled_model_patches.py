"""Model-patch ControlNets per tile: under a tiled evaluation a DiffSynth or Z-Image Fun control patch
gets, per tile batch, the crop of its hint (and mask) that matches the tile.

From ComfyUI 0.3.6x on some ControlNets reach the model as *model patches* rather than through the
conditioning's `control`: `ModelPatchLoader` → `QwenImageDiffsynthControlnet` puts a
`DiffSynthCnetPatch` (hint image, optional mask, the VAE) into `transformer_options["patches"]
["double_block"]`, and `ZImageFunControlnet` puts a `ZImageControlPatch` (control image, optional
inpaint image and mask) into both `["noise_refiner"]` and `["double_block"]`. Called on an input of
another size than its cached encoding, such a patch resizes its *whole* pictures to that size
(`common_upscale(…, "area", "center")`) and encodes them: on a tile, every tile would get the whole
picture's control squeezed to the tile.

Per tile batch, `RunPatches.for_tiles` hands the model a copy of `transformer_options` whose control
patches are shallow copies carrying the encoding of the tile's crop, laid out chunk-major like the
tile batch; the copy's cached size is the tile's, so it uses that encoding as is. The crop is taken
from the pictures resized exactly as the patch resizes them for the whole image:

- DiffSynth: the hint resized to the whole latent's pixels; the mask stretched to the whole latent
  (bilinear) as the patch stretches it, then cropped.
- Z-Image Fun: the control and inpaint pictures resized to the whole latent's pixels; the mask
  resized twice as the patch does (bilinear to the pixels, rounded, to grey out the inpaint picture;
  nearest to the latent, as the mask channel), each cropped. A patch registered at two places is one
  copy at both, so its block-to-block state flows as in the whole image; each copy starts that state
  afresh, as a whole-image call of a full-depth model does.

Each crop is encoded once per run (tiles at scale 0 never are), with the models in use reloaded
after the VAE, as the patches themselves do. The user's patch objects are never changed.

Any other patch that carries a picture (a 4-D `image` tensor, e.g. from another pack) is not cropped:
a tiled_model patch over a model that carries one is refused before anything is patched
(`check_model_patches`); with tiled_model off the model sees the whole image and the patch behaves
exactly as in stock ComfyUI.
"""

from __future__ import annotations

import copy

import comfy.latent_formats
import comfy.model_management
import comfy.utils
import torch


def _hint_patches(model_options_or_to: dict) -> list[tuple[str, object]]:
    patches = model_options_or_to.get("patches", {})
    return [(where, p) for where, items in patches.items() for p in items]


def spatial_patches(model) -> list[str]:
    """The model patches on `model` that carry a spatial hint and are not cropped per tile, named."""
    found = []
    for where, patch in _hint_patches(model.model_options.get("transformer_options", {})):
        hint = getattr(patch, "image", None)
        if type(patch).__name__ not in CROPPED and isinstance(hint, torch.Tensor) and hint.dim() == 4:
            found.append(f"{type(patch).__name__} ({where})")
    return found


def check_model_patches(node: str, model) -> None:
    """Raise a ValueError naming the patches if `model` carries a model-patch ControlNet tiles cannot crop."""
    found = spatial_patches(model)
    if found:
        raise ValueError(
            f"{node}: tiled_model cannot give each tile its own crop of this model patch's picture "
            f"({', '.join(found)}): every tile would get the whole image's control. Set tiled_model off (the "
            "model then sees the whole image, and the patch works as in stock ComfyUI); "
            "QwenImageDiffsynthControlnet, ZImageFunControlnet and ControlNetApply are tiled"
        )


def _resized(image, w: int, h: int):
    """A [B, H, W, C] picture resized to w x h pixels as the patches resize it, channels first."""
    return None if image is None else comfy.utils.common_upscale(image.movedim(-1, 1), w, h, "area", "center")


def _encode(vae, pixels):
    """`vae.encode` during sampling, the models in use reloaded after it (as the patches do)."""
    loaded = comfy.model_management.loaded_models(only_currently_used=True)
    try:
        return vae.encode(pixels)
    finally:
        comfy.model_management.load_models_gpu(loaded)


class _DiffSynth:
    """`DiffSynthCnetPatch`: the hint, and the mask stretched to the latent."""

    @staticmethod
    def whole(patch, h: int, w: int, k: int) -> dict:
        mask = patch.mask
        if mask is not None:  # as `encode_latent_cond` stretches it to the whole latent
            mask = comfy.utils.common_upscale(mask.mean(dim=1, keepdim=True), w, h, "bilinear", "none")
        return {"image": _resized(patch.image, w * k, h * k), "mask": mask}

    @staticmethod
    def encode(patch, whole: dict, region, k: int):
        y, x, h, w = region
        t = copy.copy(patch)
        t.mask = None if whole["mask"] is None else whole["mask"][..., y : y + h, x : x + w]
        t.vae = _Reloading(patch.vae)
        crop = whole["image"][..., y * k : (y + h) * k, x * k : (x + w) * k].movedim(1, -1)
        return patch.model_patch.model.process_input_latent_image(t.encode_latent_cond(crop))

    @staticmethod
    def tile_copy(patch, encoded, size):
        t = copy.copy(patch)
        t.encoded_image, t.encoded_image_size = encoded, size
        return t


class _ZImageFun:
    """`ZImageControlPatch`: control picture, inpaint picture, the mask at the pixels and at the latent."""

    @staticmethod
    def whole(patch, h: int, w: int, k: int) -> dict:
        out = {"image": _resized(patch.image, w * k, h * k), "inpaint": _resized(patch.inpaint_image, w * k, h * k)}
        out["pixel_mask"] = out["latent_mask"] = None
        if patch.is_inpaint and patch.mask is not None:
            m = patch.mask
            m = m.view(m.shape[0], -1, m.shape[-2], m.shape[-1]).mean(dim=1, keepdim=True)
            out["pixel_mask"] = comfy.utils.common_upscale(m, w * k, h * k, "bilinear", "center").round()
            out["latent_mask"] = comfy.utils.common_upscale(m, w, h, "nearest", "center")
        return out

    @staticmethod
    def encode(patch, whole: dict, region, k: int):
        y, x, h, w = region

        def crop(t, scale):
            return None if t is None else t[..., y * scale : (y + h) * scale, x * scale : (x + w) * scale]

        fmt = comfy.latent_formats.Flux()
        control = crop(whole["image"], k)
        control = None if control is None else control.movedim(1, -1)
        if not patch.is_inpaint:
            return fmt.process_in(_encode(patch.vae, control))
        inpaint = crop(whole["inpaint"], k)
        inpaint = torch.ones_like(control) * 0.5 if inpaint is None else inpaint.movedim(1, -1)
        if whole["pixel_mask"] is not None:
            inpaint = ((inpaint - 0.5) * crop(whole["pixel_mask"], k).movedim(1, -1)) + 0.5
        inpaint_latent = fmt.process_in(_encode(patch.vae, inpaint))
        if whole["latent_mask"] is None:
            mask = torch.zeros_like(inpaint_latent)[:, :1]
        else:
            mask = crop(whole["latent_mask"], 1).to(device=inpaint_latent.device)
        if control is None:
            control = torch.ones_like(inpaint) * 0.5
        return torch.cat([fmt.process_in(_encode(patch.vae, control)), mask, inpaint_latent], dim=1)

    @staticmethod
    def tile_copy(patch, encoded, size):
        t = copy.copy(patch)
        t.encoded_image, t.encoded_image_size, t.temp_data = encoded, size, None
        return t


KINDS = {"DiffSynthCnetPatch": _DiffSynth, "ZImageControlPatch": _ZImageFun}  # ComfyUI's class names
CROPPED = tuple(KINDS)  # cropped per tile here


class _Reloading:
    """A VAE whose `encode` reloads the models in use after it; everything else is the VAE's."""

    def __init__(self, vae):
        self._vae = vae

    def encode(self, pixels):
        return _encode(self._vae, pixels)

    def __getattr__(self, name):
        return getattr(self._vae, name)


class RunPatches:
    """Per-run state of the control patches under one tiled hook: the whole pictures resized as the
    patch resizes them (per patch and latent size) and each tile's encoding (per patch and region)."""

    def __init__(self):
        self.whole: dict = {}
        self.encoded: dict = {}

    def _whole(self, patch, latent_hw):
        key = (id(patch), latent_hw)
        if key not in self.whole:
            k = int(patch.vae.spacial_compression_encode())
            self.whole[key] = (KINDS[type(patch).__name__].whole(patch, *latent_hw, k), k, patch)  # patch kept alive
        return self.whole[key][:2]

    def _tile(self, patch, latent_hw, region):
        key = (id(patch), latent_hw, region)
        if key not in self.encoded:
            whole, k = self._whole(patch, latent_hw)
            self.encoded[key] = KINDS[type(patch).__name__].encode(patch, whole, region, k)
        return self.encoded[key]

    def for_tiles(self, transformer_options: dict, regions, latent_hw, rows: int, chunks: int, device=None) -> dict:
        """`transformer_options` for one tile batch: its control patches carry the batch's crops."""
        found = {id(p): p for _, p in _hint_patches(transformer_options) if type(p).__name__ in CROPPED}
        if not found:
            return transformer_options
        b = rows // chunks
        swap = {}
        for pid, patch in found.items():
            per_tile = [self._tile(patch, latent_hw, r) for r in regions]  # [image rows, ...] each
            index = torch.arange(b) % per_tile[0].shape[0]
            stacked = torch.stack(
                [e[index.to(e.device)].to(device or e.device) for e in per_tile], dim=0
            )  # [n, b, ...]
            encoded = stacked.unsqueeze(0).expand(chunks, *stacked.shape).reshape(-1, *stacked.shape[2:])
            k = self.whole[(pid, latent_hw)][1]
            swap[pid] = KINDS[type(patch).__name__].tile_copy(patch, encoded, (regions[0][2] * k, regions[0][3] * k))
        patches = {
            where: [swap.get(id(p), p) for p in items] for where, items in transformer_options["patches"].items()
        }
        return {**transformer_options, "patches": patches}
