"""Tier 2: the tiling inputs the three tiled nodes show, generated from `TileSettings`: the same names,
order, defaults and tooltips on every ComfyUI; where ComfyUI has advanced inputs (0.33), the quadtree's
own knobs and `tile_batch_size` are marked advanced there (folded away by the frontend's Nodes 2.0
view and parameters panel), out of the way of a grid layout."""

from __future__ import annotations

import pytest

FOLDED = {"min_tile", "max_tile", "threshold", "criterion", "tile_batch_size"}


def comfyui_has_advanced_inputs() -> bool:
    """Probe ComfyUI's V3 inputs themselves: does an input accept `advanced` and report it?"""
    from comfy_api.latest import io

    try:
        return io.Int.Input("probe", advanced=True).as_dict().get("advanced") is True
    except TypeError:  # ComfyUI 0.3.64: no such argument
        return False


@pytest.mark.comfyui
def test_the_tiling_inputs_keep_their_names_defaults_and_tooltips_and_fold_the_quadtree_knobs(comfy):
    from solune.nodes.tiled_inputs import has_advanced_inputs, setting_inputs
    from solune.samplers.tiled import TileSettings

    assert has_advanced_inputs() == comfyui_has_advanced_inputs()
    inputs = setting_inputs("layout") + setting_inputs("run")
    assert [i.id for i in inputs] == list(TileSettings.names())
    assert {name for name, spec in TileSettings.specs() if spec.advanced} == FOLDED
    for given, (name, spec) in zip(inputs, TileSettings.specs()):
        shown = given.as_dict()
        assert (shown["default"], shown["tooltip"]) == (spec.default, spec.tooltip), name
        assert shown.get("advanced", False) is (comfyui_has_advanced_inputs() and name in FOLDED), name


def test_a_quadtree_knobs_tooltip_says_it_is_for_the_quadtree_only():
    from solune.samplers.tiled import TileSettings

    for name, spec in TileSettings.specs():
        if name in FOLDED - {"tile_batch_size"}:
            assert spec.tooltip.startswith("Quadtree only:"), name
