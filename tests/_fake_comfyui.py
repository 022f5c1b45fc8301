"""An in-process stand-in for a ComfyUI server: the HTTP routes and `/ws` feed the runner uses.

Scenarios:
    success          the prompt runs; two images (one a temp preview) and a latent are listed
    validation_error POST /prompt answers 400 with node_errors for node 4
    partial          POST /prompt answers 200 with node_errors for node 3 (a bad sampler_name), whose
                     output 9 will not run; the rest runs (outputs 10 and 12) unless cancelled
    warnings         like success, and node 3 sends a `solune.warning` event (twice, shown once) while running
    execution_error  node 3 (KSampler) raises while running
    dies             the server drops every connection right after queueing the prompt
    hostile_type     like success, but one more image's `type` is `hostile_type` (e.g. "../..")
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from solune.workflow.websocket import OP_BINARY, OP_PING, OP_TEXT, accept_key, encode_frame

PROMPT_ID = "prompt-1"

OUTPUTS = {
    "9": {"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]},
    "10": {"latents": [{"filename": "ComfyUI_00001_.latent", "subfolder": "latents", "type": "output"}]},
    "12": {"images": [{"filename": "ComfyUI_temp_0001.png", "subfolder": "", "type": "temp"}], "text": ["ok"]},
}

EXECUTION_ERROR = {
    "prompt_id": PROMPT_ID,
    "node_id": "3",
    "node_type": "KSampler",
    "executed": ["4", "5"],
    "exception_message": "Expected all tensors to be on the same device",
    "exception_type": "RuntimeError",
    "traceback": ['  File "nodes.py", line 1, in sample\n'],
    "current_inputs": {},
    "current_outputs": [],
}

VALIDATION_ERROR = {
    "error": {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    },
    "node_errors": {
        "4": {
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "ckpt_name: 'missing.safetensors' not in ['v1-5-pruned-emaonly.safetensors']",
                    "extra_info": {"input_name": "ckpt_name"},
                }
            ],
            "dependent_outputs": ["9"],
            "class_type": "CheckpointLoaderSimple",
        }
    },
}


PARTIAL_NODE_ERRORS = {
    "3": {
        "errors": [
            {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": "sampler_name: 'dpmpp_2m_karras' not in (list of length 44)",
                "extra_info": {"input_name": "sampler_name", "input_config": None, "received_value": "dpmpp_2m_karras"},
            }
        ],
        "dependent_outputs": ["9"],
        "class_type": "KSampler",
    }
}

NODE_WARNING = "denoise_mask is empty (all black): nothing will change"


def view_bytes(filename: str) -> bytes:
    return b"fake file: " + filename.encode()


class FakeComfyUI:
    """`with FakeComfyUI(object_info, "success") as fake:` serves on `fake.url` until the block ends."""

    def __init__(
        self,
        object_info: dict,
        scenario: str = "success",
        websocket: bool = True,
        port: int = 0,
        hostile_type: str = "../..",
    ):
        self.object_info = object_info
        self.hostile_type = hostile_type
        self.scenario = scenario
        self.websocket = websocket
        self.port = port
        self.prompts: list[dict] = []
        self.posts: list[tuple[str, dict]] = []  # every POST other than /prompt (cancel: /queue, /interrupt)
        self.views: list[tuple[str, str, str]] = []
        self.queued = threading.Event()
        self.finished = False
        self.dead = False
        self.history_polls = 0
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "FakeComfyUI":
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_forever(self) -> None:
        with self:
            while True:
                time.sleep(1)

    def history_entry(self) -> dict:
        if self.scenario == "execution_error":
            status = {
                "status_str": "error",
                "completed": False,
                "messages": [["execution_start", {"prompt_id": PROMPT_ID}], ["execution_error", EXECUTION_ERROR]],
            }
            outputs = {}
        else:
            status = {
                "status_str": "success",
                "completed": True,
                "messages": [
                    ["execution_start", {"prompt_id": PROMPT_ID}],
                    ["execution_success", {"prompt_id": PROMPT_ID}],
                ],
            }
            outputs = OUTPUTS
        if self.scenario == "partial":
            outputs = {k: v for k, v in OUTPUTS.items() if k != "9"}
        if self.scenario == "hostile_type":
            outputs = {
                **OUTPUTS,
                "13": {"images": [{"filename": "escaped.png", "subfolder": "", "type": self.hostile_type}]},
            }
        return {"prompt": [0, PROMPT_ID, self.prompts[-1], {}, ["9"]], "outputs": outputs, "status": status, "meta": {}}

    def events(self) -> list[dict]:
        """The /ws messages ComfyUI would send for the queued prompt, in order."""
        nodes = list(self.prompts[-1])
        head = [("execution_start", {}), ("execution_cached", {"nodes": nodes[:1]})]
        running = [
            ("executing", {"node": "3"}),
            ("progress", {"value": 1, "max": 2, "node": "3"}),
            ("progress", {"value": 2, "max": 2, "node": "3"}),
        ]
        if self.scenario == "warnings":
            running += [("solune.warning", {"node": "3", "message": NODE_WARNING})] * 2
        if self.scenario == "execution_error":
            tail = [("execution_error", {k: v for k, v in EXECUTION_ERROR.items() if k != "prompt_id"})]
        else:
            tail = [("executing", {"node": "9"}), ("execution_success", {}), ("executing", {"node": None})]
        return [{"type": kind, "data": {**data, "prompt_id": PROMPT_ID}} for kind, data in head + running + tail]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    @property
    def fake(self) -> FakeComfyUI:
        return self.server.fake

    def _json(self, payload: object, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        """Like a crashed server: close the connection without an answer."""
        self.close_connection = True

    def do_GET(self) -> None:
        fake = self.fake
        if fake.dead:
            return self._drop()
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path == "/object_info":
            return self._json(fake.object_info)
        if url.path == "/ws":
            return self._websocket() if fake.websocket else self._json({"error": "no websockets here"}, 404)
        if url.path == f"/history/{PROMPT_ID}":
            fake.history_polls += 1
            if not fake.websocket and fake.history_polls >= 2:
                fake.finished = True
            return self._json({PROMPT_ID: fake.history_entry()} if fake.finished else {})
        if url.path == "/queue":
            running = [] if fake.finished else [[0, PROMPT_ID, {}, {}, []]]
            return self._json({"queue_running": running, "queue_pending": []})
        if url.path == "/view":
            fake.views.append((query.get("filename"), query.get("subfolder"), query.get("type")))
            body = view_bytes(query.get("filename", ""))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        return self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        fake = self.fake
        if fake.dead:
            return self._drop()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/prompt":
            fake.posts.append((self.path, body))
            return self._json({}, 200)
        fake.prompts.append(body["prompt"])
        if fake.scenario == "validation_error":
            return self._json(VALIDATION_ERROR, 400)
        node_errors = PARTIAL_NODE_ERRORS if fake.scenario == "partial" else {}
        self._json({"prompt_id": PROMPT_ID, "number": 0, "node_errors": node_errors})
        if fake.scenario == "dies":
            fake.dead = True
        fake.queued.set()
        return None

    def _websocket(self) -> None:
        fake = self.fake
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(self.headers["Sec-WebSocket-Key"]))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        sock = self.connection

        def send(message: dict) -> None:
            sock.sendall(encode_frame(OP_TEXT, json.dumps(message).encode()))

        send({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "x"}})
        if not fake.queued.wait(timeout=5):
            return
        sock.sendall(encode_frame(OP_PING, b"hi"))
        sock.sendall(encode_frame(OP_BINARY, b"\x00\x00\x00\x01preview-jpeg-bytes"))
        for message in fake.events():
            if fake.scenario == "dies" and message["type"] == "progress":
                sock.shutdown(socket.SHUT_RDWR)
                return
            if message["type"] in ("execution_success", "execution_error"):
                fake.finished = True
            send(message)
        sock.settimeout(5)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
