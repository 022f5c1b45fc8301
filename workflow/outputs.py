"""Find the files a finished prompt produced and download them through `/view`.

A history entry's `outputs` maps node id to lists keyed by kind (`images`,
`latents`, `audio`, ...); every item that names a `filename` (with `subfolder`
and `type`) is a file on the server. Files of type `output` land in the output
folder under their subfolder; other types (`temp` previews) under `<type>/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .client import ComfyClient
from .errors import ServerError, WorkflowError

log = logging.getLogger(__name__)

# ComfyUI's folder types (folder_paths.get_directory_by_type); `type` names a local folder too.
FOLDER_TYPES = ("output", "temp", "input")


@dataclass(frozen=True)
class OutputFile:
    node_id: str
    kind: str  # the key in the node's outputs: "images", "latents", ...
    filename: str
    subfolder: str
    type: str  # ComfyUI folder type: "output", "temp" or "input"

    def local_path(self, out_dir: Path) -> Path:
        """Where this file goes under `out_dir`; refuses names that would escape it."""
        if self.type not in FOLDER_TYPES:
            raise ServerError(
                f"refusing output {self.filename!r} of node {self.node_id}: the server gave its type as "
                f"{self.type!r}; ComfyUI's folder types are {', '.join(FOLDER_TYPES)}"
            )
        parts = [] if self.type == "output" else [self.type]
        for piece in (self.subfolder, self.filename):
            for part in PurePosixPath(piece.replace("\\", "/")).parts:
                if part in ("", ".", "..", "/") or ":" in part:
                    raise ServerError(
                        f"refusing unsafe output path {self.subfolder!r}/{self.filename!r} from node {self.node_id}"
                    )
                parts.append(part)
        return out_dir.joinpath(*parts)


def output_files(entry: dict) -> list[OutputFile]:
    """Every downloadable file listed in a history entry's `outputs`."""
    files = []
    for node_id, node_outputs in (entry.get("outputs") or {}).items():
        if not isinstance(node_outputs, dict):
            continue
        for kind, items in node_outputs.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("filename"), str) and item["filename"]:
                    files.append(
                        OutputFile(
                            str(node_id),
                            kind,
                            item["filename"],
                            str(item.get("subfolder") or ""),
                            str(item.get("type") or "output"),
                        )
                    )
    return files


def download_outputs(client: ComfyClient, files: list[OutputFile], out_dir: Path) -> list[Path]:
    """Download `files` into `out_dir`; return the written paths."""
    targets = [file.local_path(out_dir) for file in files]  # every path checked before anything is written
    written = []
    for file, target in zip(files, targets):
        data = client.view(file.filename, file.subfolder, file.type)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as error:
            raise WorkflowError(f"cannot write output {target}: {error}; choose another folder with --out") from error
        log.info("saved %s output of node %s to %s (%d bytes)", file.kind, file.node_id, target, len(data))
        written.append(target)
    return written
