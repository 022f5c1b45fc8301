"""`python -m solune.run` exits with the documented code and says why, against a fake ComfyUI."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest
from _fake_comfyui import NODE_WARNING, PROMPT_ID, FakeComfyUI, view_bytes
from _ui_graph import TXT2IMG_API, load_object_info, txt2img_graph

from solune import run
from solune.workflow import follow
from solune.workflow.progress import Console

OBJECT_INFO = load_object_info()
REPO = Path(run.__file__).resolve().parent


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(follow, "POLL_INTERVAL", 0.01)


def write(tmp_path: Path, data: object, name: str = "workflow.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def run_cli(*argv: str) -> tuple[int, str]:
    stream = io.StringIO()
    code = run.main(list(argv), console=Console(stream=stream))
    return code, stream.getvalue()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_success_queues_converted_prompt_and_downloads_every_output(tmp_path, capsys, websocket):
    workflow = write(tmp_path, txt2img_graph().to_json())
    out = tmp_path / "out"
    with FakeComfyUI(OBJECT_INFO, "success", websocket=websocket) as fake:
        code, err = run_cli(
            workflow, "--server", fake.url, "--out", str(out), "--set", "Positive.text=a cat", "--set", "3.steps=4"
        )
    assert code == 0, err
    expected = json.loads(json.dumps(TXT2IMG_API))
    expected["6"]["inputs"]["text"] = "a cat"
    expected["3"]["inputs"]["steps"] = 4
    assert fake.prompts == [expected]
    saved = {
        out / "ComfyUI_00001_.png": "ComfyUI_00001_.png",
        out / "latents" / "ComfyUI_00001_.latent": "ComfyUI_00001_.latent",
        out / "temp" / "ComfyUI_temp_0001.png": "ComfyUI_temp_0001.png",
    }
    for path, name in saved.items():
        assert path.read_bytes() == view_bytes(name)
    assert sorted(capsys.readouterr().out.split()) == sorted(str(p) for p in saved)
    assert f"prompt {PROMPT_ID} finished; saved 3 file(s)" in err
    if websocket:
        assert "[2/7] KSampler #3" in err  # one cached node, then the sampler: progress is per node


def test_refused_websocket_falls_back_to_polling_and_logs_it(tmp_path, caplog):
    workflow = write(tmp_path, TXT2IMG_API)
    with caplog.at_level(logging.INFO, logger="solune.workflow.follow"):
        with FakeComfyUI(OBJECT_INFO, "success", websocket=False) as fake:
            code, err = run_cli(workflow, "--server", fake.url, "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert any("refused" in r.getMessage() and "polling" in r.getMessage() for r in caplog.records)
    assert fake.history_polls >= 2


def test_dry_run_prints_the_api_prompt_without_queueing(tmp_path, capsys):
    workflow = write(tmp_path, txt2img_graph().to_json())
    with FakeComfyUI(OBJECT_INFO) as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--dry-run")
    assert code == 0, err
    assert json.loads(capsys.readouterr().out) == TXT2IMG_API
    assert fake.prompts == []


# --- failures reported by the server ---------------------------------------------------------


def test_validation_error_exits_3_naming_node_class_and_message(tmp_path):
    workflow = write(tmp_path, TXT2IMG_API)
    with FakeComfyUI(OBJECT_INFO, "validation_error") as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--out", str(tmp_path / "out"))
    assert code == 3
    assert "ComfyUI rejected the workflow: Prompt outputs failed validation" in err
    assert (
        "node 4 'Load Checkpoint' (CheckpointLoaderSimple), input ckpt_name: Value not in list: "
        "ckpt_name: 'missing.safetensors'" in err
    )
    assert "outputs that will not run: node 9 'Save Image' (SaveImage)" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_a_workflow_with_one_rejected_output_exits_3_naming_it_and_cancels_the_rest(tmp_path, websocket):
    """ComfyUI queues the outputs it accepted and answers node_errors for the others: still exit 3, the
    node's input and ComfyUI's message and the dropped output named, the queued rest cancelled at once."""
    workflow = write(tmp_path, TXT2IMG_API)
    with FakeComfyUI(OBJECT_INFO, "partial", websocket=websocket) as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--out", str(tmp_path / "out"))
    assert code == 3, err
    assert "ComfyUI rejected some outputs of the workflow" in err
    assert (
        "node 3 (KSampler), input sampler_name: Value not in list: "
        "sampler_name: 'dpmpp_2m_karras' not in (list of length 44)" in err
    )
    assert "outputs that will not run: node 9 'Save Image' (SaveImage)" in err
    assert "the runner cancelled that prompt at once and downloaded nothing" in err
    assert "fix the inputs above, or pass --allow-partial to run the rest" in err
    assert ("/queue", {"delete": [PROMPT_ID]}) in fake.posts
    assert ("/interrupt", {"prompt_id": PROMPT_ID}) in fake.posts
    assert fake.views == [] and not (tmp_path / "out").exists()


def test_allow_partial_reports_the_rejected_output_and_runs_the_rest(tmp_path):
    workflow = write(tmp_path, TXT2IMG_API)
    out = tmp_path / "out"
    with FakeComfyUI(OBJECT_INFO, "partial") as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--out", str(out), "--allow-partial")
    assert code == 0, err
    assert "outputs that will not run: node 9 'Save Image' (SaveImage)" in err
    assert "--allow-partial: running the outputs ComfyUI accepted" in err
    assert fake.posts == []  # nothing cancelled
    assert sorted(name for name, _, _ in fake.views) == ["ComfyUI_00001_.latent", "ComfyUI_temp_0001.png"]


def test_a_warning_a_node_sends_is_printed_once_on_stderr(tmp_path):
    """A `solune.warning` event (nodes/user_warnings.py) reaches stderr, naming the node, once."""
    workflow = write(tmp_path, TXT2IMG_API)
    with FakeComfyUI(OBJECT_INFO, "warnings") as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert err.count(f"warning from node 3 (KSampler): {NODE_WARNING}") == 1


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_execution_error_exits_4_naming_node_class_and_message(tmp_path, websocket):
    workflow = write(tmp_path, TXT2IMG_API)
    with FakeComfyUI(OBJECT_INFO, "execution_error", websocket=websocket) as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--out", str(tmp_path / "out"))
    assert code == 4, err
    assert (
        "node 3 (KSampler) failed during execution: RuntimeError: Expected all tensors to be on the same device" in err
    )


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_server_dying_mid_run_exits_5_with_lost_connection(tmp_path, websocket):
    workflow = write(tmp_path, TXT2IMG_API)
    with FakeComfyUI(OBJECT_INFO, "dies", websocket=websocket) as fake:
        code, err = run_cli(workflow, "--server", fake.url)
    assert code == 5, err
    assert f"lost connection to ComfyUI at {fake.url} while running prompt {PROMPT_ID}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("folder_type", ["../..", "..", "/tmp", "output/../..", "models", "temp/.."])
def test_an_output_type_outside_comfyuis_folder_types_is_refused_before_anything_is_written(tmp_path, folder_type):
    """A server (or anything on its port) that answers a history entry with a hostile `type`
    cannot make the runner write outside --out: exit 5, the type named, no file downloaded."""
    workflow = write(tmp_path, TXT2IMG_API)
    out = tmp_path / "a" / "b" / "out"
    before = sorted(tmp_path.rglob("*"))
    with FakeComfyUI(OBJECT_INFO, "hostile_type", hostile_type=folder_type) as fake:
        code, err = run_cli(workflow, "--server", fake.url, "--out", str(out))
    assert code == 5, err
    assert f"the server gave its type as {folder_type!r}; ComfyUI's folder types are output, temp, input" in err
    assert fake.views == []
    assert sorted(tmp_path.rglob("*")) == before


def test_unreachable_server_exits_5_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    code, err = run_cli(write(tmp_path, TXT2IMG_API), "--server", url)
    assert code == 5
    assert f"cannot reach ComfyUI at {url}" in err


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"nodes": [1, 2]}', "unrecognised workflow JSON"),
        ("[1, 2, 3]", "unrecognised workflow JSON"),
        ("{not json", "is not valid JSON"),
    ],
    ids=["nodes-without-links", "list", "broken-json"],
)
def test_unusable_workflow_file_exits_2_before_contacting_a_server(tmp_path, content, message):
    url = f"http://127.0.0.1:{closed_port()}"
    code, err = run_cli(write(tmp_path, content), "--server", url)
    assert code == 2
    assert message in err


def test_workflow_with_only_muted_nodes_exits_2(tmp_path):
    graph = txt2img_graph()
    for node in graph.nodes:
        node["mode"] = 2
    with FakeComfyUI(OBJECT_INFO) as fake:
        code, err = run_cli(write(tmp_path, graph.to_json()), "--server", fake.url)
    assert code == 2
    assert "no nodes to run" in err
    assert fake.prompts == []


def test_missing_workflow_file_exits_2(tmp_path):
    code, err = run_cli(str(tmp_path / "nope.json"))
    assert code == 2
    assert "cannot read workflow" in err


def test_unknown_node_type_exits_2_naming_the_node(tmp_path):
    graph = txt2img_graph()
    graph.add(15, "FancyUpscaler", [2], title="Make it big")
    with FakeComfyUI(OBJECT_INFO) as fake:
        code, err = run_cli(write(tmp_path, graph.to_json()), "--server", fake.url)
    assert code == 2
    assert "node 15 'Make it big' (FancyUpscaler): unknown node type" in err
    assert fake.prompts == []


@pytest.mark.parametrize(
    "override, message",
    [
        ("Nobody.steps=3", "no node with id or title 'Nobody'"),
        ("3.stepz=3", "has no input 'stepz'"),
        ("steps=3", "expected NODE.INPUT=VALUE"),
    ],
    ids=["unknown-node", "unknown-input", "malformed"],
)
def test_bad_set_exits_2(tmp_path, override, message):
    with FakeComfyUI(OBJECT_INFO) as fake:
        code, err = run_cli(write(tmp_path, TXT2IMG_API), "--server", fake.url, "--set", override)
    assert code == 2
    assert message in err
    assert fake.prompts == []


# --- --comfyui: a server started for the run ---------------------------------------------------

FAKE_MAIN = """
import argparse, json, os, sys
sys.path.insert(0, {tests!r})
from _fake_comfyui import FakeComfyUI
parser = argparse.ArgumentParser()
parser.add_argument("--cpu", action="store_true")
parser.add_argument("--listen")
parser.add_argument("--port", type=int)
parser.add_argument("--extra-model-paths-config", nargs="+", action="append")
args = parser.parse_args()
config = open(args.extra_model_paths_config[0][0]).read()
nodes_dir = json.loads(config.split("custom_nodes:", 1)[1].strip())
state = {{"pid": os.getpid(), "pack": os.path.realpath(os.path.join(nodes_dir, "solune")), "cpu": args.cpu}}
json.dump(state, open(os.environ["FAKE_COMFYUI_STATE"], "w"))
FakeComfyUI(json.load(open({object_info!r})), "success", websocket=False, port=args.port).serve_forever()
"""


def test_comfyui_dir_starts_a_server_with_this_pack_and_stops_it(tmp_path, monkeypatch):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    tests = Path(__file__).parent
    (comfy / "main.py").write_text(
        FAKE_MAIN.format(tests=str(tests), object_info=str(tests / "fixtures" / "runner_object_info.json"))
    )
    state_file = tmp_path / "state.json"
    monkeypatch.setenv("FAKE_COMFYUI_STATE", str(state_file))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    code, err = run_cli(
        write(tmp_path, txt2img_graph().to_json()), "--comfyui", str(comfy), "--out", str(tmp_path / "out")
    )
    assert code == 0, err
    state = json.loads(state_file.read_text())
    assert state["pack"] == str(REPO) and state["cpu"]
    assert (tmp_path / "out" / "ComfyUI_00001_.png").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)


def test_comfyui_that_fails_to_start_exits_5_with_its_log(tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(
        textwrap.dedent("""
        import sys
        print("ModuleNotFoundError: No module named 'torch'", flush=True)
        sys.exit(1)
    """)
    )
    code, err = run_cli(write(tmp_path, TXT2IMG_API), "--comfyui", str(comfy))
    assert code == 5
    assert "ComfyUI exited with code 1 while starting" in err
    assert "No module named 'torch'" in err


def test_comfyui_started_by_a_python_without_its_requirements_names_the_module_and_python(tmp_path):
    """Started from a Python lacking ComfyUI's requirements, ComfyUI dies on its first import; the
    runner names the missing module and says to pass --python with ComfyUI's own interpreter."""
    comfy = tmp_path / "ComfyUI"
    (comfy / ".venv" / "bin").mkdir(parents=True)
    (comfy / ".venv" / "bin" / "python").write_text("")
    (comfy / "main.py").write_text("import solune_test_module_that_does_not_exist\n")
    code, err = run_cli(write(tmp_path, TXT2IMG_API), "--comfyui", str(comfy))
    assert code == 5
    assert f"({sys.executable}) has no module named 'solune_test_module_that_does_not_exist'" in err
    assert f"pass --python with ComfyUI's own interpreter (e.g. --python {comfy / '.venv' / 'bin' / 'python'})" in err


def test_comfyui_folder_without_main_py_exits_2(tmp_path):
    code, err = run_cli(write(tmp_path, TXT2IMG_API), "--comfyui", str(tmp_path))
    assert code == 2
    assert "no main.py there" in err
