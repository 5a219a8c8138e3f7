"""The fleet subscribers of the fleet benchmark, in their own process.

Opens ``--subscribers`` WebSocket connections with ``subscribe:jobs``, reads
each one's first pages (every job), prints ``ready``, then reads them all
through one selector for ``--seconds``. Each summary's ``currentOperation``
is the send time (``time.time()``) of the update it reflects; the latency of
a (subscriber, summary) pair is the receive time minus that. Prints one JSON
line: ``{"latencies_ms", "bytes", "summaries", "seconds"}`` (``bytes``: the
text of every ``JOBS_CHANGED`` frame read, all subscribers together).

Run: ``python -m benchmarks.fleet_receiver --ws-url WS --subscribers N --jobs J --seconds S``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import time

import websocket

ACK_TIMEOUT = 60.0


def _subscribe(ws_url: str, jobs: int) -> websocket.WebSocket:
    ws = websocket.create_connection(ws_url, timeout=ACK_TIMEOUT, skip_utf8_validation=True)
    ws.send(json.dumps({"type": "subscribe:jobs"}))
    if json.loads(ws.recv()).get("type") != "subscribed":
        raise RuntimeError("subscription refused")
    seen: set[str] = set()
    while len(seen) < jobs:  # the first pages: every job
        seen.update(s["id"] for s in json.loads(ws.recv())["data"]["jobs"])
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    sockets = [_subscribe(args.ws_url, args.jobs) for _ in range(args.subscribers)]
    print("ready", flush=True)
    selector = selectors.DefaultSelector()
    for ws in sockets:
        ws.settimeout(5.0)
        selector.register(ws, selectors.EVENT_READ, ws)
    latencies: list[float] = []
    size = summaries = 0
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        for key, _ in selector.select(timeout=0.2):
            opcode, frame = key.data.recv_data_frame(control_frame=True)
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            received = time.time()
            size += len(frame.data)
            for s in json.loads(frame.data)["data"]["jobs"]:
                summaries += 1
                with contextlib.suppress(TypeError, ValueError):  # an update from before
                    latencies.append((received - float(s["currentOperation"])) * 1000)
    elapsed = time.monotonic() - started
    for ws in sockets:
        ws.close()
    print(
        json.dumps(
            {"latencies_ms": latencies, "bytes": size, "summaries": summaries, "seconds": elapsed}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
