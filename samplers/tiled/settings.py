"""`TileSettings`: every setting of a tiled img2img run, named once with its default, range, choices
and tooltip.

The three tiled nodes generate their V3 inputs from it (nodes/tiled_inputs.py), the plan is built
from it (`make_plan`), the README's tiling-inputs table is checked against it (a test), and a
`TileSettings` is valid by construction: `__post_init__` checks every field, so the functions below
it trust their typed inputs. Adding a setting means adding one field here (and using it).

Groups: "layout" settings build the plan (all three nodes); "run" settings configure the hook
(SoluneTiledImg2Img and SoluneTiledSampler only).
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
        "Smallest denoise scale (by_area: the largest tiles; mask, pixel: where the mask is 0). Unused by uniform.",
        lo=0.0,
        hi=1.0,
        step=0.01,
    )
    max_denoise: float = _setting(
        0.6,
        "Largest denoise scale (uniform: every tile; by_area: the smallest tiles; mask, pixel: where the mask is 1).",
        lo=0.0,
        hi=1.0,
        step=0.01,
    )
    layout: str = _setting(
        "grid",
        "grid: equal tiles of tile_width × tile_height. quadtree: small tiles where the image (or latent) "
        "is busy, large where it is flat.",
        choices=LAYOUTS,
    )
    scale_mode: str = _setting(
        "uniform",
        "How tiles get their scale. uniform: max_denoise everywhere. by_area: small tiles max_denoise, "
        "the largest min_denoise. mask: mean of denoise_mask over the part each tile owns (where its feather "
        "weight is the largest), mapped to [min_denoise, max_denoise]. pixel: every pixel its own scale "
        "min + (max − min)·mask, as soft as the mask (no tile feathering).",
        choices=SCALE_MODES,
    )
    tile_width: int = _setting(
        768,
        "Grid tile width in pixels (rounded down to the model's latent factor and patch size; clamped to the "
        "image with a log note).",
        lo=16,
        hi=16384,
        step=8,
    )
    tile_height: int = _setting(768, "Grid tile height in pixels (rounded like tile_width).", lo=16, hi=16384, step=8)
    overlap: int = _setting(
        64,
        "Minimum overlap between neighbouring tiles in pixels; scales and model outputs are feathered across it.",
        lo=0,
        hi=4096,
        step=8,
    )
    falloff: str = _setting(
        "cosine", "Shape of the feather across overlaps; the weights always sum to exactly 1.", choices=FALLOFFS
    )
    min_tile: int = _setting(256, "Quadtree: smallest tile side in pixels.", lo=16, hi=16384, step=8)
    max_tile: int = _setting(1024, "Quadtree: largest tile side in pixels.", lo=16, hi=16384, step=8)
    threshold: float = _setting(
        0.02, "Quadtree: split a tile while its busyness (criterion) exceeds this.", lo=0.0, hi=1000.0, step=0.001
    )
    criterion: str = _setting(
        "variance", "Quadtree busyness: variance of the pixels, or gradient energy.", choices=CRITERIA
    )
    mode: str = _setting(
        "blend",
        "blend: every step x0 = m·model + (1−m)·original. strength: a tile of scale m is a stock img2img "
        "at denoise m inside this schedule (held on the re-noised original until its start).",
        choices=MODES,
        group="run",
    )
    tiled_model: bool = _setting(
        False,
        "Evaluate the model in windows no larger than the tiles (MultiDiffusion): less memory on large images, "
        "and only where some weight is non-zero, plus a margin of the overlap.",
        group="run",
    )
    tile_batch_size: int = _setting(
        4, "Tiled evaluation: how many equal-size windows go through the model at once.", lo=1, hi=256, group="run"
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
