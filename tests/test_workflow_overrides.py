"""`--set NODE.INPUT=VALUE` parses as documented and edits exactly the named node."""

from __future__ import annotations

import copy

import pytest
from _ui_graph import TXT2IMG_API, load_object_info

from solune.workflow import WorkflowError, apply_overrides, parse_override

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
