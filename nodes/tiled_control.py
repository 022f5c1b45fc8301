"""ControlNet per tile: under a tiled evaluation every tile batch gets its control from the
ControlNet run on that batch's crop of the model input and the same crop of the hint.

ComfyUI calls `control.get_control(x, t, cond, batched_number, transformer_options)` inside
`calc_cond_batch` on the whole model input, before `apply_model`. Under a tiled run the hook's
`CALC_COND_BATCH` wrapper hands `calc_cond_batch` copies of the conds whose `control` is a
`TileControl`: its `get_control` computes nothing and returns a `DeferredControl` holding the call.
The hook's `APPLY_MODEL` wrapper then asks it, per tile batch, for `for_tiles(...)`: a per-call copy
of the ControlNet chain (`previous_controlnet` included) whose `cond_hint_original` is the crop of
the hint ComfyUI resizes to the latent's pixel size (`common_upscale(..., "center")`, computed once
per run and ControlNet, exactly as ComfyUI computes it for the whole image), run by ComfyUI's own
`get_control` on the tile batch. So strength, start/end percent, chained ControlNets, T2I adapters,
VAE-encoded hints and `extra_concat` masks (cropped the same way) behave as ComfyUI makes them
behave, tiles at scale 0 never run the ControlNet, and its memory is bounded by the tile. Where a
call is not tiled (an area conditioning's crop), `resolve()` is ComfyUI's own whole-input call on a
per-run copy. The user's ControlNet objects are never changed: copies are shallow, with their
caches (`cond_hint`, `extra_concat`, `control_input`) cleared.

Cost: a T2I adapter or a VAE-encoded hint is recomputed per tile batch at every step, where
ComfyUI computes it once per run for the whole image.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Sequence

import comfy.utils
import torch

log = logging.getLogger(__name__)

_CACHES = ("cond_hint", "extra_concat", "control_input")  # what ComfyUI's ControlNets cache per run


def _fresh_copy(control):
    """A shallow copy of one ControlNet with its caches cleared (the chain is the caller's)."""
    c = copy.copy(control)
    for name in _CACHES:
        if hasattr(c, name):
            setattr(c, name, None)
    return c


def _chain(control):
    out = []
    while control is not None:
        out.append(control)
        control = getattr(control, "previous_controlnet", None)
    return out


def _linked(copies: list):
    """The first of `copies`, each one's `previous_controlnet` set to the next: a chain again."""
    for a, b in itertools.pairwise(copies):
        a.previous_controlnet = b
    return copies[0]


def _hint_ratio(control) -> int:
    """Hint pixels per latent unit, as `get_control` resizes the hint (VAE-encoded hints included)."""
    ratio = int(control.compression_ratio)
    vae = getattr(control, "vae", None)
    return ratio * int(vae.spacial_compression_encode()) if vae is not None else ratio


class RunControls:
    """Per-run state of the ControlNets under one tiled hook: the full resized hints (one per
    ControlNet and latent size, like ComfyUI's own `cond_hint`) and the whole-input copies."""

    def __init__(self, node: str):
        self.node = node
        self.hints: dict = {}
        self.whole: dict = {}

    def whole_copy(self, control):
        """A per-run copy of the whole chain for calls that are not tiled."""
        key = id(control)
        if key not in self.whole:
            chain = _linked([_fresh_copy(c) for c in _chain(control)])
            self.whole[key] = (control, chain)  # keep the original alive with its id
        return self.whole[key][1]

    def full_hint(self, control, latent_hw: tuple[int, int]) -> tuple[torch.Tensor, list[torch.Tensor], int, int]:
        """(hint, extra_concat, hint ratio, extra ratio) resized to the whole latent as ComfyUI does."""
        key = (id(control), latent_hw)
        if key not in self.hints:
            h, w = latent_hw
            k = _hint_ratio(control)
            original = control.cond_hint_original
            if original.dim() != 4:
                raise ValueError(
                    f"{self.node}: a ControlNet hint of shape {tuple(original.shape)} cannot be tiled; "
                    "tiled_model supports image hints [B, C, H, W] (set tiled_model off for this one)"
                )
            oh, ow = original.shape[-2:]
            if oh * w != ow * h:
                log.warning(
                    "%s: the ControlNet hint (%d×%d px) has another aspect ratio than the image (%d×%d px): "
                    "ComfyUI cuts its edges off (center crop) to fit the image, so the guide loses its borders; "
                    "use a hint of the image's shape for a full fit (every tile takes its crop of the fitted hint)",
                    self.node,
                    ow,
                    oh,
                    w * k,
                    h * k,
                )
            algorithm = control.upscale_algorithm
            hint = comfy.utils.common_upscale(original, w * k, h * k, algorithm, "center")
            cr = int(control.compression_ratio)
            extra = [
                comfy.utils.common_upscale(e.to(hint.device), w * cr, h * cr, algorithm, "center")
                if e.dim() == 4
                else e
                for e in getattr(control, "extra_concat_orig", [])
            ]
            self.hints[key] = (hint, extra, k, cr, control)
        hint, extra, k, cr, _ = self.hints[key]
        return hint, extra, k, cr

    def tile_chain(self, control, latent_hw, regions: Sequence[tuple[int, int, int, int]], rows: int, chunks: int):
        """A copy of the chain for one tile batch: each ControlNet's hint (and extra_concat) cropped to
        the regions [(y0, x0, h, w)] in latent units, laid out chunk-major like the tile batch."""
        copies = []
        for c in _chain(control):
            hint, extra, k, cr = self.full_hint(c, latent_hw)
            t = _fresh_copy(c)
            t.cond_hint_original = crop_rows(hint, regions, k, rows, chunks)
            if hasattr(t, "extra_concat_orig"):
                t.extra_concat_orig = [
                    crop_rows(e, regions, cr, rows, chunks, hint.shape[0]) if e.dim() == 4 else e for e in extra
                ]
            copies.append(t)
        return _linked(copies)


def crop_rows(v: torch.Tensor, regions, k: int, rows: int, chunks: int, hint_rows: int | None = None) -> torch.Tensor:
    """Crops of a per-image tensor [R, C, H·k, W·k] for a tile batch, chunk-major [chunks·n·b, ...].

    Row q of every chunk takes image row q mod R, the rows ComfyUI's `broadcast_image_to` gives the
    whole input; an `extra_concat` tensor first follows the hint's R rows (`repeat_to_batch_size`).
    """
    b = rows // chunks
    index = torch.arange(b) % (hint_rows or v.shape[0])
    index = index % v.shape[0]
    crops = [v[..., y * k : (y + h) * k, x * k : (x + w) * k][index] for y, x, h, w in regions]  # crop, then rows
    stacked = torch.stack(crops, dim=0)  # [n, b, C, h, w]
    return stacked.unsqueeze(0).expand(chunks, *stacked.shape).reshape(-1, *stacked.shape[2:])


class DeferredControl(dict):
    """What `get_control` returns under a tiled run: the call, not yet made. The tiled evaluation
    asks it per tile batch (`for_tiles`); anything else that reads it as ComfyUI's control dict gets
    the whole-input result, computed on first access (`resolve`)."""

    def __init__(self, control, controls: RunControls, x, t, cond, batched_number, transformer_options):
        super().__init__()
        self.control, self.controls = control, controls
        self.args = (x, t, cond, batched_number, transformer_options)
        self.resolved, self.value = False, None

    def resolve(self):
        """ComfyUI's own whole-input control (None when every ControlNet is outside its range)."""
        if not self.resolved:
            out = self.controls.whole_copy(self.control).get_control(*self.args)
            self.resolved, self.value = True, out
            if out:
                dict.update(self, out)
        return self.value

    def for_tiles(self, x_tiles, t, cond: dict, regions, chunks: int, transformer_options: dict):
        """The control of one tile batch: the ControlNet chain run on the crops."""
        x = self.args[0]
        chain = self.controls.tile_chain(self.control, tuple(x.shape[-2:]), regions, x.shape[0], chunks)
        return chain.get_control(x_tiles, t, cond, chunks, transformer_options)

    # the dict interface, for readers outside the tiled evaluation
    def _filled(self):
        self.resolve()
        return self

    def __getitem__(self, key):
        return dict.__getitem__(self._filled(), key)

    def get(self, key, default=None):
        return dict.get(self._filled(), key, default)

    def __contains__(self, key):
        return dict.__contains__(self._filled(), key)

    def __iter__(self):
        return dict.__iter__(self._filled())

    def __len__(self):
        return dict.__len__(self._filled())

    def keys(self):
        return dict.keys(self._filled())

    def items(self):
        return dict.items(self._filled())

    def values(self):
        return dict.values(self._filled())


class TileControl:
    """Stands in for a ControlNet chain inside `calc_cond_batch` under a tiled run."""

    def __init__(self, control, controls: RunControls):
        self.control, self.controls = control, controls

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        return DeferredControl(self.control, self.controls, x_noisy, t, cond, batched_number, transformer_options)


def defer_controls(conds: list, controls: RunControls) -> list:
    """Copies of calc_cond_batch's conds whose ControlNets are `TileControl`s (one per distinct
    ControlNet, so conds that batch together in ComfyUI still do). Conds an outer Solune patch
    deferred already stay its own: its APPLY_MODEL wrapper, outside this one, tiles them."""
    proxies: dict[int, TileControl] = {}

    def proxy(control):
        if id(control) not in proxies:
            proxies[id(control)] = TileControl(control, controls)
        return proxies[id(control)]

    def swap(c):
        control = c.get("control")
        if control is None or isinstance(control, TileControl):  # none, or deferred by an outer Solune patch
            return c
        return {**c, "control": proxy(control)}

    return [None if cond is None else [swap(c) for c in cond] for cond in conds]
