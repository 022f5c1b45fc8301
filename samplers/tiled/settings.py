"""`TileSettings`: every setting of a tiled img2img run, named once with its default, range, choices
and tooltip.

The three tiled nodes generate their V3 inputs from it (nodes/tiled_inputs.py), the plan is built
from it (`make_plan`), the tiling-inputs table of docs/nodes.md is checked against it (a test), and a
`TileSettings` is valid by construction: `__post_init__` checks every field, so the functions below
it trust their typed inputs. Adding a setting means adding one field here (and using it).

Groups: "layout" settings build the plan (all three nodes); "run" settings configure the hook
(SoluneTiledImg2Img and SoluneTiledSampler only). `advanced` settings (the quadtree's own knobs, which
a grid ignores, and the batching of tiled evaluation) are marked as the node's advanced inputs where
the installed ComfyUI has them (frontend 1.49 folds them in Nodes 2.0 and its parameters panel);
their names, defaults and meaning stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ...checks import check_bool, check_choice, check_int, check_number, check_order
from ...tiling import CRITERIA, FALLOFFS

LAYOUTS = ("grid", "quadtree")
#: how tiles get their scale (the one list of scale modes)
SCALE_MODES = ("uniform", "by_area", "mask", "pixel")
#: the scale modes that read denoise_mask
MASK_MODES = ("mask", "pixel")
MODES = ("blend", "strength")


@dataclass(frozen=True)
class Setting:
    """One setting: default, allowed values and tooltip (`kind` follows from the default / choices)."""

    default: object
    tooltip: str
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    group: str = "layout"
    advanced: bool = False

    @property
    def kind(self) -> str:
        """ "choice", "bool", "int" or "float"."""
        if self.choices:
            return "choice"
        return {bool: "bool", int: "int"}.get(type(self.default), "float")

    def check(self, name: str, value):
        """The value, checked and converted, or a ValueError `<name> must be …; got …`."""
        kind = self.kind
        if kind == "choice":
            return check_choice(name, value, self.choices)
        if kind == "bool":
            return check_bool(name, value)
        if kind == "int":
            return check_int(name, value, self.lo, self.hi)
        return check_number(name, value, self.lo, self.hi)


def _setting(default, tooltip, **kw):
    return field(default=default, metadata={"setting": Setting(default, tooltip, **kw)})


@dataclass(frozen=True)
class TileSettings:
    """The settings of one tiled img2img run (pixels for sizes); checked on construction."""

    min_denoise: float = _setting(
        0.3,
        "How much the least-changed areas change (0 keeps them exactly): the scale of the largest tiles (by_area) "
        "or where the mask is 0 (mask, pixel). Unused by uniform.",
        lo=0.0,
        hi=1.0,
        step=0.01,
    )
    max_denoise: float = _setting(
        0.6,
        "Your img2img strength, as a stock img2img's denoise: leave the sampler's own denoise at 1.0. The scale "
        "of every tile (uniform), of the smallest tiles (by_area), or where the mask is 1 (mask, pixel).",
        lo=0.0,
        hi=1.0,
        step=0.01,
    )
    layout: str = _setting(
        "grid",
        "How the picture is cut into tiles. grid: equal tiles of tile_width × tile_height. quadtree: small tiles "
        "where the image (or latent) is busy, large where it is flat (min_tile, max_tile, threshold, criterion).",
        choices=LAYOUTS,
    )
    scale_mode: str = _setting(
        "uniform",
        "Where the change goes: how tiles get their scale. uniform: max_denoise everywhere. by_area: small "
        "(busy) tiles max_denoise, "
        "the largest min_denoise. mask: mean of denoise_mask over the part each tile owns (where its feather "
        "weight is the largest), mapped to [min_denoise, max_denoise]. pixel: every pixel its own scale "
        "min + (max − min)·mask, as soft as the mask (no tile feathering).",
        choices=SCALE_MODES,
    )
    tile_width: int = _setting(
        768,
        "Grid tile width in pixels; with tiled_model, smaller tiles use less memory (rounded down to the model's "
        "latent factor and patch size; clamped to the image with a log note).",
        lo=16,
        hi=16384,
        step=8,
    )
    tile_height: int = _setting(768, "Grid tile height in pixels (rounded like tile_width).", lo=16, hi=16384, step=8)
    overlap: int = _setting(
        64,
        "How far neighbouring tiles overlap, in pixels (at least): more hides seams better. Scales and model "
        "outputs are feathered across it.",
        lo=0,
        hi=4096,
        step=8,
    )
    falloff: str = _setting(
        "cosine",
        "How tiles fade into each other across the overlap; the weights always sum to exactly 1.",
        choices=FALLOFFS,
    )
    min_tile: int = _setting(
        256,
        "Quadtree only: the smallest tile side in pixels; the busiest areas get tiles this small.",
        lo=16,
        hi=16384,
        step=8,
        advanced=True,
    )
    max_tile: int = _setting(
        1024,
        "Quadtree only: the largest tile side in pixels; flat areas get tiles this large.",
        lo=16,
        hi=16384,
        step=8,
        advanced=True,
    )
    threshold: float = _setting(
        0.02,
        "Quadtree only: lower it for more, smaller tiles. A tile is split while its busyness (criterion) exceeds this.",
        lo=0.0,
        hi=1000.0,
        step=0.001,
        advanced=True,
    )
    criterion: str = _setting(
        "variance",
        "Quadtree only: what counts as busy; variance of the pixels, or gradient energy (edges).",
        choices=CRITERIA,
        advanced=True,
    )
    mode: str = _setting(
        "blend",
        "How a tile's scale m acts. blend: softly throughout, every step x0 = m·model + (1−m)·original. "
        "strength: as a stock img2img at denoise m inside this schedule (the tile is held on the re-noised "
        "original until its start).",
        choices=MODES,
        group="run",
    )
    tiled_model: bool = _setting(
        False,
        "Turn on for large images (upscales): the model runs in windows no larger than the tiles (MultiDiffusion), "
        "so memory stays bounded, and only where some weight is non-zero, plus a margin of the overlap.",
        group="run",
    )
    tile_batch_size: int = _setting(
        4,
        "With tiled_model: how many equal-size windows go through the model at once (more is faster and uses "
        "more memory).",
        lo=1,
        hi=256,
        group="run",
        advanced=True,
    )

    def __post_init__(self):
        for name, spec in self.specs():
            object.__setattr__(self, name, spec.check(name, getattr(self, name)))
        check_order("min_denoise", self.min_denoise, "max_denoise", self.max_denoise)

    @staticmethod
    def specs(group: str | None = None) -> tuple[tuple[str, Setting], ...]:
        """(name, Setting) of every setting in declaration order, or of one group."""
        return tuple(
            (f.name, f.metadata["setting"])
            for f in fields(TileSettings)
            if group is None or f.metadata["setting"].group == group
        )

    @staticmethod
    def names(group: str | None = None) -> tuple[str, ...]:
        return tuple(name for name, _ in TileSettings.specs(group))

    @classmethod
    def from_inputs(cls, **values) -> TileSettings:
        """Settings from node inputs: known names only, the default for a missing or None value."""
        return cls(**{name: values[name] for name in cls.names() if values.get(name) is not None})

    @classmethod
    def check_inputs(cls, **values) -> None:
        """Check the known settings among `values` (None = not known yet, e.g. a linked input); the
        min/max order once both are known. For `validate_inputs`."""
        specs = dict(cls.specs())
        for name, value in values.items():
            if name in specs and value is not None:
                specs[name].check(name, value)
        lo, hi = values.get("min_denoise"), values.get("max_denoise")
        if lo is not None and hi is not None:
            check_order("min_denoise", lo, "max_denoise", hi)
