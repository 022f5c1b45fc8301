"""Queue a prompt and follow it to the end: over the `/ws` feed, or by polling.

The websocket is opened before the prompt is queued so no event is missed. If
the server refuses the upgrade, progress is followed by polling `/history` and
`/queue` instead (logged at info level). Either way the result is the prompt's
`/history` entry; a failed run raises `ExecutionFailed`, a lost server `ServerError`.

When ComfyUI rejects only some outputs it still queues the rest (HTTP 200 with `node_errors`); that is
a `ValidationFailed` like a whole rejection: the queued part is cancelled at once unless the caller
allows a partial run. Warnings Solune's nodes send while they run (the `solune.warning` event of
nodes/user_warnings.py) are shown as they arrive; they need the websocket (polling cannot see them).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from .client import ComfyClient
from .errors import ExecutionFailed, ServerError, ValidationFailed
from .progress import PromptProgress
from .websocket import ConnectionClosed, HandshakeRefused, WebSocket

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between /history polls
SILENCE_CHECK = 5.0  # seconds of websocket silence before checking /history anyway
HISTORY_WAIT = 30.0  # seconds to wait for /history after the feed said "done"
VANISHED_POLLS = 6  # polls with the prompt in neither queue nor history before giving up
WARNING_EVENT = "solune.warning"  # nodes/user_warnings.py: {"message", "node", "prompt_id"}


def open_feed(client: ComfyClient, client_id: str) -> WebSocket | None:
    """Connect to `/ws`; None (polling) only when the server refuses the upgrade."""
    url = client.ws_url(client_id)
    try:
        return WebSocket.connect(url, timeout=client.timeout)
    except HandshakeRefused as refusal:
        log.info("websocket %s refused (%s); following progress by polling /history", url, refusal)
        return None
    except OSError as error:
        raise client.unreachable(f"websocket {url}: {error}") from error


def run_prompt(
    client: ComfyClient, prompt: dict, progress: PromptProgress, allow_partial: bool = False
) -> tuple[str, dict]:
    """Queue `prompt`, follow it, and return `(prompt_id, history_entry)`.

    Any `node_errors` raise `ValidationFailed` after cancelling the part ComfyUI queued, unless
    `allow_partial`: then they are reported and the valid outputs run.
    """
    client_id = uuid.uuid4().hex
    feed = open_feed(client, client_id)
    try:
        prompt_id, node_errors = client.queue_prompt(prompt, client_id)
        if node_errors:
            rejected = ValidationFailed(None, node_errors, partial_prompt_id=prompt_id)
            rejected.prompt = prompt
            if not allow_partial:
                _cancel(client, prompt_id)
                raise rejected
            progress.console.say(f"{rejected.report()}\n--allow-partial: running the outputs ComfyUI accepted")
        try:
            if feed is not None:
                entry = _follow_feed(client, feed, prompt_id, progress)
            else:
                entry = _follow_polling(client, prompt_id, progress)
        except KeyboardInterrupt:
            _cancel(client, prompt_id)
            raise
    finally:
        if feed is not None:
            feed.close()
    progress.finished()
    _raise_on_failure(entry)
    return prompt_id, entry


def _follow_feed(client: ComfyClient, feed: WebSocket, prompt_id: str, progress: PromptProgress) -> dict:
    silent_since = time.monotonic()
    while True:
        try:
            text = feed.recv(timeout=1.0)
        except ConnectionClosed as closed:
            log.info("websocket closed (%s); checking the server", closed)
            return _follow_polling(client, prompt_id, progress, lost_feed=True)
        if text is None:
            if time.monotonic() - silent_since > SILENCE_CHECK:
                entry = _history(client, prompt_id)
                if entry is not None:
                    return entry
                silent_since = time.monotonic()
            continue
        silent_since = time.monotonic()
        if _handle_event(text, prompt_id, progress):
            return _wait_for_history(client, prompt_id)


def _handle_event(text: str, prompt_id: str, progress: PromptProgress) -> bool:
    """Apply one `/ws` message to the progress; True when the prompt has finished."""
    try:
        message = json.loads(text)
    except ValueError:
        log.debug("ignoring non-JSON websocket message %.80r", text)
        return False
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return False
    kind, data = message.get("type"), message["data"]
    if data.get("prompt_id", prompt_id) != prompt_id:
        return False
    if kind == "execution_cached":
        progress.cached(data.get("nodes") or [])
    elif kind == "executing":
        if data.get("node") is None:
            return "prompt_id" in data
        progress.executing(str(data["node"]))
    elif kind == "progress":
        node = data.get("node")
        progress.progress(None if node is None else str(node), data.get("value", 0), data.get("max", 0))
    elif kind == WARNING_EVENT:
        progress.warning(data.get("node"), str(data.get("message", "")))
    elif kind == "execution_success":
        return True
    elif kind == "execution_error":
        progress.finished()
        raise ExecutionFailed(data)
    elif kind == "execution_interrupted":
        progress.finished()
        raise ExecutionFailed(data, interrupted=True)
    return False


def _follow_polling(client: ComfyClient, prompt_id: str, progress: PromptProgress, lost_feed: bool = False) -> dict:
    vanished = 0
    while True:
        entry = _history(client, prompt_id, lost_feed)
        if entry is not None:
            return entry
        queue = _queue(client, prompt_id, lost_feed)
        running = [item for item in queue.get("queue_running") or [] if _item_id(item) == prompt_id]
        pending = [_item_id(item) for item in queue.get("queue_pending") or []]
        if running:
            progress.running()
            vanished = 0
        elif prompt_id in pending:
            progress.queued(len(queue.get("queue_running") or []) + pending.index(prompt_id))
            vanished = 0
        else:
            vanished += 1
            if vanished >= VANISHED_POLLS:
                raise ServerError(
                    f"prompt {prompt_id} vanished from {client.base_url}: "
                    "it is neither queued, running, nor in /history"
                )
        time.sleep(POLL_INTERVAL)


def _wait_for_history(client: ComfyClient, prompt_id: str) -> dict:
    """The feed said the prompt finished; its history entry is written a moment later."""
    deadline = time.monotonic() + HISTORY_WAIT
    while True:
        entry = _history(client, prompt_id, lost_feed=True)
        if entry is not None:
            return entry
        if time.monotonic() > deadline:
            raise ServerError(f"prompt {prompt_id} finished but {client.base_url} has no /history entry for it")
        time.sleep(0.1)


def _history(client: ComfyClient, prompt_id: str, lost_feed: bool = False) -> dict | None:
    try:
        return client.history(prompt_id)
    except ServerError as error:
        raise _lost(client, prompt_id, error, lost_feed) from error


def _queue(client: ComfyClient, prompt_id: str, lost_feed: bool) -> dict:
    try:
        return client.queue()
    except ServerError as error:
        raise _lost(client, prompt_id, error, lost_feed) from error


def _lost(client: ComfyClient, prompt_id: str, error: ServerError, lost_feed: bool) -> ServerError:
    return ServerError(
        f"lost connection to ComfyUI at {client.base_url} while running prompt {prompt_id}"
        f"{' (the websocket dropped too)' if lost_feed else ''}: the server may have crashed or been stopped "
        f"({error.reason or error})"
    )


def _item_id(item: object) -> str | None:
    """Queue items are `[number, prompt_id, prompt, extra_data, outputs]`."""
    return str(item[1]) if isinstance(item, (list, tuple)) and len(item) > 1 else None


def _raise_on_failure(entry: dict) -> None:
    """Raise ExecutionFailed when the history entry records an error or interruption."""
    status = entry.get("status") or {}
    for event in status.get("messages") or []:
        if isinstance(event, (list, tuple)) and len(event) == 2 and isinstance(event[1], dict):
            if event[0] == "execution_error":
                raise ExecutionFailed(event[1])
            if event[0] == "execution_interrupted":
                raise ExecutionFailed(event[1], interrupted=True)
    if status.get("status_str") == "error":
        raise ExecutionFailed({"exception_message": "ComfyUI reported status 'error' without details"})


def _cancel(client: ComfyClient, prompt_id: str) -> None:
    try:
        client.cancel(prompt_id)
        log.info("asked %s to cancel prompt %s", client.base_url, prompt_id)
    except ServerError as error:
        log.info("could not cancel prompt %s: %s", prompt_id, error)
