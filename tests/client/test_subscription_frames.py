"""What a subscription does with a text frame that is not UTF-8: it drops that
connection and resumes on a new one, as for any broken frame (websocket-client's
own UTF-8 check is skipped: it is pure Python and was a sixth of a following
notebook's CPU; decoding the text checks it in C)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from typing import Any

import pytest

from jobwatch.client.subscription import Subscription
from jobwatch.contract.backoff import Backoff

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


def _text_frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    return struct.pack("!BB", 0x81, len(payload)) + payload


def _read_client_frame(conn: socket.socket) -> bytes:
    head = conn.recv(2)
    length = head[1] & 0x7F
    assert length < 126
    mask = conn.recv(4)
    data = b""
    while len(data) < length:
        data += conn.recv(length - len(data))
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _handshake(conn: socket.socket) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def _event(seq: int) -> bytes:
    body: dict[str, Any] = {"type": "JOB_PROGRESS", "jobId": "j", "seq": seq, "data": {}}
    return json.dumps(body).encode()


@pytest.mark.parametrize("before_subscribed", [False, True])
def test_a_text_frame_that_is_not_utf8_drops_the_connection_and_resumes(
    before_subscribed: bool,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    subscribes: list[dict[str, Any]] = []

    def serve() -> None:
        for first in (True, False):
            conn, _ = listener.accept()
            with conn:
                _handshake(conn)
                subscribes.append(json.loads(_read_client_frame(conn)))
                if first and before_subscribed:
                    conn.sendall(_text_frame(b'{"type": "subscribed", "x": "\xff"}'))
                    conn.recv(1024)
                    continue
                conn.sendall(_text_frame(b'{"type": "subscribed", "seq": 0}'))
                if first:
                    conn.sendall(_text_frame(_event(1)))
                    conn.sendall(_text_frame(b'{"type": "JOB_LOGS", "x": "\xff\xfe"}'))
                    conn.recv(1024)  # until the client goes
                else:
                    conn.sendall(_text_frame(_event(2)))
                    conn.recv(1024)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    subscription = Subscription(f"ws://127.0.0.1:{port}/ws", "j", backoff=Backoff(0.01, 0.05))
    try:
        if not before_subscribed:
            assert next(subscription)["seq"] == 1
        assert next(subscription)["seq"] == 2  # on a second connection
    finally:
        subscription.close()
        listener.close()
    if before_subscribed:
        assert subscribes[1].get("since") is None  # it never had a first answer
    else:
        assert subscription.reconnects == 1
        assert subscribes[1].get("since") == 1  # resumed after the last event it had
