"""Tier 1: `TileSettings` is the one place that names every tile setting — each appears once in it
and once in the tiling-inputs table of docs/nodes.md (the node reference the README links), with the
same default; a TileSettings is valid by construction and refuses a bad value naming the input, the allowed
values and the value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from solune.samplers.tiled import TileSettings

NODE_DOCS = Path(__file__).resolve().parents[1] / "docs" / "nodes.md"
TENSOR_INPUTS = {"denoise_mask", "image"}  # tiling inputs that are tensors, not settings


def readme_tiling_table() -> list[tuple[list[str], str]]:
    """(input names, default text) of each row of the tiling-inputs table in docs/nodes.md."""
    text = NODE_DOCS.read_text(encoding="utf-8")
    start = text.index("Tiling inputs (shared by the three nodes):")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if not line.strip() and rows:
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("input", "") or set(cells[0]) <= set("-"):
            continue
        rows.append((re.findall(r"`([a-z_]+)`", cells[0]), cells[1]))
    return rows


def as_readme(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_tile_setting_appears_once_in_tile_settings_and_in_the_node_docs_table():
    names = TileSettings.names()
    assert len(names) == len(set(names))
    table = [name for row_names, _ in readme_tiling_table() for name in row_names]
    assert sorted(n for n in table if n not in TENSOR_INPUTS) == sorted(names)
    assert len(table) == len(set(table))


def test_the_node_docs_table_gives_each_settings_default():
    specs = dict(TileSettings.specs())
    for row_names, default_text in readme_tiling_table():
        if set(row_names) <= TENSOR_INPUTS:
            continue
        defaults = [d.replace(" px", "").strip("`") for d in default_text.split(", ")]
        if len(defaults) == 1:
            defaults = defaults * len(row_names)
        assert len(defaults) == len(row_names), row_names
        for name, shown in zip(row_names, defaults):
            assert shown == as_readme(specs[name].default), (name, shown)


def test_defaults_build_and_each_setting_refuses_a_value_outside_what_it_allows():
    assert TileSettings() == TileSettings.from_inputs()
    for name, spec in TileSettings.specs():
        bad = {"choice": "nope", "bool": 1, "int": (spec.hi or 0) + 1, "float": float("nan")}[spec.kind]
        with pytest.raises(ValueError, match=rf"^{name} must be .*; got {re.escape(repr(bad))}"):
            TileSettings(**{name: bad})
    with pytest.raises(ValueError, match=r"min_denoise must be <= max_denoise \(0.2\); got 0.5"):
        TileSettings(min_denoise=0.5, max_denoise=0.2)
