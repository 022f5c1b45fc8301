"""Tier 1: the example workflows are well-formed UI-format graphs that use UNETLoader for the
experts, stock nodes plus Solune's only, and the documented model file names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / "example_workflows"
NAMES = ["sol_text_to_image.json", "lune_img2img.json", "sol_lune_handoff.json"]
STOCK = {
    "UNETLoader",
    "CLIPLoader",
    "VAELoader",
    "CLIPTextEncode",
    "EmptyLatentImage",
    "LoadImage",
    "VAEEncode",
    "VAEDecode",
    "SaveImage",
    "KSampler",
    "SamplerCustom",
    "BasicScheduler",
    "LatentMultiply",
    "Note",
}


def load(name):
    return json.loads((WORKFLOWS / name).read_text())


@pytest.mark.parametrize("name", NAMES)
def test_workflow_links_and_sockets_agree(name):
    wf = load(name)
    assert wf["version"] == 0.4 and {
        "last_node_id",
        "last_link_id",
        "nodes",
        "links",
        "groups",
        "config",
        "extra",
    } <= set(wf)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_node_id"] == max(nodes) and wf["last_link_id"] == max(l[0] for l in wf["links"])
    for lid, src, src_slot, dst, dst_slot, type_ in wf["links"]:
        out, inp = nodes[src]["outputs"][src_slot], nodes[dst]["inputs"][dst_slot]
        assert lid in out["links"] and inp["link"] == lid
        assert out["type"] == inp["type"] == type_
    linked = {l[0] for l in wf["links"]}
    for n in nodes.values():
        if n["type"] != "Note":
            assert n["properties"]["Node name for S&R"] == n["type"]
        for inp in n["inputs"]:
            assert inp["link"] in linked, f"{name}: {n['type']}.{inp['name']} is not connected"
    assert sorted(n["order"] for n in nodes.values()) == list(range(len(nodes)))
    for lid, src, _, dst, _, _ in wf["links"]:
        assert nodes[src]["order"] < nodes[dst]["order"]


@pytest.mark.parametrize("name", NAMES)
def test_workflow_uses_stock_and_solune_nodes_and_the_documented_files(name):
    wf = load(name)
    types = {n["type"] for n in wf["nodes"]}
    assert types <= STOCK | {t for t in types if t.startswith("Solune")}
    widgets = {n["type"]: [] for n in wf["nodes"]}
    for n in wf["nodes"]:
        widgets[n["type"]].append(n["widgets_values"])
    unets = sorted(w[0] for w in widgets["UNETLoader"])
    expected = {
        "sol_text_to_image.json": ["sol_unet.safetensors"],
        "lune_img2img.json": ["lune_unet.safetensors"],
        "sol_lune_handoff.json": ["lune_unet.safetensors", "sol_unet.safetensors"],
    }[name]
    assert unets == expected and all(w[1] == "default" for w in widgets["UNETLoader"])
    assert widgets["CLIPLoader"] == [["clip_l.safetensors", "stable_diffusion", "default"]]
    assert widgets["VAELoader"] == [["vae-ft-mse-840000-ema-pruned.safetensors"]]
    for n in wf["nodes"]:
        if n["type"].endswith("Loader"):
            assert n.get("title"), f"{name}: loader {n['id']} has no title"
    if name == "lune_img2img.json":
        assert widgets["LoadImage"] == [["example.png", "image"]]
    for w in widgets.get("KSampler", []):
        assert w[1] == "fixed" and len(w) == 7


@pytest.mark.parametrize("name", ["lune_img2img.json", "sol_lune_handoff.json"])
def test_lune_workflows_carry_a_bypassed_output_scale_after_the_sampler(name):
    """Early sd15-flow-lune checkpoints need their output latent scaled down: a stock LatentMultiply
    (multiplier 1.0) sits between the sampler and the decode, bypassed (mode 4), so the file runs
    unchanged until the user turns it on; converted, the decode reads the sampler directly."""
    from solune.workflow import twins

    wf = load(name)
    nodes = {n["id"]: n for n in wf["nodes"]}
    links = {l[0]: l for l in wf["links"]}
    scale = [n for n in nodes.values() if n["type"] == "LatentMultiply"]
    assert len(scale) == 1 and scale[0]["mode"] == 4 and scale[0]["widgets_values"] == [1.0]
    source = nodes[links[scale[0]["inputs"][0]["link"]][1]]
    assert source["type"] in ("KSampler", "SamplerCustom")
    targets = [nodes[links[i][3]] for i in scale[0]["outputs"][0]["links"]]
    assert [t["type"] for t in targets] == ["VAEDecode"]
    api = twins.ui_to_api(wf, next(iter(twins.snapshots().values())))
    assert "LatentMultiply" not in {n["class_type"] for n in api.values()}
    assert api[str(targets[0]["id"])]["inputs"]["samples"] == [str(source["id"]), 0]
