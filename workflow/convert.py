"""Convert a workflow saved by ComfyUI's editor (UI format) into API format.

API format is what `POST /prompt` takes: `{node_id: {"class_type", "inputs", "_meta"}}`
where a linked input is `[source_node_id, output_slot]`. UI format has `nodes` and
`links` lists; the conversion needs the server's `/object_info` to know which inputs
are widgets and in which order their values were saved.

Frontend-only parts are resolved here: `Reroute` and `PrimitiveNode` are followed
to their source, muted nodes (mode 2) are dropped, bypassed nodes (mode 4) pass an
input of the matching type through, and notes and groups are ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .errors import WorkflowError
from .widgets import input_names, input_spec, is_widget, map_widget_values, widget_slots

log = logging.getLogger(__name__)

MODE_ALWAYS, MODE_NEVER, MODE_BYPASS = 0, 2, 4
# 1 ("on event") and 3 ("on trigger") are LiteGraph modes that ComfyUI executes like 0.
KNOWN_MODES = (MODE_ALWAYS, 1, MODE_NEVER, 3, MODE_BYPASS)
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
IGNORED_TYPES = frozenset({"Note", "MarkdownNote"})

FORMAT_HELP = (
    "expected a ComfyUI workflow: either API format (an object mapping node ids to "
    '{"class_type": ..., "inputs": {...}}, from "Export (API)") or UI format '
    '(an object with "nodes" and "links" lists, from "Save")'
)


def detect_format(data: object) -> str:
    """Return "api" or "ui"; raise WorkflowError for anything else."""
    if isinstance(data, dict):
        if isinstance(data.get("nodes"), list) and isinstance(data.get("links"), list):
            return "ui"
        if data and all(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in data.values()):
            return "api"
        if not data:
            raise WorkflowError(f"the workflow is an empty object; {FORMAT_HELP}")
    raise WorkflowError(f"unrecognised workflow JSON; {FORMAT_HELP}")


def to_api(data: object, object_info: dict | None) -> dict:
    """Return an API-format copy of `data` (either format); UI format needs `object_info`."""
    if detect_format(data) == "api":
        return {str(k): {**v, "inputs": dict(v.get("inputs") or {})} for k, v in data.items()}
    if object_info is None:
        raise WorkflowError("converting a UI-format workflow needs the server's /object_info")
    return ui_to_api(data, object_info)


def node_label(node: dict) -> str:
    """`node 5 'My title' (KSampler)` for messages."""
    title = node.get("title")
    named = f" '{title}'" if title and title != node.get("type") else ""
    return f"node {node.get('id')}{named} ({node.get('type')})"


@dataclass(frozen=True)
class _Source:
    """Where a resolved input gets its data: a node output, a constant, or nothing (with why)."""

    node_id: str | None = None
    slot: int = 0
    value: object = None
    is_value: bool = False
    why_missing: str = ""


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to API format using the server's `/object_info`."""
    return _Converter(workflow, object_info).convert()


class _Converter:
    def __init__(self, workflow: dict, object_info: dict):
        self.object_info = object_info
        self.nodes = {}
        for node in workflow["nodes"]:
            if not isinstance(node, dict) or "id" not in node or "type" not in node:
                raise WorkflowError(
                    f"UI workflow: every entry of 'nodes' needs an 'id' and a 'type', found {node!r:.80}"
                )
            if node.get("mode", MODE_ALWAYS) not in KNOWN_MODES:
                raise WorkflowError(
                    f"UI workflow: {node_label(node)} has mode {node.get('mode')!r}; the editor writes "
                    f"0 (always), 2 (muted) or 4 (bypassed)"
                )
            self.nodes[str(node["id"])] = node
        self.links = {}
        for link in workflow["links"]:
            self._add_link(link)
        subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
        self.subgraph_ids = {str(s.get("id")) for s in subgraphs if isinstance(s, dict)}

    def _add_link(self, link: object) -> None:
        if isinstance(link, list) and len(link) >= 5:
            link_id, from_node, from_slot, to_node, to_slot = link[:5]
            link_type = link[5] if len(link) > 5 else None
        elif isinstance(link, dict) and "origin_id" in link:
            link_id, from_node, from_slot = link.get("id"), link["origin_id"], link.get("origin_slot", 0)
            to_node, to_slot, link_type = link.get("target_id"), link.get("target_slot"), link.get("type")
        else:
            raise WorkflowError(
                f"UI workflow: malformed link {link!r:.80}; expected [id, from_node, from_slot, to_node, to_slot, type]"
            )
        self.links[link_id] = (str(from_node), int(from_slot or 0), str(to_node), to_slot, link_type)

    def convert(self) -> dict:
        problems = []
        api = {}
        self.missing = {}
        for node_id in sorted(self.nodes, key=_id_sort_key):
            node = self.nodes[node_id]
            kind = node["type"]
            if kind in IGNORED_TYPES or kind in (REROUTE, PRIMITIVE):
                continue
            if node.get("mode", MODE_ALWAYS) in (MODE_NEVER, MODE_BYPASS):
                continue
            if kind not in self.object_info:
                problems.append(self._unknown_type_message(node))
                continue
            try:
                api[node_id], self.missing[node_id] = self._convert_node(node)
            except WorkflowError as error:
                problems.append(str(error))
        problems.extend(self._missing_required(api))
        if problems:
            raise WorkflowError("cannot convert the UI workflow:\n  " + "\n  ".join(problems))
        return api

    def _unknown_type_message(self, node: dict) -> str:
        if str(node["type"]) in self.subgraph_ids:
            return f"{node_label(node)} is a subgraph; subgraphs are not supported, unpack it in the editor first"
        return (
            f"{node_label(node)}: unknown node type '{node['type']}' (not in the server's /object_info); "
            "install the custom node pack that provides it, or remove the node"
        )

    def _convert_node(self, node: dict) -> tuple[dict, dict]:
        info = self.object_info[node["type"]]
        where = node_label(node)
        widget_values = map_widget_values(node.get("widgets_values"), widget_slots(info), where)
        inputs = dict(widget_values)
        missing = {}
        for entry in node.get("inputs") or []:
            name = (entry.get("widget") or {}).get("name") or entry.get("name")
            if entry.get("link") is None:
                continue
            source = self._resolve(entry["link"], set())
            if source.is_value:
                inputs[name] = source.value
            elif source.node_id is not None:
                inputs[name] = [source.node_id, source.slot]
            elif name in widget_values:
                log.info("%s: input '%s' lost its link (%s); using its widget value", where, name, source.why_missing)
            else:
                missing[name] = source.why_missing
        # As the editor's graphToPrompt writes it: an untitled node is named by its display name.
        title = node.get("title") or info.get("display_name") or node["type"]
        return {"inputs": inputs, "class_type": node["type"], "_meta": {"title": title}}, missing

    def _resolve(self, link_id: object, seen: set) -> _Source:
        """Follow a link through reroutes, primitives and bypassed nodes to its real source."""
        if link_id in seen:
            return _Source(why_missing="its links form a cycle through reroutes or bypassed nodes")
        seen.add(link_id)
        link = self.links.get(link_id)
        if link is None:
            return _Source(why_missing=f"link {link_id} is not in the workflow's 'links'")
        from_id, from_slot, _, _, link_type = link
        source = self.nodes.get(from_id)
        if source is None:
            return _Source(why_missing=f"link {link_id} comes from node {from_id}, which does not exist")
        kind = source["type"]
        if kind == REROUTE:
            upstream = next((e.get("link") for e in source.get("inputs") or [] if e.get("link") is not None), None)
            if upstream is None:
                return _Source(why_missing=f"{node_label(source)} has no input")
            return self._resolve(upstream, seen)
        if kind == PRIMITIVE:
            values = source.get("widgets_values")
            if isinstance(values, list) and values:
                return _Source(value=values[0], is_value=True)
            return _Source(why_missing=f"{node_label(source)} has no value")
        mode = source.get("mode", MODE_ALWAYS)
        if mode == MODE_NEVER:
            return _Source(why_missing=f"its source {node_label(source)} is muted")
        if mode == MODE_BYPASS:
            return self._pass_through(source, from_slot, link_type, seen)
        return _Source(node_id=from_id, slot=from_slot)

    def _pass_through(self, node: dict, out_slot: int, link_type: object, seen: set) -> _Source:
        """A bypassed node hands on its input whose type matches output `out_slot`'s type."""
        outputs = node.get("outputs") or []
        out_type = outputs[out_slot].get("type") if out_slot < len(outputs) else None
        out_type = out_type or link_type
        entries = node.get("inputs") or []
        order = ([out_slot] if out_slot < len(entries) else []) + [i for i in range(len(entries)) if i != out_slot]
        matching = [i for i in order if entries[i].get("type") == out_type]
        linked = [i for i in matching if entries[i].get("link") is not None]
        if not linked:
            return _Source(
                why_missing=f"its source {node_label(node)} is bypassed and has no connected {out_type} input "
                "to pass through"
            )
        return self._resolve(entries[linked[0]]["link"], seen)

    def _missing_required(self, api: dict) -> list[str]:
        """Messages for required socket inputs left unconnected on nodes that feed an output."""
        needed = _upstream_of_outputs(api, self.object_info)
        problems = []
        for node_id in sorted(api, key=_id_sort_key):
            if node_id not in needed:
                continue
            entry = api[node_id]
            info = self.object_info[entry["class_type"]]
            for name in input_names(info, "required"):
                kind, config = input_spec(info, name)
                if name in entry["inputs"] or is_widget(kind, config):
                    continue
                why = self.missing[node_id].get(name) or "it is not connected"
                problems.append(f"{node_label(self.nodes[node_id])}: required input '{name}' is missing: {why}")
        return problems


def _upstream_of_outputs(api: dict, object_info: dict) -> set[str]:
    """Ids of nodes an output node depends on (all nodes when no class is flagged as output)."""
    outputs = [i for i, n in api.items() if (object_info.get(n["class_type"]) or {}).get("output_node")]
    if not any(info.get("output_node") for info in object_info.values() if isinstance(info, dict)):
        return set(api)
    needed, stack = set(), list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in needed or node_id not in api:
            continue
        needed.add(node_id)
        for value in api[node_id]["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
                stack.append(value[0])
    return needed


def _id_sort_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)
