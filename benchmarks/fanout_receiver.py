"""The subscribers of the fan-out benchmark, in their own process.

Opens ``--subscribers`` WebSocket connections to one job, prints ``ready``
once every one is acknowledged, then reads them all through one selector.
Each ``JOB_PROGRESS`` carries its send time (``time.time()``) as
``currentOperation``; the latency of a (subscriber, update) pair is the
receive time minus that. It stops when every subscriber has ``--updates``
events or ``--timeout`` seconds after ``ready``, and prints one JSON line:
``{"expected", "delivered", "latencies_ms", "spreads_ms", "connect_s", "cpu_share"}``
(``spreads_ms``: per update, first subscriber's read to last's; ``cpu_share``:
CPU seconds per second while reading, 1.0 = one core busy).

Run: ``python -m benchmarks.fanout_receiver --ws-url WS --job JOB --subscribers N --updates K``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import selectors
import socket
import time

import websocket

ACK_TIMEOUT = 30.0
"""Seconds each connection may take to connect and acknowledge its subscription."""


def _subscribe(ws_url: str, job_id: str) -> websocket.WebSocket:
    # the pure-Python UTF-8 check (without wsaccel) would cost more than the read itself
    ws = websocket.create_connection(ws_url, timeout=ACK_TIMEOUT, skip_utf8_validation=True)
    ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": job_id}))
    reply = json.loads(ws.recv())
    if reply.get("type") != "subscribed":
        raise RuntimeError(f"subscription refused: {reply}")
    return ws


class _Frames:
    """The server's frames on one subscriber's socket, read without websocket-client.

    websocket-client costs 30-40 us of Python per frame (header, then payload,
    each through its own buffer): at 1,000 subscribers that is 30-40 ms per update,
    more than either server takes to send it, so the receiver would measure itself.
    Server frames are unmasked (RFC 6455, section 5.1), so one ``recv`` and a few
    slices split them; only text frames are decoded (``bytes.find`` of the send
    time: no JSON parse) and pings are answered.
    """

    __slots__ = ("buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self) -> list[tuple[int, bytes]] | None:
        """The complete frames now readable, ``(opcode, payload)``; ``None`` when closed."""
        try:
            data = self.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return []  # woken with nothing to read after all
        except OSError:
            return None
        if not data:
            return None
        buffer = self.buffer + data if self.buffer else data
        frames = []
        at = 0
        while len(buffer) - at >= 2:
            opcode, length = buffer[at] & 0x0F, buffer[at + 1] & 0x7F
            head = 2
            if length == 126:
                if len(buffer) - at < 4:
                    break
                length, head = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
            elif length == 127:
                if len(buffer) - at < 10:
                    break
                length, head = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
            if len(buffer) - at < head + length:
                break
            frames.append((opcode, buffer[at + head : at + head + length]))
            at += head + length
        self.buffer = buffer[at:]
        return frames

    def pong(self, payload: bytes) -> None:
        """Answer a ping (a client's frame is masked; a zero mask leaves the payload as is)."""
        with contextlib.suppress(OSError):
            self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)


_SENT = b'"currentOperation": "'
_SENT_COMPACT = b'"currentOperation":"'


def _sent_time(payload: bytes) -> float | None:
    """The send time a ``JOB_PROGRESS`` frame carries as ``currentOperation``; ``None``
    for any other frame."""
    if b"JOB_PROGRESS" not in payload:
        return None
    for key in (_SENT_COMPACT, _SENT):
        at = payload.find(key)
        if at >= 0:
            start = at + len(key)
            try:
                return float(payload[start : payload.index(b'"', start)])
            except ValueError:  # an operation that is not a send time
                return None
    return None


def _collect(
    sockets: list[websocket.WebSocket], updates: int, timeout: float
) -> tuple[list[float], list[float]]:
    """Read until each socket has ``updates`` progress events or ``timeout`` passes.

    Returns the latency (ms) of every event read and, per update, the spread (ms)
    from its first subscriber's read to its last's.
    """
    selector = selectors.DefaultSelector()
    remaining = {}
    for ws in sockets:
        sock = ws.sock
        sock.setblocking(False)
        frames = _Frames(sock)
        selector.register(sock, selectors.EVENT_READ, frames)
        remaining[frames] = updates
    latencies: list[float] = []
    first_last: dict[float, list[float]] = {}
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            frames = key.data
            read = frames.read()
            received = time.time()
            if read is None:
                selector.unregister(frames.sock)
                remaining.pop(frames, None)  # what it still lacked counts as undelivered
                continue
            for opcode, payload in read:
                if opcode == 0x9:
                    frames.pong(payload)
                    continue
                if opcode == 0x8:
                    read = None
                    break
                sent = _sent_time(payload) if opcode == 0x1 else None
                if sent is None:
                    continue
                latencies.append((received - sent) * 1000)
                first_last.setdefault(sent, [received, received])[1] = received
                remaining[frames] -= 1
            if read is None or remaining[frames] <= 0:
                selector.unregister(frames.sock)
                del remaining[frames]
    selector.close()
    return latencies, [(last - first) * 1000 for first, last in first_last.values()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--updates", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds after ready")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.subscribers + 64)), hard))

    started = time.monotonic()
    sockets = [_subscribe(args.ws_url, args.job) for _ in range(args.subscribers)]
    connect_s = time.monotonic() - started
    print("ready", flush=True)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    latencies, spreads = _collect(sockets, args.updates, args.timeout)
    cpu_share = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
    for ws in sockets:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.send_close()  # no wait for the server's reply: a thousand waits would add up
        ws.shutdown()  # type: ignore[no-untyped-call]
    result = {
        "expected": args.subscribers * args.updates,
        "delivered": len(latencies),
        "latencies_ms": [round(x, 3) for x in latencies],
        "spreads_ms": [round(x, 3) for x in spreads],
        "connect_s": connect_s,
        "cpu_share": cpu_share,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
