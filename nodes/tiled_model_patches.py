"""Model-patch ControlNets per tile: under a tiled evaluation a DiffSynth patch gets, per tile batch,
the crop of its hint (and mask) that matches the tile.

From ComfyUI 0.3.6x on some ControlNets reach the model as *model patches* rather than through the
conditioning's `control`: `ModelPatchLoader` → `QwenImageDiffsynthControlnet` puts a
`DiffSynthCnetPatch` (hint image, optional mask, the VAE) into `transformer_options["patches"]
["double_block"]`. Called on an input of another size than its cached encoding, the patch resizes
its *whole* hint to that size (`common_upscale(…, "area", "center")`) and encodes it: on a tile,
every tile would get the whole picture's control squeezed to the tile.

Per tile batch, `RunPatches.for_tiles` hands the model a copy of `transformer_options` whose DiffSynth
patches are shallow copies carrying the encoding of the tile's crop of the hint, resized exactly as
the patch resizes it for the whole image (and of the mask, stretched to the whole latent as the
patch stretches it, then cropped), laid out chunk-major like the tile batch; the copy's cached size
is the tile's, so it uses that encoding as is. Each crop is encoded once per run (tiles at scale 0
never are). The user's patch objects are never changed.

Other patches that carry a spatial hint (`ZImageFunControlnet`'s `ZImageControlPatch`, which also
patches the noise refiner) are not cropped yet: a tiled_model patch over a model that carries one is
refused before anything is patched (`check_model_patches`); with tiled_model off the model sees the
whole image and the patch behaves exactly as in stock ComfyUI.
"""

from __future__ import annotations

import copy

import comfy.utils
import torch

CROPPED = ("DiffSynthCnetPatch",)  # cropped per tile here
REFUSED = ("ZImageControlPatch",)  # carry a hint, not cropped yet


def _hint_patches(model_options_or_to: dict) -> list[tuple[str, object]]:
    patches = model_options_or_to.get("patches", {})
    return [(where, p) for where, items in patches.items() for p in items]


def spatial_patches(model) -> list[str]:
    """The model patches on `model` that carry a spatial hint and are not cropped per tile, named."""
    found = []
    for where, patch in _hint_patches(model.model_options.get("transformer_options", {})):
        name = type(patch).__name__
        hint = getattr(patch, "image", None)
        if name in CROPPED:
            continue
        if name in REFUSED or (isinstance(hint, torch.Tensor) and hint.dim() == 4):
            found.append(f"{name} ({where})")
    return found


def check_model_patches(node: str, model) -> None:
    """Raise a ValueError naming the patches if `model` carries a model-patch ControlNet tiles cannot crop."""
    found = spatial_patches(model)
    if found:
        raise ValueError(
            f"{node}: tiled_model cannot yet give each tile its own crop of this model-patch ControlNet's hint "
            f"({', '.join(found)}, from ZImageFunControlnet or another pack): every tile would get the whole "
            "image's control. Set tiled_model off (the model then sees the whole image, and the control works "
            "as in stock ComfyUI); QwenImageDiffsynthControlnet and ControlNetApply are tiled"
        )


class RunPatches:
    """Per-run state of the DiffSynth patches under one tiled hook: the whole hint resized as the patch
    resizes it (per patch and latent size) and each tile's encoding (per patch and region)."""

    def __init__(self):
        self.whole: dict = {}
        self.encoded: dict = {}

    def _whole(self, patch, latent_hw):
        key = (id(patch), latent_hw)
        if key not in self.whole:
            h, w = latent_hw
            k = int(patch.vae.spacial_compression_encode())
            image = comfy.utils.common_upscale(patch.image.movedim(-1, 1), w * k, h * k, "area", "center")
            mask = patch.mask
            if mask is not None:  # as `encode_latent_cond` stretches it to the whole latent
                mask = comfy.utils.common_upscale(mask.mean(dim=1, keepdim=True), w, h, "bilinear", "none")
            self.whole[key] = (image, mask, k, patch)  # the patch kept alive with its id
        return self.whole[key][:3]

    def _tile(self, patch, latent_hw, region):
        key = (id(patch), latent_hw, region)
        if key not in self.encoded:
            image, mask, k = self._whole(patch, latent_hw)
            y, x, h, w = region
            t = copy.copy(patch)
            t.mask = None if mask is None else mask[..., y : y + h, x : x + w]
            crop = image[..., y * k : (y + h) * k, x * k : (x + w) * k].movedim(1, -1)
            self.encoded[key] = patch.model_patch.model.process_input_latent_image(t.encode_latent_cond(crop))
        return self.encoded[key]

    def for_tiles(self, transformer_options: dict, regions, latent_hw, rows: int, chunks: int, device=None) -> dict:
        """`transformer_options` for one tile batch: its DiffSynth patches carry the batch's crops."""
        found = [(w, p) for w, p in _hint_patches(transformer_options) if type(p).__name__ in CROPPED]
        if not found:
            return transformer_options
        b = rows // chunks
        swap = {}
        for _, patch in found:
            per_tile = [self._tile(patch, latent_hw, r) for r in regions]  # [image rows, tokens, dim] each
            index = torch.arange(b) % per_tile[0].shape[0]
            stacked = torch.stack(
                [e[index.to(e.device)].to(device or e.device) for e in per_tile], dim=0
            )  # [n, b, ...]
            t = copy.copy(patch)
            t.encoded_image = stacked.unsqueeze(0).expand(chunks, *stacked.shape).reshape(-1, *stacked.shape[2:])
            k = self.whole[(id(patch), latent_hw)][2]
            t.encoded_image_size = (regions[0][2] * k, regions[0][3] * k)
            swap[id(patch)] = t
        patches = {
            where: [swap.get(id(p), p) for p in items] for where, items in transformer_options["patches"].items()
        }
        return {**transformer_options, "patches": patches}
