"""UI-format → API-format conversion matches hand-written API prompts (no server needed)."""

from __future__ import annotations

import copy
import json

import pytest
from _ui_graph import FIXTURES, TXT2IMG_API, Subgraph, UIGraph, load_object_info, txt2img_graph, with_subgraphs

from solune.workflow import WorkflowError, detect_format, to_api, twins, ui_to_api
from solune.workflow.overrides import apply_overrides, parse_override

OBJECT_INFO = load_object_info()


def convert(graph: UIGraph | dict) -> dict:
    data = graph.to_json() if isinstance(graph, UIGraph) else graph
    return ui_to_api(data, OBJECT_INFO)


def latent_source(g: UIGraph, node_id: int = 1) -> None:
    g.add(node_id, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT")])


def save_latent(g: UIGraph, node_id: int = 9) -> None:
    g.add(node_id, "SaveLatent", ["latents/test"], inputs=[("samples", "LATENT")])


EMPTY_LATENT = {
    "class_type": "EmptyLatentImage",
    "_meta": {"title": "Empty Latent Image"},
    "inputs": {"width": 64, "height": 64, "batch_size": 1},
}


def saved_from(source: list) -> dict:
    return {
        "class_type": "SaveLatent",
        "_meta": {"title": "SaveLatent"},
        "inputs": {"filename_prefix": "latents/test", "samples": source},
    }


# --- widgets_values line up with input_order -------------------------------------------------


def test_default_workflow_matches_hand_written_api_prompt():
    graph = txt2img_graph()
    graph.add(20, "Note", ["remember to change the seed"])
    graph.add(21, "MarkdownNote", ["# notes"])
    groups = [{"title": "Prompts", "bounding": [0, 0, 400, 400], "color": "#3f789e"}]
    assert convert(graph.to_json(groups=groups)) == TXT2IMG_API


def test_int_seed_without_flag_still_skips_control_value():
    g = UIGraph()
    latent_source(g)
    g.add(2, "LegacySeedNode", [7, "fixed", 0.5], inputs=[("latent", "LATENT")], outputs=[("LATENT", "LATENT")])
    save_latent(g)
    g.connect(1, 0, 2, "latent")
    g.connect(2, 0, 9, "samples")
    assert convert(g)["2"]["inputs"] == {"latent": ["1", 0], "seed": 7, "strength": 0.5}


def test_flagged_seed_in_v3_noise_node_skips_control_value():
    g = UIGraph()
    g.add(1, "RandomNoise", [42, "increment"], outputs=[("NOISE", "NOISE")])
    assert convert(g)["1"]["inputs"] == {"noise_seed": 42}


@pytest.mark.parametrize("values", [[1.5, 3], [1.5, "fixed", 3]], ids=["without-extra", "with-extra"])
def test_float_seed_extra_value_is_resolved_by_count(values):
    g = UIGraph()
    g.add(1, "FloatSeedNode", values, outputs=[("FLOAT", "FLOAT")])
    assert convert(g)["1"]["inputs"] == {"seed": 1.5, "amount": 3}


def test_combo_control_and_optional_widgets_follow_required_ones():
    g = UIGraph()
    latent_source(g)
    g.add(
        2,
        "ComboControlNode",
        ["b", "randomize", "hello", 2.0, True],
        inputs=[("latent", "LATENT"), ("image", "IMAGE"), ("count", "INT")],
        outputs=[("LATENT", "LATENT")],
    )
    g.connect(1, 0, 2, "latent")
    assert convert(g)["2"]["inputs"] == {"latent": ["1", 0], "mode": "b", "label": "hello", "scale": 2.0, "flag": True}


@pytest.mark.parametrize("values", [["example.png", "image"], ["example.png"]], ids=["upload-value", "no-upload-value"])
def test_upload_button_value_is_optional(values):
    g = UIGraph()
    g.add(1, "LoadImage", values, outputs=[("IMAGE", "IMAGE"), ("MASK", "MASK")])
    assert convert(g)["1"]["inputs"] == {"image": "example.png"}


def test_dict_widgets_values_are_matched_by_name():
    g = UIGraph()
    g.add(
        1,
        "EmptyLatentImage",
        {"batch_size": 2, "height": 128, "width": 256, "videopreview": {}},
        outputs=[("LATENT", "LATENT")],
    )
    assert convert(g)["1"]["inputs"] == {"width": 256, "height": 128, "batch_size": 2}


def test_title_becomes_meta_title_and_defaults_to_the_display_name():
    api = convert(txt2img_graph())
    """As the editor's graphToPrompt writes `_meta.title`: the node's own title, else the display name
    from /object_info, else (no display name) the class type."""
    api = convert(txt2img_graph())
    assert api["6"]["_meta"] == {"title": "Positive"}
    assert api["9"]["_meta"] == {"title": "Save Image"}
    assert api["4"]["_meta"] == {"title": "Load Checkpoint"}
    g = UIGraph()
    g.add(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT")])
    g.add(
        2,
        "LatentConcat",
        ["x"],
        inputs=[("samples1", "LATENT"), ("samples2", "LATENT")],
        outputs=[("LATENT", "LATENT")],
    )
    save_latent(g)
    g.connect(1, 0, 2, "samples1")
    g.connect(1, 0, 2, "samples2")
    g.connect(2, 0, 9, "samples")
    assert convert(g)["2"]["_meta"] == {"title": "LatentConcat"}


def test_set_finds_an_untitled_node_by_its_display_name():
    """`--set "Save Image.filename_prefix=..."` names the same node in a UI file as in an Export (API) one."""
    api = convert(txt2img_graph())
    apply_overrides(api, [parse_override("Save Image.filename_prefix=run1")], OBJECT_INFO)
    assert api["9"]["inputs"]["filename_prefix"] == "run1"


# --- links: converted widgets, reroutes, primitives -----------------------------------------


def test_converted_widget_takes_its_link_but_keeps_its_slot():
    g = txt2img_graph()
    g.add(12, "FloatSeedNode", [0.0, 1], outputs=[("FLOAT", "FLOAT")])
    g.node(3)["inputs"].append({"name": "cfg", "type": "FLOAT", "link": None, "widget": {"name": "cfg"}})
    g.connect(12, 0, 3, "cfg")
    api = convert(g)
    expected = copy.deepcopy(TXT2IMG_API)
    expected["3"]["inputs"]["cfg"] = ["12", 0]
    expected["12"] = {
        "class_type": "FloatSeedNode",
        "_meta": {"title": "Float Seed Node"},
        "inputs": {"seed": 0.0, "amount": 1},
    }
    assert api == expected


def test_unlinked_widget_socket_uses_widget_value():
    g = txt2img_graph()
    g.node(3)["inputs"].append({"name": "steps", "type": "INT", "link": None, "widget": {"name": "steps"}})
    assert convert(g) == TXT2IMG_API


def test_primitive_node_value_feeds_every_target():
    g = UIGraph()
    g.add(10, "PrimitiveNode", [96, "fixed"], outputs=[("INT", "INT")], title="Size")
    g.add(
        1,
        "EmptyLatentImage",
        [64, 64, 1],
        inputs=[("width", "INT", "widget"), ("height", "INT", "widget")],
        outputs=[("LATENT", "LATENT")],
    )
    save_latent(g)
    g.connect(10, 0, 1, "width")
    g.connect(10, 0, 1, "height")
    g.connect(1, 0, 9, "samples")
    api = convert(g)
    assert api == {
        "1": {
            "class_type": "EmptyLatentImage",
            "_meta": {"title": "Empty Latent Image"},
            "inputs": {"width": 96, "height": 96, "batch_size": 1},
        },
        "9": saved_from(["1", 0]),
    }


def test_reroute_chain_resolves_to_the_real_source():
    g = UIGraph()
    latent_source(g)
    g.reroute(30)
    g.reroute(31)
    save_latent(g)
    g.connect(1, 0, 30, "")
    g.connect(30, 0, 31, "")
    g.connect(31, 0, 9, "samples")
    assert convert(g) == {"1": EMPTY_LATENT, "9": saved_from(["1", 0])}


def test_primitive_through_reroute_reaches_converted_widget():
    g = UIGraph()
    g.add(10, "PrimitiveNode", ["latents/from-primitive"], outputs=[("STRING", "STRING")])
    g.reroute(30)
    latent_source(g)
    g.add(9, "SaveLatent", ["latents/test"], inputs=[("samples", "LATENT"), ("filename_prefix", "STRING", "widget")])
    g.connect(10, 0, 30, "")
    g.connect(30, 0, 9, "filename_prefix")
    g.connect(1, 0, 9, "samples")
    assert convert(g)["9"]["inputs"] == {"filename_prefix": "latents/from-primitive", "samples": ["1", 0]}


def test_links_in_object_form_are_accepted():
    data = txt2img_graph().to_json()
    data["links"] = [
        {"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3], "target_slot": l[4], "type": l[5]}
        for l in data["links"]
    ]
    assert convert(data) == TXT2IMG_API


# --- muted and bypassed nodes ---------------------------------------------------------------


def upscale_chain(modes: dict[int, int]) -> UIGraph:
    """1 EmptyLatentImage → 2 LatentUpscale → 30 Reroute → 3 LatentUpscaleBy → 9 SaveLatent."""
    g = UIGraph()
    latent_source(g)
    g.add(
        2,
        "LatentUpscale",
        ["nearest-exact", 128, 128, "disabled"],
        inputs=[("samples", "LATENT")],
        outputs=[("LATENT", "LATENT")],
        mode=modes.get(2, 0),
    )
    g.reroute(30)
    g.add(
        3,
        "LatentUpscaleBy",
        ["bilinear", 2.0],
        inputs=[("samples", "LATENT")],
        outputs=[("LATENT", "LATENT")],
        mode=modes.get(3, 0),
    )
    save_latent(g)
    g.connect(1, 0, 2, "samples")
    g.connect(2, 0, 30, "")
    g.connect(30, 0, 3, "samples")
    g.connect(3, 0, 9, "samples")
    return g


UPSCALE = {
    "class_type": "LatentUpscale",
    "_meta": {"title": "Upscale Latent"},
    "inputs": {"upscale_method": "nearest-exact", "width": 128, "height": 128, "crop": "disabled", "samples": ["1", 0]},
}


def test_bypassed_node_passes_its_matching_input_through():
    api = convert(upscale_chain({3: 4}))
    assert api == {"1": EMPTY_LATENT, "2": UPSCALE, "9": saved_from(["2", 0])}


def test_chain_of_bypassed_nodes_and_reroutes_resolves_transitively():
    api = convert(upscale_chain({2: 4, 3: 4}))
    assert api == {"1": EMPTY_LATENT, "9": saved_from(["1", 0])}


def test_bypass_prefers_the_input_with_the_same_slot_index():
    g = UIGraph()
    latent_source(g, 1)
    latent_source(g, 2)
    g.add(
        5, "LatentPair", inputs=[("a", "LATENT"), ("b", "LATENT")], outputs=[("A", "LATENT"), ("B", "LATENT")], mode=4
    )
    save_latent(g, 8)
    save_latent(g, 9)
    g.connect(1, 0, 5, "a")
    g.connect(2, 0, 5, "b")
    g.connect(5, 0, 8, "samples")
    g.connect(5, 1, 9, "samples")
    api = convert(g)
    assert api["8"]["inputs"]["samples"] == ["1", 0]
    assert api["9"]["inputs"]["samples"] == ["2", 0]
    assert "5" not in api


def test_muted_node_is_removed_and_converted_widget_falls_back_to_its_value():
    g = UIGraph()
    g.add(10, "FloatSeedNode", [0.0, 1], outputs=[("FLOAT", "FLOAT")], mode=2)
    g.add(
        2,
        "LatentUpscaleBy",
        ["bilinear", 2.0],
        inputs=[("samples", "LATENT"), ("scale_by", "FLOAT", "widget")],
        outputs=[("LATENT", "LATENT")],
    )
    latent_source(g)
    save_latent(g)
    g.connect(10, 0, 2, "scale_by")
    g.connect(1, 0, 2, "samples")
    g.connect(2, 0, 9, "samples")
    api = convert(g)
    assert "10" not in api
    assert api["2"]["inputs"] == {"upscale_method": "bilinear", "scale_by": 2.0, "samples": ["1", 0]}


def test_muted_source_of_a_required_input_is_reported():
    g = txt2img_graph()
    g.node(4)["mode"] = 2
    with pytest.raises(WorkflowError) as error:
        convert(g)
    text = str(error.value)
    assert "node 3 (KSampler): required input 'model' is missing" in text
    assert "node 4 (CheckpointLoaderSimple) is muted" in text
    assert "node 8 (VAEDecode): required input 'vae' is missing" in text


def test_bypassed_node_without_matching_input_disconnects():
    g = txt2img_graph()
    g.node(8)["mode"] = 4  # VAEDecode: IMAGE out, LATENT and VAE in
    with pytest.raises(
        WorkflowError,
        match=r"node 9 \(SaveImage\): required input 'images' is missing: .*"
        r"node 8 \(VAEDecode\) is bypassed and has no connected IMAGE input",
    ):
        convert(g)


def test_muted_output_branch_is_dropped_without_error():
    g = upscale_chain({})
    g.node(9)["mode"] = 2
    g.add(11, "VAEDecode", inputs=[("samples", "LATENT"), ("vae", "VAE")], outputs=[("IMAGE", "IMAGE")])
    api = convert(g)
    assert sorted(api) == ["1", "11", "2", "3"]


# --- errors ---------------------------------------------------------------------------------


def test_unknown_node_type_names_id_type_and_title():
    g = txt2img_graph()
    g.add(15, "FancyUpscaler", [2], title="Make it big")
    with pytest.raises(
        WorkflowError, match=r"node 15 'Make it big' \(FancyUpscaler\): unknown node type 'FancyUpscaler'"
    ):
        convert(g)


@pytest.mark.parametrize("mode", ["strength", 5, None])
def test_a_node_mode_the_editor_never_writes_is_refused(mode):
    data = txt2img_graph().to_json()
    data["nodes"][0]["mode"] = mode
    node = data["nodes"][0]
    with pytest.raises(WorkflowError, match=rf"node {node['id']}.*has mode {mode!r:s}; the editor writes 0 \(always\)"):
        convert(data)


def test_a_type_that_is_neither_a_class_nor_a_subgraph_is_unknown():
    g = txt2img_graph()
    g.add(15, "0f3c2a9e-aaaa-bbbb-cccc-111122223333")
    data = g.to_json()
    data["definitions"] = {"subgraphs": [{"id": "0f3c2a9e-aaaa-bbbb-cccc-000000000000", "nodes": []}]}
    with pytest.raises(WorkflowError, match="node 15 .*unknown node type '0f3c2a9e-aaaa-bbbb-cccc-111122223333'"):
        convert(data)


def test_too_few_widget_values_report_expected_and_found():
    g = txt2img_graph()
    g.node(3)["widgets_values"] = [156680208700286, "randomize", 20, 8, "euler"]
    with pytest.raises(WorkflowError) as error:
        convert(g)
    text = str(error.value)
    assert "node 3 (KSampler): widget count mismatch: expected 7 widgets_values" in text
    assert "found 5" in text


def test_too_many_widget_values_are_a_mismatch():
    g = txt2img_graph()
    g.node(5)["widgets_values"] = [512, 768, 1, 4]
    with pytest.raises(
        WorkflowError, match=r"node 5 \(EmptyLatentImage\): widget count mismatch: expected 3 .* found 4"
    ):
        convert(g)


def test_missing_control_value_is_a_mismatch():
    g = txt2img_graph()
    g.node(3)["widgets_values"] = [156680208700286, 20, 8, "euler", "normal", 1]
    with pytest.raises(WorkflowError, match="expected 7 widgets_values"):
        convert(g)


def test_misplaced_control_value_is_reported():
    g = txt2img_graph()
    g.node(3)["widgets_values"] = [156680208700286, 20, 8, "euler", "normal", 1, "randomize"]
    with pytest.raises(WorkflowError, match=r"expected a control_after_generate value .* after widget 'seed'"):
        convert(g)


def test_dict_widgets_values_missing_a_required_widget_is_reported():
    g = UIGraph()
    g.add(1, "EmptyLatentImage", {"width": 256}, outputs=[("LATENT", "LATENT")])
    with pytest.raises(WorkflowError, match=r"node 1 \(EmptyLatentImage\).*height, batch_size"):
        convert(g)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {},
        {"nodes": []},
        {"links": []},
        {"3": {"inputs": {}}},
        {"prompt": {"3": {"inputs": {}}}},
        "text",
        42,
    ],
    ids=["list", "empty-object", "nodes-only", "links-only", "api-without-class-type", "wrapped", "string", "number"],
)
def test_json_in_neither_format_is_rejected(data):
    with pytest.raises(WorkflowError, match="API format|empty object"):
        detect_format(data)


def test_api_format_is_recognised_and_copied():
    api = copy.deepcopy(TXT2IMG_API)
    assert detect_format(api) == "api"
    converted = to_api(api, None)
    assert converted == TXT2IMG_API
    converted["3"]["inputs"]["steps"] = 99
    assert api["3"]["inputs"]["steps"] == 20


def test_ui_format_is_recognised():
    assert detect_format(txt2img_graph().to_json()) == "ui"


def test_saved_workflow_file_converts_to_its_api_twin():
    data = json.loads((FIXTURES / "ui_latent_and_image.json").read_text())
    expected = json.loads((FIXTURES / "ui_latent_and_image.api.json").read_text())
    assert convert(data) == expected


# --- subgraphs ----------------------------------------------------------------------------------

UPSCALE_SG = "9d1a3c2e-0000-4000-8000-00000000000a"
TWICE_SG = "9d1a3c2e-0000-4000-8000-00000000000b"


def upscale_subgraph() -> Subgraph:
    """LatentUpscaleBy inside a subgraph: input 0 'samples' (a socket), input 1 'scale_by' (linked to the
    inner widget, so the subgraph node shows it as a promoted widget), output 0 the upscaled latent."""
    sg = Subgraph(
        UPSCALE_SG, "Upscale", inputs=[("samples", "LATENT"), ("scale_by", "FLOAT")], outputs=[("LATENT", "LATENT")]
    )
    sg.add(
        3,
        "LatentUpscaleBy",
        ["bilinear", 2.0],
        inputs=[("samples", "LATENT"), ("scale_by", "FLOAT", "widget")],
        outputs=[("LATENT", "LATENT")],
    )
    sg.from_input(0, 3, "samples")
    sg.from_input(1, 3, "scale_by")
    sg.to_output(3, 0, 0)
    return sg


def root_with(sg: Subgraph, widgets=None, mode: int = 0) -> UIGraph:
    g = UIGraph()
    latent_source(g)
    sg.instance(g, 5, widgets, mode=mode, title="Upscale it")
    save_latent(g)
    g.connect(1, 0, 5, "samples")
    g.connect(5, 0, 9, "samples")
    return g


def upscaled(source: list, scale: float) -> dict:
    return {
        "class_type": "LatentUpscaleBy",
        "_meta": {"title": "Upscale Latent By"},
        "inputs": {"upscale_method": "bilinear", "scale_by": scale, "samples": source},
    }


def test_inner_nodes_get_path_ids_and_the_promoted_widget_value():
    sg = upscale_subgraph()
    api = convert(with_subgraphs(root_with(sg, [1.25]), sg))
    assert api == {"1": EMPTY_LATENT, "5:3": upscaled(["1", 0], 1.25), "9": saved_from(["5:3", 0])}


def test_an_unsaved_promoted_value_is_the_inner_widgets_own():
    """As frontend 1.49.6 does (it starts the promoted widget from the inner one). Both frontends save every
    promoted value; given a file without them, 1.27.10 fills them from unrelated positions of the inner
    node's widgets_values, which this converter does not copy."""
    sg = upscale_subgraph()
    assert convert(with_subgraphs(root_with(sg), sg))["5:3"] == upscaled(["1", 0], 2.0)


def test_a_promoted_input_linked_outside_takes_its_link():
    sg = upscale_subgraph()
    g = root_with(sg, [1.25])
    g.add(10, "PrimitiveNode", [3.0], outputs=[("FLOAT", "FLOAT")])
    g.connect(10, 0, 5, "scale_by")
    assert convert(with_subgraphs(g, sg))["5:3"] == upscaled(["1", 0], 3.0)


def test_the_same_subgraph_twice_is_two_sets_of_nodes_with_their_own_values():
    sg = upscale_subgraph()
    g = root_with(sg, [1.25])
    sg.instance(g, 6, [0.5])
    save_latent(g, 8)
    g.connect(1, 0, 6, "samples")
    g.connect(6, 0, 8, "samples")
    api = convert(with_subgraphs(g, sg))
    assert api["5:3"] == upscaled(["1", 0], 1.25) and api["6:3"] == upscaled(["1", 0], 0.5)
    assert api["8"]["inputs"]["samples"] == ["6:3", 0]


def twice_subgraph() -> Subgraph:
    """A subgraph holding the upscale subgraph (node 7) and a LatentBlend of its result with its input;
    its 'scale_by' input is linked to node 7's promoted widget, so it is promoted again one level up."""
    sg = Subgraph(
        TWICE_SG,
        "Upscale and blend",
        inputs=[("samples", "LATENT"), ("scale_by", "FLOAT")],
        outputs=[("LATENT", "LATENT")],
    )
    upscale_subgraph().instance(sg, 7)
    sg.add(
        4, "LatentBlend", [0.5], inputs=[("samples1", "LATENT"), ("samples2", "LATENT")], outputs=[("LATENT", "LATENT")]
    )
    sg.from_input(0, 7, "samples")
    sg.from_input(1, 7, "scale_by")
    sg.from_input(0, 4, "samples1")
    sg.connect(7, 0, 4, "samples2")
    sg.to_output(4, 0, 0)
    return sg


def test_nested_subgraphs_flatten_to_paths_and_promoted_values_flow_down_two_levels():
    outer, inner = twice_subgraph(), upscale_subgraph()
    api = convert(with_subgraphs(root_with(outer, [4.0]), outer, inner))
    assert api["5:7:3"] == upscaled(["1", 0], 4.0)
    assert api["5:4"]["inputs"] == {"blend_factor": 0.5, "samples1": ["1", 0], "samples2": ["5:7:3", 0]}
    assert api["9"]["inputs"]["samples"] == ["5:4", 0]
    assert sorted(api) == ["1", "5:4", "5:7:3", "9"]


def test_a_muted_subgraph_node_leaves_out_its_nodes_and_what_needs_them_says_why():
    sg = upscale_subgraph()
    with pytest.raises(
        WorkflowError,
        match=r"node 9 \(SaveLatent\): required input 'samples' is missing: its "
        r"source node 5 'Upscale it' \(9d1a3c2e.*\) is muted",
    ):
        convert(with_subgraphs(root_with(sg, [1.25], mode=2), sg))


def test_a_bypassed_subgraph_node_passes_its_matching_input_through():
    sg = upscale_subgraph()
    api = convert(with_subgraphs(root_with(sg, [1.25], mode=4), sg))
    assert api == {"1": EMPTY_LATENT, "9": saved_from(["1", 0])}


def test_an_unconnected_subgraph_input_is_reported_as_such():
    sg = upscale_subgraph()
    g = root_with(sg, [1.25])
    g.node(5)["inputs"][0]["link"] = None
    g.links = [link for link in g.links if link[3] != 5]
    with pytest.raises(
        WorkflowError,
        match=r"node 5:3 \(LatentUpscaleBy\): required input 'samples' is missing: "
        r"input 'samples' of subgraph node 5 'Upscale it'",
    ):
        convert(with_subgraphs(g, sg))


def test_a_subgraph_that_contains_itself_is_refused():
    sg = upscale_subgraph()
    sg.instance(sg, 8)
    with pytest.raises(WorkflowError, match="subgraph 'Upscale' contains itself"):
        convert(with_subgraphs(root_with(sg, [1.25]), sg))


def test_inner_ids_taken_elsewhere_are_renumbered_as_frontend_1_49_does():
    """Frontend 1.49.6 renumbers, on load, a subgraph's node whose id the root graph (or an earlier
    subgraph) uses: to the next free number above the graph's last node id."""
    sg = upscale_subgraph()
    sg.nodes[0]["id"] = 1  # the root's EmptyLatentImage is node 1 too
    for link in sg.links:
        link[1], link[3] = (1 if link[1] == 3 else link[1]), (1 if link[3] == 3 else link[3])
    api = convert(with_subgraphs(root_with(sg, [1.25]), sg))
    assert sorted(api) == ["1", "5:10", "9"]
    assert api["5:10"] == upscaled(["1", 0], 1.25)


def test_a_list_widget_value_is_wrapped_as_graph_to_prompt_does():
    g = UIGraph()
    g.add(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT")])
    g.add(2, "PrimitiveNode", [[1, 2]], outputs=[("INT", "INT")])
    g.node(1)["inputs"] = [{"name": "batch_size", "type": "INT", "link": None, "widget": {"name": "batch_size"}}]
    g.connect(2, 0, 1, "batch_size")
    assert convert(g)["1"]["inputs"]["batch_size"] == {"__value__": [1, 2]}


@pytest.mark.parametrize("version", list(twins.snapshots()))
def test_a_workflow_saved_by_frontend_1_49_with_nested_subgraphs_converts(version):
    """tests/fixtures/ui_nested_subgraphs.json (the browser tests check the frontend queues the same):
    node 15 'Tiled 2x refine' holds node 14 'Upscale and encode'; node 16 is the same subgraph again,
    with other values for its promoted widgets (seed, scale_by, max_denoise, layout)."""
    api = ui_to_api(json.loads((FIXTURES / "ui_nested_subgraphs.json").read_text()), twins.snapshots()[version])
    assert sorted(api, key=lambda i: [int(p) for p in i.split(":")]) == [
        "1", "2", "3", "4", "7", "8", "11", "13",
        "15:9", "15:10", "15:14:5", "15:14:6", "16:9", "16:10", "16:14:5", "16:14:6", "17",
    ]  # fmt: skip
    first, second = api["15:9"]["inputs"], api["16:9"]["inputs"]
    assert (first["seed"], first["max_denoise"], first["layout"]) == (99, 0.4, "grid")
    assert (second["seed"], second["max_denoise"], second["layout"]) == (7, 0.5, "quadtree")
    assert api["15:14:5"]["inputs"] == {"upscale_method": "lanczos", "scale_by": 1.5, "image": ["4", 0]}
    assert api["16:14:5"]["inputs"]["scale_by"] == 1.25
    assert first["latent_image"] == ["15:14:6", 0] and first["model"] == ["1", 0]
    assert api["15:14:6"]["inputs"] == {"pixels": ["15:14:5", 0], "vae": ["3", 0]}
    assert api["13"]["inputs"]["images"] == ["15:9", 1] and api["17"]["inputs"]["images"] == ["16:10", 0]
