"""User-facing terminal output on stderr: messages and a one-line progress bar.

On a terminal the bar redraws in place (`\\r`); elsewhere (a log file, CI) it
prints one line per node instead, so logs stay readable.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from .errors import describe_node


class Console:
    """Writes messages and the progress bar to `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, show_progress: bool = True, prefix: str = "solune.run"):
        self.stream = stream if stream is not None else sys.stderr
        self.show_progress = show_progress
        self.prefix = prefix
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._line_width = 0

    def say(self, message: str) -> None:
        """Write one user-facing message, clearing a half-drawn progress line first."""
        self._clear()
        self.stream.write(f"{self.prefix}: {message}\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        """Show `text` as the current progress line."""
        if not self.show_progress:
            return
        if self.interactive:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            text = text[:width]
            self.stream.write("\r" + text + " " * max(0, self._line_width - len(text)))
            self._line_width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the progress line so later output starts on a fresh line."""
        if self._line_width:
            self.stream.write("\n")
            self.stream.flush()
            self._line_width = 0

    def _clear(self) -> None:
        if self._line_width:
            self.stream.write("\r" + " " * self._line_width + "\r")
            self._line_width = 0


def bar(value: float, maximum: float, width: int = 24) -> str:
    """`[#########...............]` for value/maximum (clamped to [0, 1])."""
    fraction = 0.0 if maximum <= 0 else min(1.0, max(0.0, value / maximum))
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


class PromptProgress:
    """Tracks one prompt's execution from ComfyUI's events and draws it on a Console."""

    def __init__(self, console: Console, prompt: dict):
        self.console = console
        self.prompt = prompt
        self.done_nodes: set[str] = set()
        self.current: str | None = None
        self.step: tuple[float, float] | None = None
        self._last_drawn = ""
        self._warned: set[tuple[str, str]] = set()

    def label(self, node_id: str) -> str:
        node = self.prompt.get(node_id) or {}
        title = (node.get("_meta") or {}).get("title") or node.get("class_type") or "?"
        return f"{title} #{node_id}"

    def queued(self, position: int | None) -> None:
        where = "waiting in the queue" if position is None else f"queued, {position} prompt(s) ahead"
        self._draw(where)

    def running(self) -> None:
        self._draw("running (no per-node progress without the websocket)")

    def cached(self, node_ids: list) -> None:
        self.done_nodes.update(str(n) for n in node_ids)

    def executing(self, node_id: str) -> None:
        if self.current is not None:
            self.done_nodes.add(self.current)
        self.current, self.step = str(node_id), None
        self._redraw()

    def progress(self, node_id: str | None, value: float, maximum: float) -> None:
        if node_id is not None and str(node_id) != self.current:
            self.executing(str(node_id))
        self.step = (value, maximum)
        self._redraw()

    def warning(self, node_id: object, text: str) -> None:
        """Say a warning a node sent while running, once per node and text."""
        key = (str(node_id), text)
        if key not in self._warned:
            self._warned.add(key)
            where = describe_node(self.prompt, node_id, None) if node_id is not None else "the server"
            self.console.say(f"warning from {where}: {text}")

    def finished(self) -> None:
        if self.current is not None:
            self.done_nodes.add(self.current)
        self.current = None
        self.console.finish()

    def _redraw(self) -> None:
        total = len(self.prompt)
        done = min(len(self.done_nodes) + (1 if self.current else 0), total)
        text = f"[{done}/{total}] {self.label(self.current)}" if self.current else f"[{done}/{total}]"
        if self.step is not None:
            value, maximum = self.step
            if self.console.interactive:
                text += f" {bar(value, maximum)} {value:g}/{maximum:g}"
            elif value < maximum:
                return  # non-interactive: one line per node, not per step
        self._draw(text)

    def _draw(self, text: str) -> None:
        if text != self._last_drawn:
            self._last_drawn = text
            self.console.status(text)
