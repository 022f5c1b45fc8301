"""The inner run of tests/test_server_cleanup.py: a pytest run that holds a real ComfyUI server until it is
interrupted or killed. Its file name keeps it out of every normal run (pytest collects test_*.py); the outer
test names it explicitly, with HOLD set to where the server's pid and process group are written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from comfy_harness import ComfyServer, locate_comfyui

HOLD = "SOLUNE_HOLD_SERVER_STATE"  # set by the outer test for the inner run only


def test_holds_a_server_until_stopped(tmp_path):
    path, why = locate_comfyui()
    assert path is not None, why
    server = ComfyServer(path, tmp_path).start()
    Path(os.environ[HOLD]).write_text(json.dumps({"pid": server.proc.pid, "pgid": os.getpgid(server.proc.pid)}))
    time.sleep(600)
