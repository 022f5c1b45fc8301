"""Tier 2: a test run never leaves a ComfyUI server behind. A pytest run that holds a real server is
interrupted (Ctrl-C's SIGINT) or killed outright (SIGKILL, no clean-up code runs) once the server
answers; afterwards no process of that server's process group is alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import _hold_server
import pytest
from _hold_server import HOLD

pytestmark = pytest.mark.comfyui


def alive_in_group(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes whose process group is `pgid`."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_run_stops_its_server(comfy, tmp_path, signum):
    state = tmp_path / "server.json"
    env = dict(os.environ, **{HOLD: str(state)})
    inner = str(Path(_hold_server.__file__))  # named explicitly: its name keeps it out of every other run
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", inner]
    run = subprocess.Popen(
        cmd, env=env, cwd=str(Path(__file__).parents[1]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 300
        while not state.exists() and run.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert state.exists(), f"the inner run never started its server:\n{run.communicate(timeout=30)[0].decode()}"
        time.sleep(0.5)  # let the file's writer finish
        server = json.loads(state.read_text())
        assert alive_in_group(server["pgid"]), "the server should be running now"
        run.send_signal(signum)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    deadline = time.time() + 30
    while alive_in_group(server["pgid"]) and time.time() < deadline:
        time.sleep(0.2)
    left = alive_in_group(server["pgid"])
    if left:
        os.killpg(server["pgid"], signal.SIGKILL)  # this test must not leave it running either
    assert left == [], f"ComfyUI {server} is still running after {signum.name}"
