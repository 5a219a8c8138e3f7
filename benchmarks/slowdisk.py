"""Slow disks: ``jobwatch serve`` (SQLite file, one gevent worker) while every
commit that writes waits 0.5 s, as a slow ``fsync`` would, against the same
server on the same disk without the delay.

The delay comes from ``tests/slow_disk/sitecustomize.py`` (the server starts
with that directory on ``PYTHONPATH``); it also logs each commit's end time.
Three threads keep the writer busy (back-to-back updates of one job) while
this process measures, one request after the other, ``GET /api/health`` and
``GET /api/jobs/{id}/monitor`` of another job, and a WebSocket subscriber of a
third job, updated 5 times a second, measures each event from the end of the
commit that stored it to the frame's arrival. The hook logs every commit's
end with each job's ``seq`` as stored: the event of seq ``s`` was stored by
the first commit that logs its job at ``s`` or more.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import requests
import websocket

from benchmarks.report import Row, percentile
from jobwatch.server.deploy.process import ServerProcess, serve_command

DELAY = 0.5
"""Seconds each writing commit waits in the slow run."""
SLOW_DISK = Path(__file__).resolve().parent.parent / "tests" / "slow_disk"


def _busy(url: str, stop: threading.Event) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            body = {"workerId": "busy", "progress": 50.0, "currentOperation": "busy"}
            session.post(f"{url}/api/jobs/busy/progress", json=body, timeout=60)


def _probe(url: str, path: str, stop: threading.Event, out: list[float]) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            start = time.perf_counter()
            session.get(f"{url}{path}", timeout=60).raise_for_status()
            out.append((time.perf_counter() - start) * 1000)
            time.sleep(0.01)


def _subscriber(
    ws_url: str, ready: threading.Event, stop: threading.Event, got: dict[int, float]
) -> None:
    ws = websocket.create_connection(ws_url, timeout=60)
    ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": "watched"}))
    ws.recv()
    ready.set()
    ws.settimeout(0.5)
    while not stop.is_set():
        try:
            event = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            continue
        if event.get("type") == "JOB_PROGRESS":
            got[event["seq"]] = time.time()
    ws.close()


def _watched(url: str, stop: threading.Event, acked: list[bool]) -> None:
    """Update the watched job 5 times a second; ``acked`` gets whether each was acknowledged."""
    with requests.Session() as session:
        i = 0
        while not stop.is_set():
            i += 1
            body = {"workerId": "w", "progress": min(99.0, i / 10), "currentOperation": f"u{i}"}
            answer = session.post(f"{url}/api/jobs/watched/progress", json=body, timeout=60)
            acked.append(answer.ok)
            time.sleep(0.2)


def _measure(delay: float, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "commits.log"
        path = os.pathsep.join(filter(None, [str(SLOW_DISK), os.environ.get("PYTHONPATH")]))
        env = {
            "PYTHONPATH": path,
            "JOBWATCH_SLOW_COMMIT_S": str(delay),
            "JOBWATCH_COMMIT_LOG": str(log),
        }
        server = ServerProcess(serve_command(Path(tmp) / "s.db"), env=env, startup_timeout=60)
        try:
            url = server.url
            for job in ("busy", "probe", "watched"):
                requests.put(f"{url}/api/jobs/{job}", json={}, timeout=60).raise_for_status()
            stop, ready, heard_all = threading.Event(), threading.Event(), threading.Event()
            health: list[float] = []
            monitor: list[float] = []
            acked: list[bool] = []
            got: dict[int, float] = {}
            sub = threading.Thread(target=_subscriber, args=(server.ws_url, ready, heard_all, got))
            sub.start()
            ready.wait(60)
            threads = [threading.Thread(target=_busy, args=(url, stop)) for _ in range(3)]
            threads += [
                threading.Thread(target=_probe, args=(url, "/api/health", stop, health)),
                threading.Thread(
                    target=_probe, args=(url, "/api/jobs/probe/monitor", stop, monitor)
                ),
                threading.Thread(target=_watched, args=(url, stop, acked)),
            ]
            for thread in threads:
                thread.start()
            time.sleep(seconds)
            stop.set()
            for thread in threads:
                thread.join(60)
            time.sleep(1.0)  # frames of the last acknowledged updates
            heard_all.set()
            sub.join(60)
        finally:
            server.kill()
        commits = [line.split(" ", 1) for line in log.read_text().splitlines()]
    stored = sorted((float(end), json.loads(seqs).get("watched", -1)) for end, seqs in commits)
    delivery = []
    for seq, arrived in got.items():
        end = next(e for e, stored_seq in stored if stored_seq >= seq)
        delivery.append((arrived - end) * 1000)
    return {
        "health": percentile(health, 99),
        "monitor": percentile(monitor, 99),
        "ws": percentile(delivery, 99),
        "n": len(health) + len(monitor),
        "delivered": len(got) / max(1, sum(acked)),
        "commits": len(commits) / seconds,
    }


def run(quick: bool) -> list[Row]:
    """Rows: p99 of health, /monitor and WebSocket delivery, without and with a
    0.5 s delay per commit; ratio: with / without."""
    seconds = 4.0 if quick else 15.0
    base = _measure(0.0, seconds)
    slow = _measure(DELAY, seconds)
    rows = []
    for key, what in (
        ("health", "GET /api/health"),
        ("monitor", "GET /api/jobs/{id}/monitor"),
        ("ws", "WebSocket delivery after the commit"),
    ):
        rows.append(
            Row(
                "slowdisk",
                f"{what} p99, commits 0.5 s each (ratio: / no delay)",
                f"{slow[key]:.1f} ms (no delay: {base[key]:.1f} ms)",
                slow[key] / base[key] if base[key] else None,
                "p99 < 50 ms",
            )
        )
    rows.append(
        Row(
            "slowdisk",
            "commits a second, no delay / 0.5 s delay; events delivered",
            f"{base['commits']:.0f} / {slow['commits']:.1f}; "
            f"{base['delivered']:.3f} / {slow['delivered']:.3f}",
            None,
            "",
        )
    )
    return rows
