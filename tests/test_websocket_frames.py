"""The websocket client speaks RFC 6455: handshake key, frame bytes, fragments, control frames."""

from __future__ import annotations

import socket

import pytest

from solune.workflow.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionClosed,
    WebSocket,
    accept_key,
    decode_frame,
    encode_frame,
)


def test_accept_key_matches_rfc_6455_example():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frames_match_rfc_6455_examples():
    assert encode_frame(OP_TEXT, b"Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    masked = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert encode_frame(OP_TEXT, b"Hello", bytes([0x37, 0xFA, 0x21, 0x3D])) == masked
    assert decode_frame(masked) == (True, OP_TEXT, b"Hello", len(masked))


@pytest.mark.parametrize("size", [125, 126, 65535, 65536], ids=["7-bit", "16-bit-min", "16-bit-max", "64-bit"])
def test_length_encodings_round_trip(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = encode_frame(OP_BINARY, payload)
    assert decode_frame(frame) == (True, OP_BINARY, payload, len(frame))
    assert decode_frame(frame[:-1]) is None


def pair() -> tuple[WebSocket, socket.socket]:
    client, server = socket.socketpair()
    return WebSocket(client), server


def test_fragmented_text_with_interleaved_ping_is_reassembled_and_answered():
    ws, server = pair()
    first = bytes([0x01, 3]) + b'{"a'  # text, not final
    ping = encode_frame(OP_PING, b"p")
    last = bytes([0x80 | OP_CONT, 4]) + b'":1}'
    server.sendall(encode_frame(OP_BINARY, b"\x00preview") + first + ping + last)
    assert ws.recv(timeout=1) == '{"a":1}'
    fin, opcode, payload, _ = decode_frame(server.recv(64))
    assert (fin, opcode, payload) == (True, OP_PONG, b"p")
    ws.close()
    server.close()


def test_recv_times_out_with_none_and_keeps_partial_frames():
    ws, server = pair()
    frame = encode_frame(OP_TEXT, b"late")
    server.sendall(frame[:3])
    assert ws.recv(timeout=0.05) is None
    server.sendall(frame[3:])
    assert ws.recv(timeout=1) == "late"
    ws.close()
    server.close()


def test_close_frame_and_dropped_connection_raise_connection_closed():
    ws, server = pair()
    server.sendall(encode_frame(OP_CLOSE, b"\x03\xe8"))
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=1)
    ws2, server2 = pair()
    server2.close()
    with pytest.raises(ConnectionClosed):
        ws2.recv(timeout=1)
    ws.close()
    ws2.close()
    server.close()
