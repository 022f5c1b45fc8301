"""Convert a workflow saved by ComfyUI's editor (UI format) into API format.

API format is what `POST /prompt` takes: `{node_id: {"class_type", "inputs", "_meta"}}`
where a linked input is `[source_node_id, output_slot]`. UI format has `nodes` and
`links` lists; the conversion needs the server's `/object_info` to know which inputs
are widgets and in which order their values were saved.

Frontend-only parts are resolved here: `Reroute` and `PrimitiveNode` are followed
to their source, muted nodes (mode 2) are dropped, bypassed nodes (mode 4) pass an
input of the matching type through, and notes and groups are ignored.

Subgraphs (`definitions.subgraphs`, nested ones too) are flattened as the editor's
`graphToPrompt` does (frontends 1.27.10 and 1.49.6 read): each node inside a
subgraph node becomes a prompt node whose id is the path of subgraph node ids and
its own, joined by ':' (`14:9`); an input linked to the subgraph's input takes what
the subgraph node's input is linked to, else the value of the widget the subgraph
node shows for it (a promoted widget, saved in its `widgets_values`); a subgraph
node's output is the inner node linked to the subgraph's output. A muted or
bypassed subgraph node leaves out everything inside it (bypassed, it passes an input
of the matching type through, like any node). Node ids of subgraph definitions that
repeat ids used elsewhere are renumbered as frontend 1.49.6 does on load.
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


# The ids the editor gives a subgraph's own input and output nodes inside its definition's links.
SUBGRAPH_INPUT_NODE, SUBGRAPH_OUTPUT_NODE = "-10", "-20"
_NOTHING = object()


def execution_id(path: tuple[str, ...], node_id: object) -> str:
    """A node's id in the prompt: the ids of the subgraph nodes it sits in, then its own, joined by ':'
    (`5:3` is node 3 inside the subgraph that node 5 instantiates), as the frontend numbers them."""
    return ":".join((*path, str(node_id)))


def subgraph_definitions(workflow: dict) -> dict[str, dict]:
    """Every subgraph definition of a UI workflow by its id (`definitions.subgraphs`, nested ones included)."""
    found, stack = {}, [workflow]
    while stack:
        holder = stack.pop()
        for definition in (holder.get("definitions") or {}).get("subgraphs") or []:
            if isinstance(definition, dict) and definition.get("id") is not None and str(definition["id"]) not in found:
                found[str(definition["id"])] = definition
                stack.append(definition)
    return found


def loaded_subgraphs(workflow: dict) -> dict[str, dict]:
    """The workflow's subgraph definitions by id, their node ids made unique across the root graph and every
    subgraph the way frontend 1.49.6 does when it loads a file (`deduplicateSubgraphNodeIds`): in definition
    order, an id already taken moves to the next free number above the graph's last node id; links follow."""
    definitions = subgraph_definitions(workflow)
    seen = {str(n.get("id")) for n in workflow["nodes"] if isinstance(n, dict) and _is_number(n.get("id"))}
    numbers = {int(i) for i in seen}
    last = workflow.get("last_node_id")
    if last is None:
        last = (workflow.get("state") or {}).get("lastNodeId")
    last = last if _is_number(last) else 0
    renumbered = {}
    for key, definition in definitions.items():
        moved = {}
        for node in definition.get("nodes") or []:
            node_id = str(node.get("id")) if isinstance(node, dict) else None
            if node_id is None:
                continue
            if node_id in seen:
                while True:
                    last += 1
                    if last not in numbers:
                        break
                moved[node_id] = last
                numbers.add(last)
                seen.add(str(last))
            else:
                seen.add(node_id)
                if node_id.lstrip("-").isdigit():
                    numbers.add(int(node_id))
                    last = max(last, int(node_id))
        if not moved:
            renumbered[key] = definition
            continue
        log.info("subgraph %s: node ids %s are taken elsewhere; renumbered as the editor does", key, moved)
        definition = dict(definition)
        definition["nodes"] = [
            {**n, "id": moved[str(n.get("id"))]} if str(n.get("id")) in moved else n for n in definition["nodes"]
        ]
        definition["links"] = [_renumber_link(link, moved) for link in definition.get("links") or []]
        renumbered[key] = definition
    return renumbered


def _renumber_link(link: object, moved: dict) -> object:
    if isinstance(link, dict):
        return {
            **link,
            "origin_id": moved.get(str(link.get("origin_id")), link.get("origin_id")),
            "target_id": moved.get(str(link.get("target_id")), link.get("target_id")),
        }
    if isinstance(link, list) and len(link) >= 5:
        return [link[0], moved.get(str(link[1]), link[1]), link[2], moved.get(str(link[3]), link[3]), *link[4:]]
    return link


def _is_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_prompt_value(value: object) -> object:
    """A constant as graphToPrompt writes it: a list is wrapped as `{"__value__": [...]}` (a bare list is a link)."""
    return {"__value__": value} if isinstance(value, list) else value


class _Scope:
    """One graph the prompt is flattened from: the root, or a subgraph's definition as one subgraph node
    instantiates it (the same definition under two subgraph nodes is two scopes)."""

    def __init__(self, path: tuple[str, ...], nodes: list, links: list, definition=None, host=None, parent=None):
        self.path, self.definition, self.host, self.parent = path, definition, host, parent
        self.nodes: dict[str, dict] = {}
        for node in nodes:
            if not isinstance(node, dict) or "id" not in node or "type" not in node:
                raise WorkflowError(
                    f"UI workflow{self.where()}: every entry of 'nodes' needs an 'id' and a 'type', found {node!r:.80}"
                )
            if node.get("mode", MODE_ALWAYS) not in KNOWN_MODES:
                raise WorkflowError(
                    f"UI workflow: {self.label(node)} has mode {node.get('mode')!r}; the editor writes "
                    f"0 (always), 2 (muted) or 4 (bypassed)"
                )
            self.nodes[str(node["id"])] = node
        self.links = dict(_parse_link(link, self.where()) for link in links)

    def where(self) -> str:
        return f" (inside subgraph node {':'.join(self.path)})" if self.path else ""

    def id_of(self, node: dict) -> str:
        return execution_id(self.path, node["id"])

    def label(self, node: dict) -> str:
        """`node 5:3 'My title' (KSampler)` for messages."""
        return node_label({**node, "id": self.id_of(node)})


def _parse_link(link: object, where: str) -> tuple[object, tuple]:
    """(link id, (from node, from slot, to node, to slot, type)) from either saved link form."""
    if isinstance(link, list) and len(link) >= 5:
        link_id, from_node, from_slot, to_node, to_slot = link[:5]
        link_type = link[5] if len(link) > 5 else None
    elif isinstance(link, dict) and "origin_id" in link:
        link_id, from_node, from_slot = link.get("id"), link["origin_id"], link.get("origin_slot", 0)
        to_node, to_slot, link_type = link.get("target_id"), link.get("target_slot"), link.get("type")
    else:
        raise WorkflowError(
            f"UI workflow{where}: malformed link {link!r:.80}; expected [id, from_node, from_slot, to_node, "
            "to_slot, type] or {id, origin_id, origin_slot, target_id, target_slot, type}"
        )
    return link_id, (str(from_node), int(from_slot or 0), str(to_node), to_slot, link_type)


class _Converter:
    def __init__(self, workflow: dict, object_info: dict):
        self.object_info = object_info
        self.definitions = loaded_subgraphs(workflow)
        self.root = _Scope((), workflow["nodes"], workflow["links"])
        self.scopes: dict[tuple[str, ...], _Scope] = {(): self.root}
        self.entries: dict[str, tuple[_Scope, dict]] = {}
        self.widget_values: dict[str, dict] = {}

    def convert(self) -> dict:
        problems = []
        api = {}
        self.missing = {}
        for scope, node in self._executable(self.root, problems):
            node_id = scope.id_of(node)
            self.entries[node_id] = (scope, node)
            if node["type"] not in self.object_info:
                problems.append(self._unknown_type_message(scope, node))
                continue
            try:
                api[node_id], self.missing[node_id] = self._convert_node(scope, node)
            except WorkflowError as error:
                problems.append(str(error))
        problems.extend(self._missing_required(api))
        if problems:
            raise WorkflowError("cannot convert the UI workflow:\n  " + "\n  ".join(problems))
        return api

    def _executable(self, scope: _Scope, problems: list) -> list[tuple[_Scope, dict]]:
        """The nodes that run, subgraphs flattened: muted and bypassed nodes (subgraph nodes included, with
        everything inside them), frontend-only nodes and notes are left out."""
        found = []
        for node_id in sorted(scope.nodes, key=_id_sort_key):
            node = scope.nodes[node_id]
            kind = node["type"]
            if kind in IGNORED_TYPES or kind in (REROUTE, PRIMITIVE):
                continue
            if node.get("mode", MODE_ALWAYS) in (MODE_NEVER, MODE_BYPASS):
                continue
            if str(kind) in self.definitions:
                try:
                    inner = self._inner_scope(scope, node)
                except WorkflowError as error:
                    problems.append(str(error))
                    continue
                found.extend(self._executable(inner, problems))
            else:
                found.append((scope, node))
        return found

    def _inner_scope(self, scope: _Scope, host: dict) -> _Scope:
        """The scope of the subgraph that subgraph node `host` (in `scope`) instantiates."""
        path = (*scope.path, str(host["id"]))
        if path in self.scopes:
            return self.scopes[path]
        definition = self.definitions[str(host["type"])]
        outer = scope
        while outer.definition is not None:
            if outer.definition is definition:
                raise WorkflowError(
                    f"{scope.label(host)}: subgraph '{definition.get('name') or host['type']}' contains itself"
                )
            outer = outer.parent
        inner = _Scope(path, definition.get("nodes") or [], definition.get("links") or [], definition, host, scope)
        self.scopes[path] = inner
        return inner

    def _unknown_type_message(self, scope: _Scope, node: dict) -> str:
        return (
            f"{scope.label(node)}: unknown node type '{node['type']}' (not in the server's /object_info, and no "
            "subgraph of the workflow has this id); install the custom node pack that provides it, or remove the node"
        )

    def _widgets(self, scope: _Scope, node: dict) -> dict:
        """The node's saved widget values by input name."""
        node_id = scope.id_of(node)
        if node_id not in self.widget_values:
            info = self.object_info[node["type"]]
            values = map_widget_values(node.get("widgets_values"), widget_slots(info), scope.label(node))
            self.widget_values[node_id] = {k: _as_prompt_value(v) for k, v in values.items()}
        return self.widget_values[node_id]

    def _convert_node(self, scope: _Scope, node: dict) -> tuple[dict, dict]:
        info = self.object_info[node["type"]]
        where = scope.label(node)
        widget_values = self._widgets(scope, node)
        inputs = dict(widget_values)
        missing = {}
        for entry in node.get("inputs") or []:
            name = (entry.get("widget") or {}).get("name") or entry.get("name")
            if entry.get("link") is None:
                continue
            source = self._resolve(scope, entry["link"], set())
            if source.is_value:
                inputs[name] = _as_prompt_value(source.value)
            elif source.node_id is not None:
                inputs[name] = [source.node_id, source.slot]
            elif name in widget_values:
                log.info("%s: input '%s' lost its link (%s); using its widget value", where, name, source.why_missing)
            else:
                missing[name] = source.why_missing
        # As the editor's graphToPrompt writes it: an untitled node is named by its display name.
        title = node.get("title") or info.get("display_name") or node["type"]
        return {"inputs": inputs, "class_type": node["type"], "_meta": {"title": title}}, missing

    def _resolve(self, scope: _Scope, link_id: object, seen: set) -> _Source:
        """Follow a link through reroutes, primitives, bypassed nodes and subgraph boundaries to its source."""
        if (scope.path, link_id) in seen:
            return _Source(why_missing="its links form a cycle through reroutes or bypassed nodes")
        seen.add((scope.path, link_id))
        link = scope.links.get(link_id)
        if link is None:
            return _Source(why_missing=f"link {link_id}{scope.where()} is not in the workflow's 'links'")
        from_id, from_slot, _, _, link_type = link
        if from_id == SUBGRAPH_INPUT_NODE and scope.definition is not None:
            return self._from_subgraph_input(scope, from_slot, seen)
        source = scope.nodes.get(from_id)
        if source is None:
            return _Source(why_missing=f"link {link_id}{scope.where()} comes from node {from_id}, which does not exist")
        kind = source["type"]
        if kind == REROUTE:
            upstream = next((e.get("link") for e in source.get("inputs") or [] if e.get("link") is not None), None)
            if upstream is None:
                return _Source(why_missing=f"{scope.label(source)} has no input")
            return self._resolve(scope, upstream, seen)
        if kind == PRIMITIVE:
            values = source.get("widgets_values")
            if isinstance(values, list) and values:
                return _Source(value=values[0], is_value=True)
            return _Source(why_missing=f"{scope.label(source)} has no value")
        mode = source.get("mode", MODE_ALWAYS)
        if mode == MODE_NEVER:
            return _Source(why_missing=f"its source {scope.label(source)} is muted")
        if mode == MODE_BYPASS:
            return self._pass_through(scope, source, from_slot, link_type, seen)
        if str(kind) in self.definitions:
            return self._from_subgraph_output(scope, source, from_slot, seen)
        return _Source(node_id=scope.id_of(source), slot=from_slot)

    def _from_subgraph_input(self, scope: _Scope, slot: int, seen: set) -> _Source:
        """What a subgraph's input `slot` carries in this instance: the subgraph node's link, else the value of
        the widget the subgraph node shows for it (a promoted widget), else nothing."""
        host, outer = scope.host, scope.parent
        entry = _host_input(scope.definition, host, slot)
        name = _slot_name(scope.definition, "inputs", slot)
        if entry is not None and entry.get("link") is not None:
            return self._resolve(outer, entry["link"], seen)
        value = self._promoted_value(outer, host, slot)
        if value is not _NOTHING:
            return _Source(value=value, is_value=True)
        return _Source(why_missing=f"input '{name}' of subgraph {outer.label(host)} is not connected")

    def _from_subgraph_output(self, scope: _Scope, host: dict, slot: int, seen: set) -> _Source:
        """The inner source of output `slot` of subgraph node `host`."""
        inner = self._inner_scope(scope, host)
        outputs = inner.definition.get("outputs") or []
        link_ids = (outputs[slot].get("linkIds") or []) if slot < len(outputs) else []
        if not link_ids:
            return _Source(
                why_missing=f"output {slot} ('{_slot_name(inner.definition, 'outputs', slot)}') of subgraph "
                f"{scope.label(host)} is connected to nothing inside the subgraph"
            )
        return self._resolve(inner, link_ids[0], seen)

    def _promoted_value(self, scope: _Scope, host: dict, slot: int) -> object:
        """The value of the widget subgraph node `host` shows for its input `slot`, or _NOTHING when the input
        reaches no widget inside. The editor shows a widget for a subgraph input linked to a widget input inside
        (or to a nested subgraph node's promoted widget), saves the values of those widgets, in input order, in
        the subgraph node's `widgets_values`, and starts an unsaved one from the first linked widget's value."""
        inner = self._inner_scope(scope, host)
        inputs = inner.definition.get("inputs") or []
        promoted = [k for k in range(len(inputs)) if self._first_linked_widget(inner, k) is not _NOTHING]
        if slot not in promoted:
            return _NOTHING
        saved = host.get("widgets_values")
        position = promoted.index(slot)
        if isinstance(saved, list) and position < len(saved) and saved[position] is not None:
            return saved[position]
        return self._first_linked_widget(inner, slot)

    def _first_linked_widget(self, inner: _Scope, slot: int) -> object:
        """The value of the first widget input inside `inner` that subgraph input `slot` is linked to."""
        inputs = inner.definition.get("inputs") or []
        for link_id in inputs[slot].get("linkIds") or []:
            link = inner.links.get(link_id)
            target = inner.nodes.get(link[2]) if link else None
            if target is None:
                continue
            if str(target["type"]) in self.definitions:  # a nested subgraph node: its own input number link[3]
                value = self._promoted_value(inner, target, int(link[3] or 0))
                if value is not _NOTHING:
                    return value
                continue
            entries = target.get("inputs") or []
            index = next((i for i, e in enumerate(entries) if e.get("link") == link_id), None)
            if index is None:
                continue
            widget = (entries[index].get("widget") or {}).get("name")
            if widget is None or target["type"] not in self.object_info:
                continue
            try:
                values = self._widgets(inner, target)
            except WorkflowError:
                continue  # reported where the node itself is converted
            if widget in values:
                return values[widget]
        return _NOTHING

    def _pass_through(self, scope: _Scope, node: dict, out_slot: int, link_type: object, seen: set) -> _Source:
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
                why_missing=f"its source {scope.label(node)} is bypassed and has no connected {out_type} input "
                "to pass through"
            )
        return self._resolve(scope, entries[linked[0]]["link"], seen)

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
                scope, node = self.entries[node_id]
                problems.append(f"{scope.label(node)}: required input '{name}' is missing: {why}")
        return problems


def _host_input(definition: dict, host: dict, slot: int) -> dict | None:
    """The subgraph node's saved input entry for its subgraph's input `slot` (by name, else by position)."""
    entries = host.get("inputs") or []
    name = _slot_name(definition, "inputs", slot)
    named = [e for e in entries if e.get("name") == name]
    if len(named) == 1:
        return named[0]
    return entries[slot] if slot < len(entries) else None


def _slot_name(definition: dict, side: str, slot: int) -> str:
    slots = definition.get(side) or []
    return str(slots[slot].get("name", slot)) if slot < len(slots) else str(slot)


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
    """Numeric ids in number order (`5:3` after `5`, before `12`), others after them by name."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(node_id).split(":"))
