"""Every example workflow opens with the whole graph in view below the frontend's menu bar (its
saved `extra.ds`), in a 1920×960 window, at a scale where the frontend still draws node text;
`python -m solune.workflow.view` fits a new one."""

from __future__ import annotations

import json

import pytest

from solune.workflow import twins, view

EXAMPLES = twins.ui_files()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_opens_with_every_node_below_the_menu_bar_and_in_view(path):
    data = json.loads(path.read_text())
    assert view.out_of_view(data) == [], f"{path.name}: fit its view with python -m solune.workflow.view"
    _, scale = view.saved_view(data)
    assert view.READABLE_SCALE <= scale <= view.MAX_SCALE, (
        f"{path.name}: at scale {scale} the frontend draws no node text; make the graph more compact"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_default_view_would_hide_the_top_row_under_the_menu_bar(path):
    """The check can fail: the frontend's default view (offset 0, scale 1) puts the top row's title
    bars above the free area (under the tabs and menu bar)."""
    data = json.loads(path.read_text())
    data["extra"]["ds"] = {"offset": [0, 0], "scale": 1}
    assert view.out_of_view(data)


def test_fitted_view_centres_the_graph_and_shows_every_box():
    nodes = [
        {"id": 1, "type": "A", "pos": [-500, -200], "size": [300, 100]},
        {"id": 2, "type": "B", "pos": [2500, 900], "size": [400, 400]},
    ]
    data = {"nodes": nodes, "groups": [{"title": "g", "bounding": [-600, -300, 100, 100]}]}
    data["extra"] = {"ds": view.fitted_view(data)}
    assert view.out_of_view(data) == []
    (ox, _), scale = view.saved_view(data)
    boxes = view.node_boxes(data).values()
    left, right = (min(b[0] for b in boxes) + ox) * scale, (max(b[2] for b in boxes) + ox) * scale
    x0, _, x1, _ = view.VIEWPORT.box
    assert left - x0 == pytest.approx(x1 - right, abs=1)
