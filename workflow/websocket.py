"""A minimal RFC 6455 websocket client on the stdlib `socket` module.

Enough for ComfyUI's `/ws` feed: one client-initiated connection, text messages
in, masked control frames (pong, close) out. Binary frames (latent previews) are
read and dropped; fragmented messages are reassembled; no extensions are asked
for, so frames are never compressed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HEADER = 65536


class HandshakeRefused(Exception):
    """The server answered the upgrade request, but not with `101 Switching Protocols`."""


class ConnectionClosed(Exception):
    """The websocket was closed by the server or the connection dropped."""


def accept_key(key: str) -> str:
    """The `Sec-WebSocket-Accept` value a server must answer to `key` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode("ascii")).digest()).decode("ascii")


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame; clients must pass a 4-byte `mask` (RFC 6455 §5.3)."""
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def decode_frame(buffer: bytes | bytearray) -> tuple[bool, int, bytes, int] | None:
    """Parse one frame from the start of `buffer`: `(fin, opcode, payload, consumed)` or None if incomplete."""
    if len(buffer) < 2:
        return None
    fin, opcode = bool(buffer[0] & 0x80), buffer[0] & 0x0F
    masked, n = bool(buffer[1] & 0x80), buffer[1] & 0x7F
    offset = 2
    if n == 126:
        if len(buffer) < 4:
            return None
        n = struct.unpack("!H", bytes(buffer[2:4]))[0]
        offset = 4
    elif n == 127:
        if len(buffer) < 10:
            return None
        n = struct.unpack("!Q", bytes(buffer[2:10]))[0]
        offset = 10
    mask = b""
    if masked:
        if len(buffer) < offset + 4:
            return None
        mask = bytes(buffer[offset : offset + 4])
        offset += 4
    if len(buffer) < offset + n:
        return None
    payload = bytes(buffer[offset : offset + n])
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload, offset + n


class WebSocket:
    """A connected websocket; create it with `WebSocket.connect(url)`."""

    def __init__(self, sock: socket.socket, leftover: bytes = b""):
        self._sock = sock
        self._buffer = bytearray(leftover)
        self._fragments: list[bytes] = []
        self._fragment_opcode = OP_TEXT
        self.closed = False

    @classmethod
    def connect(cls, url: str, timeout: float = 10.0) -> "WebSocket":
        """Open `ws://` or `wss://` `url`; raise HandshakeRefused, or OSError when unreachable."""
        parts = urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            host_header = host if parts.port is None else f"{host}:{parts.port}"
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            sock.sendall(request.encode("ascii"))
            status, headers, leftover = _read_response_head(sock)
            if status != 101:
                raise HandshakeRefused(f"server answered HTTP {status} to the websocket upgrade")
            if headers.get("sec-websocket-accept") != accept_key(key):
                raise HandshakeRefused("server sent a wrong Sec-WebSocket-Accept")
        except BaseException:
            sock.close()
            raise
        return cls(sock, leftover)

    def recv(self, timeout: float | None = None) -> str | None:
        """Next text message, or None when `timeout` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._next_message()
            if message is not None:
                return message
            if self.closed:
                raise ConnectionClosed("the server closed the websocket")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                return None
            except OSError as error:
                self.closed = True
                raise ConnectionClosed(f"websocket connection lost: {error}") from error
            if not chunk:
                self.closed = True
                raise ConnectionClosed("the server dropped the websocket connection")
            self._buffer.extend(chunk)

    def _next_message(self) -> str | None:
        """Consume complete frames from the buffer; return a whole text message if one completes."""
        while True:
            frame = decode_frame(self._buffer)
            if frame is None:
                return None
            fin, opcode, payload, consumed = frame
            del self._buffer[:consumed]
            if opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self._send(OP_CLOSE, payload[:2])
                self.closed = True
                return None
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if opcode != OP_CONT:
                    self._fragments, self._fragment_opcode = [], opcode
                self._fragments.append(payload)
                if fin:
                    data, self._fragments = b"".join(self._fragments), []
                    if self._fragment_opcode == OP_TEXT:
                        return data.decode("utf-8", errors="replace")

    def _send(self, opcode: int, payload: bytes) -> None:
        try:
            self._sock.sendall(encode_frame(opcode, payload, os.urandom(4)))
        except OSError:
            self.closed = True

    def close(self) -> None:
        """Send a close frame (best effort) and close the socket."""
        if not self.closed:
            self._send(OP_CLOSE, struct.pack("!H", 1000))
            self.closed = True
        self._sock.close()


def _read_response_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise HandshakeRefused("server closed the connection during the websocket handshake")
        data += chunk
        if len(data) > _MAX_HEADER:
            raise HandshakeRefused("websocket handshake response is too long")
    head, _, leftover = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError) as error:
        raise HandshakeRefused(f"malformed handshake status line {lines[0]!r}") from error
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, leftover
