"""`--set NODE.INPUT=VALUE` overrides applied to an API-format workflow.

NODE names one node of the workflow file, tried in this order (the first rule that matches one node
wins; a rule that matches several is an error that lists them):

1. its id as the prompt numbers it: `3`, or for a node inside a subgraph the ids of the subgraph
   nodes that lead to it and its own, joined by ':' (`14:9` is node 9 inside the subgraph that node
   14 instantiates, `14:20:5` one level deeper), as the editor's "Export (API)" writes them;
2. its title: the title set in the editor (`_meta.title` in API format), or for an untitled node its
   display name (`Save Image`, what the editor writes in `_meta.title`);
3. its title without a trailing " (...)" part: `Sol UNet` for `Sol UNet (sol_unet.safetensors)`;
4. its class type (`KSampler`), compared without case, spaces and punctuation.

A title may contain dots, so the key is split on the last '.' before the first '='. VALUE is parsed as
JSON when it parses (`20`, `1.5`, `true`, `"text"`, `["4", 0]`), else kept as a string.

`check_overrides` names the nodes from the workflow file alone, before ComfyUI is started or
asked anything; `apply_overrides` edits the converted prompt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .convert import (
    IGNORED_TYPES,
    MODE_BYPASS,
    MODE_NEVER,
    PRIMITIVE,
    REROUTE,
    detect_format,
    execution_id,
    loaded_subgraphs,
)
from .errors import WorkflowError
from .widgets import input_names

# The display names of the node types Solune's examples use (the /object_info snapshots shipped with
# the pack, one per tested ComfyUI version), for naming untitled nodes of a UI file before a server can
# be asked.
SNAPSHOT_DIR = Path(__file__).resolve().parents[1] / "api_workflows" / "object_info"
_SUFFIX = re.compile(r"^(.*\S)\s+\([^()]*\)$")


@dataclass(frozen=True)
class Override:
    node: str
    input: str
    value: object
    text: str


@dataclass(frozen=True)
class Target:
    """A node `--set` can name: its prompt id, its title (None when untitled), class type and display name.
    `absent` says why the node is not in the converted prompt ("" when it is)."""

    node_id: str
    title: str | None
    class_type: str
    display_name: str | None = None
    absent: str = ""

    @property
    def shown_title(self) -> str:
        return self.title or self.display_name or self.class_type


def parse_override(text: str) -> Override:
    """Parse one `NODE.INPUT=VALUE` argument."""
    key, sep, raw = text.partition("=")
    node, dot, name = key.rpartition(".")
    if not sep or not dot or not node.strip() or not name.strip():
        raise WorkflowError(
            f"--set {text!r}: expected NODE.INPUT=VALUE, e.g. --set 3.steps=20, --set 'My Sampler.seed=42' "
            "or --set 14:9.steps=20 for node 9 inside subgraph node 14"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return Override(node.strip(), name.strip(), value, text)


def snapshot_display_names() -> dict[str, str]:
    """{class type: display name} from the snapshots shipped with the pack ({} when there are none)."""
    names = {}
    for path in sorted(SNAPSHOT_DIR.glob("*.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        names.update(display_names(info))
    return names


def display_names(object_info: dict | None) -> dict[str, str]:
    """{class type: display name} from a server's /object_info, else from the shipped snapshot."""
    if object_info is None:
        return snapshot_display_names()
    return {k: v["display_name"] for k, v in object_info.items() if isinstance(v, dict) and v.get("display_name")}


def targets(workflow: dict, names: dict[str, str] | None = None) -> list[Target]:
    """Every node of a workflow file (either format) that `--set` can name, subgraphs' inner nodes included."""
    names = names or {}
    if detect_format(workflow) == "api":
        return [
            Target(str(k), (v.get("_meta") or {}).get("title"), v["class_type"], names.get(v["class_type"]))
            for k, v in workflow.items()
        ]
    definitions = loaded_subgraphs(workflow)
    found: list[Target] = []

    def walk(nodes: list, path: tuple[str, ...], outer_absent: str, seen: tuple[str, ...]) -> None:
        for node in nodes:
            if not isinstance(node, dict) or "id" not in node or "type" not in node:
                continue
            kind, node_id = str(node["type"]), execution_id(path, node["id"])
            absent = outer_absent or _absent(node, kind in definitions)
            found.append(Target(node_id, node.get("title") or None, kind, names.get(kind), absent))
            if kind in definitions and kind not in seen:
                inner_absent = outer_absent
                if not inner_absent and node.get("mode") in (MODE_NEVER, MODE_BYPASS):
                    inner_absent = f"it is inside subgraph node {node_id}, which is {absent.removeprefix('it is ')}"
                walk(definitions[kind].get("nodes") or [], (*path, str(node["id"])), inner_absent, (*seen, kind))

    walk(workflow["nodes"], (), "", ())
    return found


def _absent(node: dict, is_subgraph: bool) -> str:
    mode = node.get("mode")
    if mode == MODE_NEVER:
        return "it is muted"
    if mode == MODE_BYPASS:
        return "it is bypassed"
    if is_subgraph:
        return "it is a subgraph node: set the input on the node inside it that has it (id SUBGRAPH:INNER)"
    if node["type"] in (REROUTE, PRIMITIVE) or node["type"] in IGNORED_TYPES:
        return "only the editor uses it"
    return ""


def find_target(nodes: list[Target], key: str) -> Target:
    """The node named by `key` (see the module's rules), or a WorkflowError that lists the titles."""
    rules = (
        lambda t: t.node_id == key,
        lambda t: t.shown_title == key or (t.title is None and key in (t.display_name, t.class_type)),
        lambda t: _without_suffix(t.shown_title) == key,
        lambda t: _loose(t.class_type) == _loose(key),
    )
    for rule in rules:
        matched = [t for t in nodes if rule(t)]
        if len(matched) == 1:
            return matched[0]
        if matched:
            listed = ", ".join(f"{t.node_id} '{t.shown_title}'" for t in matched)
            raise WorkflowError(f"node '{key}' is ambiguous: it matches nodes {listed}; use the node id instead")
    known = ", ".join(f"{t.node_id} '{t.shown_title}'" for t in nodes if not t.absent) or "no nodes"
    raise WorkflowError(
        f"no node with id or title '{key}'; the workflow's nodes (id and title) are: {known}. A node inside a "
        "subgraph is named SUBGRAPH_NODE_ID:INNER_ID"
    )


def _without_suffix(title: str) -> str | None:
    match = _SUFFIX.match(title)
    return match.group(1) if match else None


def _loose(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def resolve_overrides(workflow: object, overrides: list[Override], object_info: dict | None = None) -> list[str]:
    """The prompt id each override names, checked against the workflow file alone (no server needed):
    a WorkflowError for a name that matches no node, several, or a node the prompt will not contain."""
    if not overrides:
        return []
    nodes = targets(workflow, display_names(object_info))
    ids = []
    for override in overrides:
        try:
            target = find_target(nodes, override.node)
        except WorkflowError as error:
            raise WorkflowError(f"--set {override.text!r}: {error}") from None
        if target.absent:
            raise WorkflowError(
                f"--set {override.text!r}: node {target.node_id} '{target.shown_title}' ({target.class_type}) "
                f"is not in the prompt the workflow runs: {target.absent}"
            )
        ids.append(target.node_id)
    return ids


def check_overrides(workflow: object, overrides: list[Override]) -> None:
    """Check every `--set` names one node of the workflow, before anything is started."""
    resolve_overrides(workflow, overrides)


def apply_overrides(
    api: dict, overrides: list[Override], object_info: dict | None = None, workflow: object | None = None
) -> dict:
    """Set each override's input in place; nodes are named as in `workflow` (the file the prompt was
    converted from; default: the prompt itself); with `object_info`, reject inputs the class lacks."""
    ids = resolve_overrides(workflow if workflow is not None else api, overrides, object_info)
    for override, node_id in zip(overrides, ids):
        node = api.get(node_id)
        if node is None:
            raise WorkflowError(f"--set {override.text!r}: node {node_id} is not in the converted prompt")
        info = (object_info or {}).get(node.get("class_type"))
        if info is not None:
            known = input_names(info, "required") + input_names(info, "optional")
            if override.input not in known and override.input not in node.get("inputs", {}):
                raise WorkflowError(
                    f"--set {override.text!r}: node {node_id} ({node.get('class_type')}) has no input "
                    f"'{override.input}'; its inputs are: {', '.join(known) or 'none'}"
                )
        node.setdefault("inputs", {})[override.input] = override.value
    return api
