"""Widget layout of a node class, read from ComfyUI's `/object_info`.

The editor saves a node's widget values as a positional list (`widgets_values`).
Its positions follow the class's `input_order` (required, then optional), keep
only inputs that get a widget, and interleave values the frontend adds on its
own: a `control_after_generate` choice after seeds, and the upload button's
value after file pickers. This module turns one `/object_info` entry into that
layout, and maps a saved list (or dict) back onto input names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .errors import WorkflowError

log = logging.getLogger(__name__)

# Input types the frontend draws as widgets; everything else (MODEL, LATENT, ...) is a socket.
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# The values a control_after_generate widget can hold.
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
# Legacy convention: numeric inputs with these names get a control widget by name alone.
SEED_NAMES = ("seed", "noise_seed")
# Config flags that put an upload button (with its own saved value) after a combo.
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload", "animated_image_upload")


@dataclass(frozen=True)
class WidgetSlot:
    """One widget input and the frontend-only values saved right after it.

    control: a control_after_generate value always follows (INT seeds, flagged combos).
    optional_extra: a value may follow or not (upload buttons, FLOAT seeds); resolved by count.
    """

    name: str
    required: bool
    control: bool = False
    optional_extra: bool = False


def input_spec(class_info: dict, name: str) -> tuple[object, dict]:
    """Return `(type_or_options, config)` of input `name`, searching required then optional."""
    for section in ("required", "optional"):
        spec = (class_info.get("input") or {}).get(section, {}).get(name)
        if spec is not None:
            kind = spec[0] if len(spec) > 0 else None
            config = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            return kind, config
    return None, {}


def is_widget(kind: object, config: dict) -> bool:
    """True when the editor draws this input as a widget (its value lives in widgets_values)."""
    if config.get("forceInput"):
        return False
    if isinstance(kind, (list, tuple)):
        return True
    return isinstance(kind, str) and kind in WIDGET_TYPES


def input_names(class_info: dict, section: str) -> list[str]:
    """Input names of one section in declaration order (`input_order`, else dict order)."""
    order = (class_info.get("input_order") or {}).get(section)
    if order is not None:
        return list(order)
    return list((class_info.get("input") or {}).get(section, {}).keys())


def widget_slots(class_info: dict) -> list[WidgetSlot]:
    """The widget inputs of a class in the order the editor saves them."""
    slots = []
    for section in ("required", "optional"):
        for name in input_names(class_info, section):
            kind, config = input_spec(class_info, name)
            if not is_widget(kind, config):
                continue
            control = bool(config.get("control_after_generate"))
            float_seed = False
            if "control_after_generate" not in config and name in SEED_NAMES:
                control = kind == "INT"
                float_seed = kind == "FLOAT"
            upload = any(config.get(flag) for flag in UPLOAD_FLAGS)
            slots.append(WidgetSlot(name, section == "required", control, upload or float_seed))
    return slots


def map_widget_values(values: object, slots: list[WidgetSlot], where: str) -> dict[str, object]:
    """Map saved `widgets_values` onto widget input names.

    `where` names the node in error messages. A list is matched positionally,
    skipping control_after_generate values; optional extras are skipped when
    the count says they were saved. A dict is matched by name.
    """
    if values is None:
        values = []
    if isinstance(values, dict):
        return _map_dict(values, slots, where)
    if not isinstance(values, list):
        raise WorkflowError(f"{where}: widgets_values must be a list or a dict, found {type(values).__name__}")

    mandatory = len(slots) + sum(s.control for s in slots)
    optional = sum(s.optional_extra for s in slots)
    if len(values) == mandatory + optional:
        with_extras = True
    elif len(values) == mandatory:
        with_extras = False
    else:
        raise WorkflowError(_count_message(where, slots, len(values), mandatory, optional))

    mapped = {}
    position = 0
    for slot in slots:
        mapped[slot.name] = values[position]
        position += 1
        if slot.control:
            choice = values[position]
            if choice not in CONTROL_VALUES:
                raise WorkflowError(
                    f"{where}: expected a control_after_generate value ({', '.join(CONTROL_VALUES)}) "
                    f"after widget '{slot.name}' at widgets_values[{position}], found {choice!r}; "
                    "the saved values do not line up with this ComfyUI's inputs for the node"
                )
            position += 1
        if slot.optional_extra and with_extras:
            position += 1
    return mapped


def _map_dict(values: dict, slots: list[WidgetSlot], where: str) -> dict[str, object]:
    mapped = {s.name: values[s.name] for s in slots if s.name in values}
    missing = [s.name for s in slots if s.required and s.name not in values]
    if missing:
        raise WorkflowError(f"{where}: widgets_values has no value for required widget(s) {', '.join(missing)}")
    ignored = sorted(set(values) - set(mapped))
    if ignored:
        log.debug("%s: ignoring widgets_values keys %s", where, ignored)
    return mapped


def _count_message(where: str, slots: list[WidgetSlot], found: int, mandatory: int, optional: int) -> str:
    layout = []
    for slot in slots:
        layout.append(slot.name)
        if slot.control:
            layout.append(f"<control_after_generate of {slot.name}>")
        if slot.optional_extra:
            layout.append(f"[<frontend value after {slot.name}>]")
    expected = str(mandatory) if not optional else f"{mandatory} or {mandatory + optional}"
    return (
        f"{where}: widget count mismatch: expected {expected} widgets_values "
        f"({', '.join(layout) or 'no widgets'}), found {found}. "
        "The workflow was probably saved with a different version of this node; "
        "open and re-save it in the editor, or export it in API format."
    )
