"""Warnings the user sees: what Solune logs at warning level while one of its nodes or hooks runs is
also sent to the web UI and to `solune.run` that queued the prompt.

The pure-torch packages (tiling/, samplers/) only log, as they must not import ComfyUI. The nodes run
their work inside `shown_to_user()`, and the tiled hook its sampling run (ControlNet hints are only
seen there, while another node's sampler runs): every warning record of Solune's loggers logged on
that thread inside the block still goes to ComfyUI's log, and is also sent as the websocket event
`solune.warning` (`{"message", "node", "prompt_id"}`, to the client that queued the prompt). The web
extension web/solune_warnings.js shows it as a toast; the runner prints it on stderr.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EVENT = "solune.warning"
# Solune's root logger: the package's own name, whatever the custom_nodes folder is called.
PACKAGE_LOGGER = __name__.rsplit(".", 2)[0]


def show(message: str) -> None:
    """Send `message` to the client that queued the running prompt (no-op outside a ComfyUI server)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return
    data = {
        "message": message,
        "node": getattr(server, "last_node_id", None),
        "prompt_id": getattr(server, "last_prompt_id", None),
    }
    server.send_sync(EVENT, data, getattr(server, "client_id", None))


class _Forward(logging.Handler):
    """Sends each warning record logged on one thread, once per text."""

    def __init__(self, thread: int):
        super().__init__(logging.WARNING)
        self.thread = thread
        self.sent: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        text = record.getMessage()
        if text in self.sent:
            return
        self.sent.add(text)
        show(text)  # send_sync only queues the message for the server's event loop


@contextmanager
def shown_to_user() -> Iterator[None]:
    """Inside the block, every warning Solune logs on this thread also reaches the user (`show`)."""
    thread = threading.get_ident()
    logger = logging.getLogger(PACKAGE_LOGGER)
    if any(isinstance(h, _Forward) and h.thread == thread for h in logger.handlers):
        yield  # an enclosing block forwards already (SoluneTiledSampler runs the hook inside its node)
        return
    handler = _Forward(thread)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
