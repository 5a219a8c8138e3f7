"""Writes to a WebSocket's socket are whole and one at a time (jobwatch.server.web.ws.send_lock).

simple-websocket writes with a bare ``socket.send`` from two threads (our
sender and its own ping/pong thread); a send may write part of a buffer when
the reader is slow, and two writers can interleave, which tears frames.
"""

from __future__ import annotations

import socket
import threading

from jobwatch.server.web.ws.send_lock import LockedSocket

SIZE = 2_000_000


def _write_two_frames_concurrently(sock: type[LockedSocket] | None) -> bytes:
    reader, writer = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    target = writer if sock is None else sock(writer)
    threads = [
        threading.Thread(target=target.send, args=(frame,)) for frame in (b"A" * SIZE, b"B" * SIZE)
    ]
    for thread in threads:
        thread.start()
    received = bytearray()
    reader.settimeout(2)
    try:
        while len(received) < 2 * SIZE:
            chunk = reader.recv(65536)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        pass
    for thread in threads:
        thread.join(5)
    reader.close()
    writer.close()
    return bytes(received)


def test_each_write_arrives_whole_and_not_interleaved() -> None:
    got = _write_two_frames_concurrently(LockedSocket)
    assert got in (b"A" * SIZE + b"B" * SIZE, b"B" * SIZE + b"A" * SIZE)


def test_a_bare_socket_send_as_simple_websocket_does_writes_only_part() -> None:
    """The fault itself, so the test above can fail: on a socket with a timeout
    (as every socket is under gevent or with simple-websocket's ``ping_interval``),
    ``socket.send`` of a large buffer to a reader that is not reading returns
    after writing part of it; the rest is never sent."""
    reader, writer = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer.settimeout(1)
    try:
        written = writer.send(b"A" * SIZE)
        assert 0 < written < SIZE
    finally:
        reader.close()
        writer.close()
