"""Build small UI-format (editor "Save") workflows for tests, the way the frontend writes them."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def load_object_info() -> dict:
    """A trimmed /object_info of ComfyUI 0.3.64 core nodes plus synthetic edge-case classes."""
    return json.loads((FIXTURES / "runner_object_info.json").read_text())


class UIGraph:
    """Nodes and links in the editor's save format: links are [id, from, from_slot, to, to_slot, type]."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(
        self, node_id: int, kind: str, widgets=None, inputs=(), outputs=(), mode: int = 0, title: str | None = None
    ) -> dict:
        """inputs: (name, type) or (name, type, "widget") for a widget shown as an input socket."""
        node = {
            "id": node_id,
            "type": kind,
            "pos": [0, 0],
            "size": [300, 100],
            "flags": {},
            "order": len(self.nodes),
            "mode": mode,
            "inputs": [
                {"name": i[0], "type": i[1], "link": None, **({"widget": {"name": i[0]}} if len(i) > 2 else {})}
                for i in inputs
            ],
            "outputs": [{"name": o[0], "type": o[1], "links": []} for o in outputs],
            "properties": {"Node name for S&R": kind},
        }
        if widgets is not None:
            node["widgets_values"] = widgets
        if title is not None:
            node["title"] = title
        self.nodes.append(node)
        return node

    def node(self, node_id: int) -> dict:
        return next(n for n in self.nodes if n["id"] == node_id)

    def connect(self, from_id: int, from_slot: int, to_id: int, to_name: str) -> int:
        source, target = self.node(from_id), self.node(to_id)
        to_slot = next(i for i, e in enumerate(target["inputs"]) if e["name"] == to_name)
        link_id = len(self.links) + 1
        link_type = source["outputs"][from_slot]["type"] if from_slot < len(source["outputs"]) else "*"
        self.links.append([link_id, from_id, from_slot, to_id, to_slot, link_type])
        target["inputs"][to_slot]["link"] = link_id
        if from_slot < len(source["outputs"]):
            source["outputs"][from_slot]["links"].append(link_id)
        return link_id

    def reroute(self, node_id: int) -> dict:
        return self.add(node_id, "Reroute", inputs=[("", "*")], outputs=[("", "*")])

    def to_json(self, groups: list | None = None) -> dict:
        return {
            "last_node_id": max((n["id"] for n in self.nodes), default=0),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": groups or [],
            "config": {},
            "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
            "version": 0.4,
        }


def txt2img_graph() -> UIGraph:
    """The editor's default workflow: checkpoint, two prompts, KSampler, decode, save."""
    g = UIGraph()
    g.add(
        4,
        "CheckpointLoaderSimple",
        ["v1-5-pruned-emaonly.safetensors"],
        outputs=[("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")],
    )
    g.add(
        6,
        "CLIPTextEncode",
        ["a castle on a hill"],
        inputs=[("clip", "CLIP")],
        outputs=[("CONDITIONING", "CONDITIONING")],
        title="Positive",
    )
    g.add(
        7,
        "CLIPTextEncode",
        ["blurry"],
        inputs=[("clip", "CLIP")],
        outputs=[("CONDITIONING", "CONDITIONING")],
        title="Negative",
    )
    g.add(5, "EmptyLatentImage", [512, 768, 1], outputs=[("LATENT", "LATENT")])
    g.add(
        3,
        "KSampler",
        [156680208700286, "randomize", 20, 8, "euler", "normal", 1],
        inputs=[
            ("model", "MODEL"),
            ("positive", "CONDITIONING"),
            ("negative", "CONDITIONING"),
            ("latent_image", "LATENT"),
        ],
        outputs=[("LATENT", "LATENT")],
    )
    g.add(8, "VAEDecode", inputs=[("samples", "LATENT"), ("vae", "VAE")], outputs=[("IMAGE", "IMAGE")])
    g.add(9, "SaveImage", ["ComfyUI"], inputs=[("images", "IMAGE")])
    g.connect(4, 0, 3, "model")
    g.connect(4, 1, 6, "clip")
    g.connect(4, 1, 7, "clip")
    g.connect(6, 0, 3, "positive")
    g.connect(7, 0, 3, "negative")
    g.connect(5, 0, 3, "latent_image")
    g.connect(3, 0, 8, "samples")
    g.connect(4, 2, 8, "vae")
    g.connect(8, 0, 9, "images")
    return g


# The API-format prompt txt2img_graph() must convert to, written out by hand.
TXT2IMG_API = {
    "3": {
        "class_type": "KSampler",
        "_meta": {"title": "KSampler"},
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "_meta": {"title": "Load Checkpoint"},
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "_meta": {"title": "Empty Latent Image"},
        "inputs": {"width": 512, "height": 768, "batch_size": 1},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "_meta": {"title": "Positive"},
        "inputs": {"text": "a castle on a hill", "clip": ["4", 1]},
    },
    "7": {
        "class_type": "CLIPTextEncode",
        "_meta": {"title": "Negative"},
        "inputs": {"text": "blurry", "clip": ["4", 1]},
    },
    "8": {
        "class_type": "VAEDecode",
        "_meta": {"title": "VAE Decode"},
        "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
    },
    "9": {
        "class_type": "SaveImage",
        "_meta": {"title": "Save Image"},
        "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
    },
}


class Subgraph(UIGraph):
    """A subgraph definition (`definitions.subgraphs[]`) as the editor saves it: its own nodes, links in
    object form, and its input and output slots; the subgraph's input node is -10, its output node -20."""

    def __init__(self, sg_id: str, name: str, inputs=(), outputs=()):
        super().__init__()
        self.id, self.name = sg_id, name
        self.inputs = [{"id": f"{sg_id}-in{i}", "name": n, "type": t, "linkIds": []} for i, (n, t) in enumerate(inputs)]
        self.outputs = [
            {"id": f"{sg_id}-out{i}", "name": n, "type": t, "linkIds": []} for i, (n, t) in enumerate(outputs)
        ]
        self.link_ids = iter(range(1001, 2000))

    def from_input(self, slot: int, to_id: int, to_name: str) -> int:
        target = self.node(to_id)
        to_slot = next(i for i, e in enumerate(target["inputs"]) if e["name"] == to_name)
        link_id = next(self.link_ids)
        self.links.append([link_id, -10, slot, to_id, to_slot, self.inputs[slot]["type"]])
        self.inputs[slot]["linkIds"].append(link_id)
        target["inputs"][to_slot]["link"] = link_id
        return link_id

    def to_output(self, from_id: int, from_slot: int, slot: int) -> int:
        link_id = next(self.link_ids)
        self.links.append([link_id, from_id, from_slot, -20, slot, self.outputs[slot]["type"]])
        self.outputs[slot]["linkIds"].append(link_id)
        self.node(from_id)["outputs"][from_slot]["links"].append(link_id)
        return link_id

    def instance(self, graph: UIGraph, node_id: int, widgets=None, mode: int = 0, title: str | None = None) -> dict:
        """Add a subgraph node for this definition to `graph` (its inputs and outputs are the subgraph's)."""
        node = graph.add(
            node_id,
            self.id,
            widgets,
            inputs=[(s["name"], s["type"]) for s in self.inputs],
            outputs=[(s["name"], s["type"]) for s in self.outputs],
            mode=mode,
            title=title,
        )
        return node

    def definition(self) -> dict:
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
        return {
            "id": self.id,
            "version": 1,
            "name": self.name,
            "inputNode": {"id": -10, "bounding": [0, 0, 75, 100]},
            "outputNode": {"id": -20, "bounding": [600, 0, 75, 100]},
            "inputs": self.inputs,
            "outputs": self.outputs,
            "widgets": [],
            "nodes": self.nodes,
            "links": [dict(zip(keys, link)) for link in self.links],
            "groups": [],
            "config": {},
            "extra": {},
        }


def with_subgraphs(graph: UIGraph, *subgraphs: Subgraph) -> dict:
    data = graph.to_json()
    data["definitions"] = {"subgraphs": [s.definition() for s in subgraphs]}
    return data
