"""Fan-out: how long a progress update takes to reach 10, 100 and 1,000
WebSocket subscribers of one job on ``jobwatch serve``, against the same
measurement with one subscriber.

The subscribers live in another process (:mod:`benchmarks.fanout_receiver`)
so that reading them does not compete with posting for this process's GIL.
Each update's ``currentOperation`` is its send time; the latency of a
(subscriber, update) pair runs from just before the ``POST`` (so it includes
the durable commit) to the moment the receiver has read the frame.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from benchmarks.procs import cpu_seconds, worker_pid
from benchmarks.report import Row, percentile
from jobwatch.server.deploy.process import ServerProcess, serve_command

UPDATES = 100
"""Progress updates posted per measurement (40 with ``--quick``)."""
SPACING = 0.05
"""Seconds between two updates (20 a second)."""
LARGE = 10_000
"""From this many subscribers on, updates come :data:`LARGE_SPACING` apart."""
LARGE_SPACING = 1.0
"""Seconds between two updates at :data:`LARGE` subscribers and more: a Reporter's
default interval, as often as one worker sends its job's progress. (At 20 a second
10,000 subscribers are 200,000 frames a second: about 3 s of one core's time per
second at the 15 us a frame costs; docs/performance.md.)"""
LARGE_UPDATES = 20
"""Updates posted per measurement at :data:`LARGE` subscribers and more."""
RECEIVER_TIMEOUT = 60.0
"""Seconds the receiver waits, after subscribing, before it reports what it got."""
COUNTS_ENV = "JOBWATCH_BENCH_FANOUT"
"""Environment variable: subscriber counts to measure, comma-separated."""
SERVER_ENV = {"JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS": "0"}
"""Every subscriber connects from 127.0.0.1: lift the per-address cap (256 by default)."""
GOALS = {
    100: "p99 <= 50 ms, delivered 1.0",
    1000: "p99 <= 0.25x the broadcaster's, delivered 1.0",
    10000: "p99 < 1 s, delivered 1.0",
}


@dataclass(frozen=True)
class FanoutResult:
    """Latencies (ms) over every (subscriber, update) pair and the delivered fraction."""

    subscribers: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    delivered: float
    spread_ms: float
    connect_s: float
    server_cpu: float
    receiver_cpu: float


def _wait_ready(proc: subprocess.Popen[str], timeout: float) -> None:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout) or proc.stdout.readline().strip() != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"the fan-out receiver did not get ready:\n{err}")


def _post_updates(
    session: requests.Session, url: str, job_id: str, updates: int, spacing: float
) -> None:
    """``updates`` progress updates ``spacing`` seconds apart, each carrying its send time."""
    start = time.monotonic()
    for i in range(updates):
        delay = start + i * spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = {
            "workerId": "bench",
            "progress": 1 + i * 98 / updates,
            "currentOperation": f"{time.time():.6f}",
        }
        session.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=30).raise_for_status()


def measure(
    server: ServerProcess,
    workers: list[int],
    session: requests.Session,
    subscribers: int,
    updates: int,
) -> FanoutResult:
    """Post ``updates`` to a fresh job with ``subscribers`` in a receiver process;
    ``workers`` are the server's worker pids, whose CPU use is reported. From
    :data:`LARGE` subscribers on, :data:`LARGE_UPDATES` updates :data:`LARGE_SPACING`
    apart instead."""
    spacing = SPACING
    if subscribers >= LARGE:
        updates, spacing = LARGE_UPDATES, LARGE_SPACING
    job_id = f"fanout-{subscribers}"
    session.put(f"{server.url}/api/jobs/{job_id}", json={}, timeout=10).raise_for_status()
    warmup = {"workerId": "bench", "progress": 0.5, "currentOperation": "warm-up"}
    session.post(f"{server.url}/api/jobs/{job_id}/progress", json=warmup, timeout=10)
    command = [
        sys.executable, "-m", "benchmarks.fanout_receiver",
        "--ws-url", server.ws_url, "--job", job_id,
        "--subscribers", str(subscribers), "--updates", str(updates),
        "--timeout", str(RECEIVER_TIMEOUT),
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        _wait_ready(proc, timeout=30 + subscribers * 0.05)
        cpu_before, wall_before = sum(map(cpu_seconds, workers)), time.monotonic()
        _post_updates(session, server.url, job_id, updates, spacing)
        server_cpu = (sum(map(cpu_seconds, workers)) - cpu_before) / (
            time.monotonic() - wall_before
        )
        out, err = proc.communicate(timeout=RECEIVER_TIMEOUT + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"the fan-out receiver failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    latencies = result["latencies_ms"]
    return FanoutResult(
        subscribers=subscribers,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        delivered=result["delivered"] / result["expected"],
        spread_ms=percentile(result["spreads_ms"], 50),
        connect_s=result["connect_s"],
        server_cpu=server_cpu,
        receiver_cpu=result["cpu_share"],
    )


def figure(r: FanoutResult) -> str:
    """The result as one table cell."""
    return (
        f"p50 {r.p50_ms:.1f} ms  p99 {r.p99_ms:.1f} ms  max {r.max_ms:.0f} ms  "
        f"delivered {r.delivered:.3f}"
    )


def _broadcaster(counts: list[int], updates: int) -> dict[int, FanoutResult]:
    """The same measurement on the minimal threaded flask-sock broadcaster
    (:mod:`benchmarks.fanout_baseline`), one fresh process per count."""
    results = {}
    for n in counts:
        command = [sys.executable, "-m", "benchmarks.fanout_baseline"]
        with ServerProcess(command) as server, requests.Session() as session:
            results[n] = measure(server, [server.pid], session, n, updates)
    return results


def run(quick: bool) -> list[Row]:
    """Rows: 1 subscriber (baseline), then 10, 100 and (not quick) 1,000, each next
    to the minimal broadcaster with as many subscribers.

    ``JOBWATCH_BENCH_FANOUT=N[,M...]`` measures those counts instead (10,000 needs
    an open-files limit above 10,200 for both processes).
    """
    counts = [10, 100] if quick else [10, 100, 1000]
    if os.environ.get(COUNTS_ENV):
        counts = [int(n) for n in os.environ[COUNTS_ENV].split(",")]
    updates = 40 if quick else UPDATES
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "fanout.db"), env=SERVER_ENV) as server,
        requests.Session() as session,
    ):
        workers = [worker_pid(server)]
        baseline = measure(server, workers, session, 1, updates)
        results = [measure(server, workers, session, n, updates) for n in counts]
    minimal = _broadcaster(counts, updates)
    note = (
        f"{updates} updates {SPACING * 1000:.0f} ms apart ({LARGE_UPDATES} "
        f"{LARGE_SPACING:g} s apart from {LARGE:,} subscribers), receiver in its own process"
    )
    rows = [
        Row(
            "fanout",
            "1 WebSocket subscriber, POST -> frame read (baseline)",
            figure(baseline),
            1.0,
            "",
            note,
        )
    ]
    for r in results:
        m = minimal[r.subscribers]
        rows.append(
            Row(
                "fanout",
                f"{r.subscribers:,} subscribers: minimal threaded flask-sock broadcaster",
                figure(m),
                m.p99_ms / baseline.p99_ms,
                "",
                f"no commit, no queue; first to last subscriber {m.spread_ms:.0f} ms "
                f"(median); CPU: server {m.server_cpu:.0%} of a core",
            )
        )
        rows.append(
            Row(
                "fanout",
                f"{r.subscribers:,} subscribers of one job",
                figure(r),
                r.p99_ms / baseline.p99_ms,
                GOALS.get(r.subscribers, "delivered 1.0"),
                f"ratio = p99 / baseline p99; p99 / broadcaster p99 = "
                f"{r.p99_ms / m.p99_ms:.2f}x; first to last subscriber {r.spread_ms:.0f} ms "
                f"(median); CPU while posting: server worker {r.server_cpu:.0%}, "
                f"receiver {r.receiver_cpu:.0%} of a core"
                + (
                    f"; updates {LARGE_SPACING:g} s apart (the baseline's 50 ms)"
                    if r.subscribers >= LARGE
                    else ""
                ),
            )
        )
    return rows
