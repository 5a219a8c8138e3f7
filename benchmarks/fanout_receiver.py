"""The subscribers of the fan-out benchmark, in their own process.

Opens ``--subscribers`` WebSocket connections to one job, prints ``ready``
once every one is acknowledged, then reads them all through one selector.
Each ``JOB_PROGRESS`` carries its send time (``time.time()``) as
``currentOperation``; the latency of a (subscriber, update) pair is the
receive time minus that. It stops when every subscriber has ``--updates``
events or ``--timeout`` seconds after ``ready``, and prints one JSON line:
``{"expected", "delivered", "latencies_ms", "spreads_ms", "connect_s", "cpu_share"}``
(``spreads_ms``: per update, first subscriber's read to last's; ``cpu_share``:
CPU seconds per second while reading, 1.0 = one core busy)..

Run: ``python -m benchmarks.fanout_receiver --ws-url WS --job JOB --subscribers N --updates K``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import selectors
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
        ws.settimeout(5.0)  # a frame is already arriving when the selector wakes us
        selector.register(ws, selectors.EVENT_READ, ws)
        remaining[ws] = updates
    latencies: list[float] = []
    first_last: dict[str, list[float]] = {}
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            ws = key.data
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except (websocket.WebSocketException, OSError):
                opcode, frame = websocket.ABNF.OPCODE_CLOSE, None  # counted as undelivered
            received = time.time()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                selector.unregister(ws)
                del remaining[ws]
                continue
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue  # ping or pong, answered by websocket-client
            event = json.loads(frame.data)
            if event.get("type") != "JOB_PROGRESS":
                continue
            sent = event["data"]["currentOperation"]
            latencies.append((received - float(sent)) * 1000)
            first_last.setdefault(sent, [received, received])[1] = received
            remaining[ws] -= 1
            if remaining[ws] == 0:
                selector.unregister(ws)
                del remaining[ws]
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
