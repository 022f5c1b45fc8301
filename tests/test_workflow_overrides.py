"""`--set NODE.INPUT=VALUE` parses as documented and edits exactly the named node."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
from _ui_graph import TXT2IMG_API, Subgraph, UIGraph, load_object_info, with_subgraphs

from solune import run
from solune.workflow import WorkflowError, apply_overrides, parse_override, ui_to_api
from solune.workflow.overrides import check_overrides, resolve_overrides
from solune.workflow.progress import Console

OBJECT_INFO = load_object_info()


@pytest.mark.parametrize(
    "text, node, name, value",
    [
        ("3.steps=30", "3", "steps", 30),
        ("3.cfg=6.5", "3", "cfg", 6.5),
        ("3.sampler_name=euler_ancestral", "3", "sampler_name", "euler_ancestral"),
        ('6.text="42"', "6", "text", "42"),
        ("6.text=a cat = a dog", "6", "text", "a cat = a dog"),
        ("v1.5 Loader.ckpt_name=x.safetensors", "v1.5 Loader", "ckpt_name", "x.safetensors"),
        ("9.flag=true", "9", "flag", True),
        ('8.samples=["3", 0]', "8", "samples", ["3", 0]),
        ("6.text=", "6", "text", ""),
    ],
    ids=["int", "float", "plain-string", "json-string", "equals-in-value", "dotted-title", "bool", "link", "empty"],
)
def test_override_splits_on_last_dot_before_equals_and_parses_json(text, node, name, value):
    override = parse_override(text)
    assert (override.node, override.input, override.value) == (node, name, value)


@pytest.mark.parametrize("text", ["steps=30", "3.steps", ".steps=1", "3.=1", "=1"])
def test_malformed_override_is_rejected_with_usage(text):
    with pytest.raises(WorkflowError, match="expected NODE.INPUT=VALUE"):
        parse_override(text)


def api() -> dict:
    return copy.deepcopy(TXT2IMG_API)


def test_override_by_id_changes_only_that_input():
    prompt = apply_overrides(api(), [parse_override("3.steps=30")], OBJECT_INFO)
    expected = api()
    expected["3"]["inputs"]["steps"] = 30
    assert prompt == expected


def test_override_by_title():
    prompt = apply_overrides(api(), [parse_override("Negative.text=ugly")], OBJECT_INFO)
    assert prompt["7"]["inputs"]["text"] == "ugly"
    assert prompt["6"]["inputs"]["text"] == "a castle on a hill"


def test_node_id_wins_over_a_title_equal_to_another_id():
    prompt = api()
    prompt["6"]["_meta"]["title"] = "7"
    apply_overrides(prompt, [parse_override("7.text=by id")], OBJECT_INFO)
    assert prompt["7"]["inputs"]["text"] == "by id"
    assert prompt["6"]["inputs"]["text"] == "a castle on a hill"


def test_ambiguous_title_lists_the_candidates():
    prompt = api()
    prompt["7"]["_meta"]["title"] = "Positive"
    with pytest.raises(
        WorkflowError, match="node 'Positive' is ambiguous: it matches nodes 6 'Positive', 7 'Positive'"
    ):
        apply_overrides(prompt, [parse_override("Positive.text=x")], OBJECT_INFO)


def test_unknown_node_is_reported_with_the_nodes_available():
    with pytest.raises(WorkflowError, match=r"no node with id or title 'Sampler'.*3 'KSampler'"):
        apply_overrides(api(), [parse_override("Sampler.steps=3")], OBJECT_INFO)


def test_unknown_input_is_reported_with_the_class_inputs():
    with pytest.raises(
        WorkflowError, match=r"node 3 \(KSampler\) has no input 'step'; its inputs are: model, seed, steps"
    ):
        apply_overrides(api(), [parse_override("3.step=3")], OBJECT_INFO)


def test_unknown_input_is_accepted_without_object_info():
    prompt = apply_overrides(api(), [parse_override("3.extra=1")], None)
    assert prompt["3"]["inputs"]["extra"] == 1


def test_overrides_apply_in_order():
    prompt = apply_overrides(api(), [parse_override("3.seed=1"), parse_override("KSampler.seed=2")], OBJECT_INFO)
    assert prompt["3"]["inputs"]["seed"] == 2


def test_untitled_api_node_is_found_by_class_type_when_unique():
    prompt = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64}},
        "2": {"class_type": "SaveLatent", "inputs": {}},
    }
    apply_overrides(prompt, [parse_override("EmptyLatentImage.width=128")], OBJECT_INFO)
    assert prompt["1"]["inputs"]["width"] == 128


# --- naming nodes: title suffixes, subgraph paths, checked from the file alone ------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "example_workflows"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def test_a_title_without_its_file_suffix_names_the_node_in_a_ui_file():
    """The README's example: the loader is titled `Sol UNet (sol_unet.safetensors)`."""
    workflow = example("sol_text_to_image")
    assert resolve_overrides(workflow, [parse_override("Sol UNet.unet_name=my_sol.safetensors")]) == ["1"]


def test_an_exact_title_wins_over_another_nodes_title_without_suffix():
    prompt = api()
    prompt["6"]["_meta"]["title"] = "Negative (weak)"
    apply_overrides(prompt, [parse_override("Negative.text=x")], OBJECT_INFO)
    assert prompt["7"]["inputs"]["text"] == "x" and prompt["6"]["inputs"]["text"] == "a castle on a hill"


def test_a_title_without_suffix_shared_by_two_nodes_is_ambiguous():
    prompt = api()
    prompt["6"]["_meta"]["title"] = "Prompt (positive)"
    prompt["7"]["_meta"]["title"] = "Prompt (negative)"
    with pytest.raises(WorkflowError, match=r"node 'Prompt' is ambiguous: it matches nodes 6 'Prompt \(positive\)', 7"):
        apply_overrides(prompt, [parse_override("Prompt.text=x")], OBJECT_INFO)


def test_nothing_matching_lists_every_nodes_id_and_title():
    with pytest.raises(WorkflowError) as error:
        check_overrides(example("sol_text_to_image"), [parse_override("Sol Unet.unet_name=x")])
    text = str(error.value)
    assert text.startswith("--set 'Sol Unet.unet_name=x': no node with id or title 'Sol Unet'")
    assert "1 'Sol UNet (sol_unet.safetensors)'" in text and "4 'Positive prompt'" in text


def subgraph_workflow() -> dict:
    sg = Subgraph(SG_ID, "Upscale", inputs=[("samples", "LATENT")], outputs=[("LATENT", "LATENT")])
    sg.add(3, "LatentUpscaleBy", ["bilinear", 2.0], inputs=[("samples", "LATENT")], outputs=[("LATENT", "LATENT")])
    sg.from_input(0, 3, "samples")
    sg.to_output(3, 0, 0)
    g = UIGraph()
    g.add(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT")])
    sg.instance(g, 5, title="Upscale it")
    g.add(9, "SaveLatent", ["latents/test"], inputs=[("samples", "LATENT")])
    g.add(10, "EmptyLatentImage", [8, 8, 1], outputs=[("LATENT", "LATENT")], mode=2, title="Spare")
    g.connect(1, 0, 5, "samples")
    g.connect(5, 0, 9, "samples")
    return with_subgraphs(g, sg)


SG_ID = "5e1f0000-0000-4000-8000-000000000001"


def test_a_node_inside_a_subgraph_is_named_by_its_path_id_or_its_title():
    workflow = subgraph_workflow()
    prompt = ui_to_api(workflow, OBJECT_INFO)
    apply_overrides(prompt, [parse_override("5:3.scale_by=3.5")], OBJECT_INFO, workflow=workflow)
    assert prompt["5:3"]["inputs"]["scale_by"] == 3.5
    apply_overrides(prompt, [parse_override("Upscale Latent By.scale_by=1.5")], OBJECT_INFO, workflow=workflow)
    assert prompt["5:3"]["inputs"]["scale_by"] == 1.5


def test_a_subgraph_node_itself_is_refused_with_the_inner_id_syntax():
    with pytest.raises(
        WorkflowError,
        match=r"node 5 'Upscale it' .* is a subgraph node: set the input on the node "
        r"inside it .*SUBGRAPH:INNER",
    ):
        check_overrides(subgraph_workflow(), [parse_override("Upscale it.scale_by=2")])


def test_a_muted_node_is_refused_as_not_in_the_prompt():
    with pytest.raises(
        WorkflowError, match=r"node 10 'Spare' \(EmptyLatentImage\) is not in the prompt .*: it is muted"
    ):
        check_overrides(subgraph_workflow(), [parse_override("Spare.width=8")])


FAKE_MAIN = """
import os, sys
open(os.environ["SOLUNE_TEST_STARTED"], "w").write("started")
sys.exit(1)
"""


def test_set_is_checked_before_the_comfyui_server_is_started(tmp_path, monkeypatch):
    """A wrong --set costs no server start: exit 2 and ComfyUI's main.py never ran; a right one starts it."""
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(FAKE_MAIN)
    started = tmp_path / "started"
    monkeypatch.setenv("SOLUNE_TEST_STARTED", str(started))
    workflow = str(EXAMPLES / "sol_text_to_image.json")
    stream = io.StringIO()
    code = run.main([workflow, "--comfyui", str(comfy), "--set", "Sol Unet.unet_name=x"], Console(stream=stream))
    assert code == 2 and "no node with id or title 'Sol Unet'" in stream.getvalue()
    assert not started.exists()
    code = run.main([workflow, "--comfyui", str(comfy), "--set", "Sol UNet.unet_name=x"], Console(stream=stream))
    assert code == 5 and started.exists()
