"""HTTP client for a ComfyUI server, on `urllib` only.

Every transport failure becomes a `ServerError` naming the server's URL, and an
HTTP 400 from `POST /prompt` becomes `ValidationFailed` carrying ComfyUI's
`node_errors`, so callers never see a raw `URLError` or traceback.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from .errors import ServerError, ValidationFailed

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8188"


class ComfyClient:
    """Talks to one ComfyUI server at `base_url` (e.g. http://127.0.0.1:8188)."""

    def __init__(self, base_url: str = DEFAULT_SERVER, timeout: float = 30.0):
        if "://" not in base_url:
            base_url = "http://" + base_url
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def ws_url(self, client_id: str) -> str:
        """The `/ws` feed address for `client_id`."""
        scheme, rest = self.base_url.split("://", 1)
        ws_scheme = "wss" if scheme == "https" else "ws"
        return f"{ws_scheme}://{rest}/ws?clientId={urllib.parse.quote(client_id)}"

    def request(
        self, method: str, path: str, body: dict | None = None, query: dict | None = None, timeout: float | None = None
    ) -> tuple[int, bytes]:
        """Send one request; return `(status, body)` for any HTTP status, raise ServerError otherwise."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        log.debug("%s %s", method, url)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()
        except urllib.error.URLError as error:
            raise self.unreachable(error.reason) from error
        except (http.client.HTTPException, OSError) as error:
            raise ServerError(
                f"connection to ComfyUI at {self.base_url} failed during {method} {path}: {error!r}", reason=repr(error)
            ) from error

    def unreachable(self, reason: object) -> ServerError:
        """The error for a server that does not accept connections."""
        return ServerError(
            f"cannot reach ComfyUI at {self.base_url} ({reason}); is it running? "
            "Start it, pass --server URL, or let the runner start one with --comfyui DIR",
            reason=str(reason),
        )

    def get_json(self, path: str, query: dict | None = None) -> object:
        status, payload = self.request("GET", path, query=query)
        if status != 200:
            raise ServerError(f"GET {path} on {self.base_url} answered HTTP {status}: {_snippet(payload)}")
        return _parse_json(payload, f"GET {path}", self.base_url)

    def object_info(self) -> dict:
        """`GET /object_info`: every node class the server knows."""
        info = self.get_json("/object_info")
        if not isinstance(info, dict):
            raise ServerError(f"GET /object_info on {self.base_url} did not return a JSON object")
        return info

    def queue_prompt(self, prompt: dict, client_id: str) -> tuple[str, dict]:
        """`POST /prompt`; return `(prompt_id, node_errors)` or raise ValidationFailed on HTTP 400."""
        status, payload = self.request("POST", "/prompt", body={"prompt": prompt, "client_id": client_id})
        if status == 400:
            answer = _parse_json(payload, "POST /prompt", self.base_url)
            if not isinstance(answer, dict):
                raise ValidationFailed(str(answer), {})
            return_errors = answer.get("node_errors") or {}
            raise ValidationFailed(answer.get("error"), return_errors if isinstance(return_errors, dict) else {})
        if status != 200:
            raise ServerError(f"POST /prompt on {self.base_url} answered HTTP {status}: {_snippet(payload)}")
        answer = _parse_json(payload, "POST /prompt", self.base_url)
        if not isinstance(answer, dict) or "prompt_id" not in answer:
            raise ServerError(f"POST /prompt on {self.base_url} answered without a prompt_id: {_snippet(payload)}")
        return str(answer["prompt_id"]), answer.get("node_errors") or {}

    def history(self, prompt_id: str) -> dict | None:
        """`GET /history/<id>`: the prompt's history entry, or None while it has not finished."""
        answer = self.get_json(f"/history/{urllib.parse.quote(prompt_id)}")
        if isinstance(answer, dict):
            return answer.get(prompt_id)
        return None

    def queue(self) -> dict:
        """`GET /queue`: `{"queue_running": [...], "queue_pending": [...]}`."""
        answer = self.get_json("/queue")
        return answer if isinstance(answer, dict) else {}

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        """`GET /view`: the bytes of one output file."""
        query = {"filename": filename, "subfolder": subfolder, "type": kind}
        status, payload = self.request("GET", "/view", query=query, timeout=max(self.timeout, 300.0))
        if status != 200:
            raise ServerError(
                f"GET /view for {subfolder + '/' if subfolder else ''}{filename} ({kind}) answered HTTP {status}"
            )
        return payload

    def cancel(self, prompt_id: str) -> None:
        """Best effort: drop `prompt_id` from the queue and interrupt it if it is running."""
        self.request("POST", "/queue", body={"delete": [prompt_id]}, timeout=5.0)
        self.request("POST", "/interrupt", body={"prompt_id": prompt_id}, timeout=5.0)


def _parse_json(payload: bytes, what: str, base_url: str) -> object:
    try:
        return json.loads(payload)
    except ValueError as error:
        raise ServerError(f"{what} on {base_url} did not answer JSON: {_snippet(payload)}") from error


def _snippet(payload: bytes, limit: int = 300) -> str:
    text = payload.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
