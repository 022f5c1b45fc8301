"""`--set NODE.INPUT=VALUE` overrides applied to an API-format workflow.

NODE is a node id or a node title (`_meta.title`, else the class_type); a title may contain dots, so
the key is split on the last '.' before the first '='. VALUE is parsed as JSON
when it parses (`20`, `1.5`, `true`, `"text"`, `["4", 0]`), else kept as a string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import WorkflowError
from .widgets import input_names


@dataclass(frozen=True)
class Override:
    node: str
    input: str
    value: object
    text: str


def parse_override(text: str) -> Override:
    """Parse one `NODE.INPUT=VALUE` argument."""
    key, sep, raw = text.partition("=")
    node, dot, name = key.rpartition(".")
    if not sep or not dot or not node.strip() or not name.strip():
        raise WorkflowError(
            f"--set {text!r}: expected NODE.INPUT=VALUE, e.g. --set 3.steps=20 or --set 'My Sampler.seed=42'"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return Override(node.strip(), name.strip(), value, text)


def find_node(api: dict, node: str) -> str:
    """Id of the node named by `node`: an exact id first, else a unique title."""
    if node in api:
        return node
    titled = [i for i, n in api.items() if _title(n) == node]
    if len(titled) == 1:
        return titled[0]
    if titled:
        raise WorkflowError(
            f"node title '{node}' is ambiguous: it matches nodes {', '.join(titled)}; use the node id instead"
        )
    known = ", ".join(f"{i} '{_title(n)}'" for i, n in api.items())
    raise WorkflowError(f"no node with id or title '{node}'; the workflow has: {known}")


def _title(node: dict) -> str | None:
    """A node's title: `_meta.title`, else its class_type (as the editor shows untitled nodes)."""
    return (node.get("_meta") or {}).get("title") or node.get("class_type")


def apply_overrides(api: dict, overrides: list[Override], object_info: dict | None = None) -> dict:
    """Set each override's input in place; with `object_info`, reject inputs the class lacks."""
    for override in overrides:
        node_id = find_node(api, override.node)
        node = api[node_id]
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
