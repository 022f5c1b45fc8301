"""API-format twins of the example workflows: `python -m solune.workflow.twins`.

ComfyUI lists every `example_workflows/*.json` of a pack as a template, so the API-format twins
for headless runs live in `api_workflows/`, one per UI file with the same name. They are made by
the same converter `python -m solune.run` uses, against an `/object_info` snapshot
(`api_workflows/object_info.json`: only the node types the examples use), so they cannot drift:
a tier-1 test regenerates them from the snapshot, and a tier-2 test checks the snapshot against a
live server.

    python -m solune.workflow.twins --server http://127.0.0.1:8188   # refresh snapshot and twins
    python -m solune.workflow.twins --check                          # exit 1 if a twin is stale
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .client import ComfyClient
from .convert import subgraph_definitions, ui_to_api
from .errors import RunnerError

log = logging.getLogger(__name__)

PACK = Path(__file__).resolve().parents[1]
UI_DIR = PACK / "example_workflows"
API_DIR = PACK / "api_workflows"
SNAPSHOT = "object_info.json"


def ui_files(ui_dir: Path = UI_DIR) -> list[Path]:
    """The UI-format example workflows, sorted by name."""
    return sorted(p for p in ui_dir.glob("*.json") if p.is_file())


def all_nodes(workflow: dict) -> list[dict]:
    """Every node of a UI workflow: the root graph's and those inside its subgraph definitions."""
    subgraphs = subgraph_definitions(workflow)
    return list(workflow["nodes"]) + [n for s in subgraphs.values() for n in s.get("nodes") or []]


def node_types(ui_dir: Path = UI_DIR) -> set[str]:
    """Every node type the example workflows use, inside subgraphs too (frontend-only types included,
    subgraph nodes left out: their type is their subgraph's id)."""
    types = set()
    for path in ui_files(ui_dir):
        workflow = json.loads(path.read_text())
        subgraphs = subgraph_definitions(workflow)
        types.update(str(n["type"]) for n in all_nodes(workflow) if str(n["type"]) not in subgraphs)
    return types


# Inputs whose options are the files on one machine (models, input images): the snapshot keeps
# them empty, so it is the same wherever it is taken.
FILE_INPUTS = {
    "UNETLoader": "unet_name",
    "CLIPLoader": "clip_name",
    "VAELoader": "vae_name",
    "CheckpointLoaderSimple": "ckpt_name",
    "LoadImage": "image",
    "ControlNetLoader": "control_net_name",
}


# Where a node's module was loaded from (custom_nodes/<folder name>) says nothing about the node.
MACHINE_KEYS = ("python_module",)


def without_file_lists(name: str, info: dict) -> dict:
    """`info` (one node's /object_info) without what depends on the machine: its local file-list
    options are emptied and the loading module's name is dropped."""
    info = {k: v for k, v in json.loads(json.dumps(info)).items() if k not in MACHINE_KEYS}
    field = FILE_INPUTS.get(name)
    spec = info.get("input", {}).get("required", {}).get(field)
    if spec and isinstance(spec[0], list):
        spec[0] = []
    return info


def snapshot_object_info(full: dict, ui_dir: Path = UI_DIR) -> dict:
    """The part of a server's `/object_info` the examples need, without local file lists."""
    return {name: without_file_lists(name, full[name]) for name in sorted(node_types(ui_dir)) if name in full}


def render(api: dict) -> str:
    """The twin's file text: stable, diff-friendly JSON."""
    return json.dumps(api, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def make_twins(object_info: dict, ui_dir: Path = UI_DIR) -> dict[str, str]:
    """{file name: API-format JSON text} for every UI example."""
    return {path.name: render(ui_to_api(json.loads(path.read_text()), object_info)) for path in ui_files(ui_dir)}


def stale_twins(object_info: dict, ui_dir: Path = UI_DIR, api_dir: Path = API_DIR) -> list[str]:
    """Names of twins that are missing or differ from what the converter makes now."""
    stale = []
    for name, text in make_twins(object_info, ui_dir).items():
        path = api_dir / name
        if not path.is_file() or path.read_text() != text:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solune.workflow.twins", description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="refresh the /object_info snapshot from this ComfyUI server first")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a twin is stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    snapshot_path = API_DIR / SNAPSHOT
    try:
        if args.server:
            info = snapshot_object_info(ComfyClient(args.server).object_info())
            missing = sorted(node_types() - set(info) - {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
            if missing:
                raise RunnerError(
                    f"the server at {args.server} lacks node types the examples use: {', '.join(missing)}"
                )
            if not args.check:
                API_DIR.mkdir(exist_ok=True)
                snapshot_path.write_text(render(info))
        else:
            if not snapshot_path.is_file():
                raise RunnerError(f"no snapshot at {snapshot_path}: run with --server URL once")
            info = json.loads(snapshot_path.read_text())
        if args.check:
            stale = stale_twins(info)
            for name in stale:
                log.error("stale API twin: api_workflows/%s", name)
            return 1 if stale else 0
        for name, text in make_twins(info).items():
            (API_DIR / name).write_text(text)
            log.info("wrote api_workflows/%s", name)
        return 0
    except RunnerError as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
