"""Start a headless ComfyUI for one run, with this pack loaded, and stop it afterwards.

ComfyUI loads custom nodes from every folder registered under the `custom_nodes`
key of its model-path configs (`folder_paths.get_folder_paths("custom_nodes")`),
and `--extra-model-paths-config` adds such a config. So the runner writes a
temporary folder holding a `solune` symlink to this checkout plus a YAML file that
names it, and passes that file: ComfyUI's own `custom_nodes` folder is untouched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from .client import ComfyClient
from .errors import ServerError, WorkflowError

log = logging.getLogger(__name__)

PACK_DIR = Path(__file__).resolve().parent.parent  # the repository root is the package
MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
VENV_PYTHONS = (".venv/bin/python", "venv/bin/python", ".venv/Scripts/python.exe", "venv/Scripts/python.exe")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalComfyUI:
    """Context manager: `with LocalComfyUI(dir) as url:` runs ComfyUI on a free port."""

    def __init__(
        self,
        comfyui_dir: str | Path,
        python: str | None = None,
        extra_args: list[str] | None = None,
        startup_timeout: float = 300.0,
        stop_grace: float = 15.0,
        pack_dir: Path = PACK_DIR,
    ):
        self.comfyui_dir = Path(comfyui_dir).expanduser().resolve()
        self.python = python or sys.executable
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.pack_dir = pack_dir
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.stop()

    def command(self, config: Path) -> list[str]:
        return [
            self.python,
            str(self.comfyui_dir / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--extra-model-paths-config",
            str(config),
            *self.extra_args,
        ]

    def start(self) -> None:
        if not (self.comfyui_dir / "main.py").is_file():
            raise WorkflowError(
                f"--comfyui {self.comfyui_dir}: no main.py there; pass the folder of a ComfyUI checkout"
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="solune-comfyui-"))
        nodes_dir = self.workdir / "custom_nodes"
        nodes_dir.mkdir()
        (nodes_dir / "solune").symlink_to(self.pack_dir, target_is_directory=True)
        config = self.workdir / "extra_model_paths.yaml"
        # A JSON string is a valid YAML double-quoted scalar, whatever the path holds.
        config.write_text(f"solune_runner:\n  custom_nodes: {json.dumps(str(nodes_dir))}\n", encoding="utf-8")
        self.port = free_port()
        self.log_path = self.workdir / "comfyui.log"
        command = self.command(config)
        log.info("starting ComfyUI: %s (log: %s)", " ".join(command), self.log_path)
        with open(self.log_path, "wb") as log_file:
            try:
                self.process = subprocess.Popen(
                    command,
                    cwd=self.comfyui_dir,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as error:
                self.stop()
                raise WorkflowError(f"cannot start ComfyUI with {self.python}: {error}; pass --python") from error
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        client = ComfyClient(self.url, timeout=10.0)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"ComfyUI exited with code {code} while starting{self.missing_requirement()}; "
                    f"last lines of its log:\n{self.log_tail()}"
                )
            try:
                client.object_info()
                log.info("ComfyUI is ready at %s", self.url)
                return
            except ServerError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"ComfyUI did not answer /object_info within {self.startup_timeout:g} s; "
                    f"last lines of its log:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def missing_requirement(self) -> str:
        """`: <python> lacks ... pass --python ...` when the log shows a missing module, else ""."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        found = MISSING_MODULE.findall(self.log_path.read_text(encoding="utf-8", errors="replace"))
        if not found:
            return ""
        own = [str(self.comfyui_dir / p) for p in VENV_PYTHONS if (self.comfyui_dir / p).is_file()]
        example = own[0] if own else "/path/to/ComfyUI/.venv/bin/python"
        return (
            f": the Python it was started with ({self.python}) has no module named '{found[-1]}', one of "
            f"ComfyUI's requirements; pass --python with ComfyUI's own interpreter (e.g. --python {example}), "
            f"or install {self.comfyui_dir / 'requirements.txt'} into this Python"
        )

    def died(self) -> bool:
        """True when the server process has exited."""
        return self.process is not None and self.process.poll() is not None

    def log_tail(self, lines: int = 25) -> str:
        """The last `lines` lines of the server's log, indented for messages."""
        if self.log_path is None or not self.log_path.exists():
            return "    (no log)"
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            tail = deque(handle, maxlen=lines)
        return "".join("    " + line for line in tail).rstrip() or "    (empty log)"

    def stop(self) -> None:
        """Terminate the server (kill it after the grace period) and remove the temporary folder."""
        if self.process is not None and self.process.poll() is None:
            log.info("stopping ComfyUI (pid %d)", self.process.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_grace)
            except subprocess.TimeoutExpired:
                log.info("ComfyUI ignored SIGTERM for %g s; killing it", self.stop_grace)
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            link = self.workdir / "custom_nodes" / "solune"
            if link.is_symlink():
                link.unlink()
            if os.environ.get("SOLUNE_KEEP_COMFYUI_LOG"):
                log.info("kept ComfyUI's folder %s", self.workdir)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
