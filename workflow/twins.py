"""API-format twins of the example workflows: `python -m solune.workflow.twins`.

ComfyUI lists every `example_workflows/*.json` of a pack as a template, so the API-format twins
for headless runs live in `api_workflows/`, one per UI file with the same name. They are made by
the same converter `python -m solune.run` uses, against `/object_info` snapshots (only the node
types the examples use), one per ComfyUI version Solune is tested on:
`api_workflows/object_info/<version>.json`. Each version describes its nodes differently (categories,
search aliases, combo options), but the twins must come out the same from every snapshot, so one
set of twins serves every version. A tier-1 test regenerates the twins from every snapshot, and a
tier-2 test checks the running ComfyUI's snapshot against it, and the twins against its live
`/object_info`.

    python -m solune.workflow.twins --server http://127.0.0.1:8188   # record that server's snapshot, rewrite twins
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
SNAPSHOT_DIR = API_DIR / "object_info"


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


def snapshot_path(version: str, snapshot_dir: Path = SNAPSHOT_DIR) -> Path:
    """Where the snapshot of ComfyUI `version` (as its /system_stats names it) lives."""
    if not version or "/" in version or "\\" in version or version.startswith("."):
        raise RunnerError(f"ComfyUI version must be a plain version string such as 0.3.64; got {version!r}")
    return snapshot_dir / f"{version}.json"


def _version_key(version: str) -> tuple:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in version.split("."))


def snapshots(snapshot_dir: Path = SNAPSHOT_DIR) -> dict[str, dict]:
    """{ComfyUI version: its /object_info snapshot}, oldest version first."""
    found = {p.stem: json.loads(p.read_text()) for p in snapshot_dir.glob("*.json") if p.is_file()}
    return {v: found[v] for v in sorted(found, key=_version_key)}


def server_version(client: ComfyClient) -> str:
    """The ComfyUI version a server reports in `GET /system_stats` (`system.comfyui_version`)."""
    stats = client.get_json("/system_stats")
    version = stats.get("system", {}).get("comfyui_version") if isinstance(stats, dict) else None
    if not isinstance(version, str) or not version:
        raise RunnerError(f"the server at {client.base_url} names no comfyui_version in /system_stats")
    return version


def render(api: dict) -> str:
    """The twin's file text: stable, diff-friendly JSON."""
    return json.dumps(api, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def make_twins(object_info: dict, ui_dir: Path = UI_DIR) -> dict[str, str]:
    """{file name: API-format JSON text} for every UI example."""
    return {path.name: render(ui_to_api(json.loads(path.read_text()), object_info)) for path in ui_files(ui_dir)}


def version_dependent_twins(infos: dict[str, dict], ui_dir: Path = UI_DIR) -> dict[str, list[str]]:
    """{example file name: the versions whose snapshot converts it differently from the oldest's};
    empty when one set of twins serves every version."""
    made = {version: make_twins(info, ui_dir) for version, info in infos.items()}
    if not made:
        return {}
    first, *rest = made
    out = {}
    for name, text in made[first].items():
        differ = [v for v in rest if made[v].get(name) != text]
        if differ:
            out[name] = differ
    return out


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
    parser.add_argument("--server", help="record this ComfyUI server's /object_info snapshot (for its version) first")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a twin is stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        infos = snapshots()
        if args.server:
            client = ComfyClient(args.server)
            version = server_version(client)
            info = snapshot_object_info(client.object_info())
            missing = sorted(node_types() - set(info) - {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
            if missing:
                raise RunnerError(
                    f"the server at {args.server} lacks node types the examples use: {', '.join(missing)}"
                )
            infos[version] = info
            if not args.check:
                path = snapshot_path(version)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(render(info))
                log.info("wrote api_workflows/object_info/%s", path.name)
        if not infos:
            raise RunnerError(f"no snapshot in {SNAPSHOT_DIR}: run with --server URL once per ComfyUI version")
        differ = version_dependent_twins(infos)
        if differ:
            first = next(iter(infos))
            detail = "; ".join(f"{name} on {', '.join(vs)}" for name, vs in sorted(differ.items()))
            raise RunnerError(
                f"these examples convert to another API prompt than on ComfyUI {first}: {detail}. One twin "
                "serves every version: change the example (or the converter) until every version converts it alike"
            )
        info = next(iter(infos.values()))
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
