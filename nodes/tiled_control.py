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
per-run copy. The user's ControlNet objects are never changed, whatever their attributes are
called: every copy starts from ComfyUI's own copy path (`control.copy()`, which builds a new object
with the settings and hint and the per-run caches as the class's constructor makes them), takes the
state `pre_run` gave the user's object (σ range, model sampling, a ControlLoRA's built model), and
owns every container it holds (`_fresh_copy`).

Under core's MultiGPU CFG Split (ComfyUI 0.33+, `MultiGPU_WorkUnits`) each device thread asks the
deferred control for `get_instance_for_device(device)`: it answers with the deferral of that
device's ControlNet chain (core's per-device clones), so the tiles a thread evaluates get their
control from the ControlNet on the thread's device.

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


def _holds_tensor(value) -> bool:
    """True for a tensor, or a dict / list / tuple / set with a tensor somewhere inside."""
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_tensor(v) for v in value)
    return False


def _own(value):
    """`value` with every dict, list and set in it copied (nested ones too); everything else shared."""
    if isinstance(value, dict):
        out = copy.copy(value)  # keeps the dict's class (OrderedDict, defaultdict, ...)
        for k, v in value.items():
            out[k] = _own(v)
        return out
    if isinstance(value, list):
        out = copy.copy(value)
        out[:] = [_own(v) for v in value]
        return out
    if isinstance(value, set):
        return copy.copy(value)
    return value


def _template(control):
    """A copy of one ControlNet for a run, by ComfyUI's own copy path (`control.copy()`: its settings
    and hint, its caches as the class's constructor makes them, whatever they are called), with the
    state the run's `pre_run` gave the user's object (σ range, model sampling, a ControlLoRA's built
    model; anything the copy path does not reproduce) carried over. A value holding tensors that the
    copy path sets itself stays the copy path's: that is a cache ComfyUI filled (a resized hint, an
    adapter's features), never carried. The chain link is the caller's."""
    fresh = control.copy()
    made = vars(fresh)
    for name, value in vars(control).items():
        if name in made and (made[name] is value or _holds_tensor(value)):
            continue
        setattr(fresh, name, _own(value))
    return fresh


def _fresh_copy(template):
    """A copy of a run's template that owns every container (so whatever `get_control` writes into a
    cache dict or list stays in the copy); tensors and models are shared, never written."""
    c = copy.copy(template)
    for name, value in vars(template).items():
        if isinstance(value, (dict, list, set)):
            setattr(c, name, _own(value))
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
        self.templates: dict = {}

    def copy_of(self, control):
        """A fresh copy of one ControlNet of the user's chain (`_fresh_copy` of its run template)."""
        key = id(control)
        if key not in self.templates:
            self.templates[key] = (control, _template(control))  # keep the original alive with its id
        return _fresh_copy(self.templates[key][1])

    def whole_copy(self, control):
        """A per-run copy of the whole chain for calls that are not tiled."""
        key = id(control)
        if key not in self.whole:
            chain = _linked([self.copy_of(c) for c in _chain(control)])
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
            t = self.copy_of(c)
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

    def get_instance_for_device(self, device):
        """Under core's MultiGPU CFG Split (ComfyUI 0.33+) each device thread asks this of the cond's
        control: the deferral of the ControlNet chain core cloned for `device` (this one where the
        chain has no clone there, as `ControlBase.get_instance_for_device` answers)."""
        instance = getattr(self.control, "get_instance_for_device", None)
        control = self.control if instance is None else instance(device)
        return self if control is self.control else TileControl(control, self.controls)


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
