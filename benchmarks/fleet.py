"""The fleet: summaries fan-out and the notebook table's bytes.

1. ``jobwatch serve`` as shipped with 1,000 jobs (200 with ``--quick``), each
   updated once a second by paced posting threads, and 100 ``subscribe:jobs``
   subscribers in another process (:mod:`benchmarks.fleet_receiver`); the
   baseline is the same with one subscriber. Reported: p50/p99 latency from
   just before an update's ``POST`` to the subscriber reading the
   ``JOBS_CHANGED`` that carries it (the feed coalesces each job to at most
   4 summaries a second, so up to 250 ms of it is by design), bytes per second
   per subscriber, and the update rate the posters reached.
2. The notebook table (:class:`~jobwatch.notebook.fleet_table.FleetTableWidget`,
   no kernel: counted at its comm as in :mod:`benchmarks.sync`) fed the same
   1,000 jobs changing once a second, rendered 4 times a second: bytes synced
   per second once shown (the changed fields of the changed rows) against the
   row list synced whole on every render (what a plain list trait does).
"""

from __future__ import annotations

import http.client
import json
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.report import Row, percentile
from jobwatch.server.deploy.process import ServerProcess, serve_command

JOBS = 1_000
SUBSCRIBERS = 100
SECONDS = 20.0
"""Seconds measured per run (8 with ``--quick``)."""
POSTERS = 8
"""Posting threads (keep-alive connections), each pacing its share of the jobs. The
rate they reach is reported: on a small machine they share the CPUs with the server and
the receivers (32 threads reached less than 8 on 2 CPUs)."""
RENDERS_PER_SECOND = 4


def _post_paced(url: str, job_ids: list[str], until: float, sent: list[int]) -> None:
    """Update each of ``job_ids`` once a second, spread evenly, until ``until``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    spacing = 1.0 / len(job_ids)
    start, i = time.monotonic(), 0
    while time.monotonic() < until:
        delay = start + i * spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        job_id = job_ids[i % len(job_ids)]
        body = json.dumps(
            {
                "workerId": "bench",
                "progress": (i // len(job_ids)) % 100,
                "currentOperation": f"{time.time():.6f}",
                "metrics": {"gpuUtilization": i % 101, "gpuTemperature": 60 + i % 20},
            }
        )
        conn.request(
            "POST", f"/api/jobs/{job_id}/progress", body, {"Content-Type": "application/json"}
        )
        conn.getresponse().read()
        sent[0] += 1
        i += 1
    conn.close()


def _measure(
    server: ServerProcess, job_ids: list[str], subscribers: int, seconds: float
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "benchmarks.fleet_receiver", "--ws-url", server.ws_url,
        "--subscribers", str(subscribers), "--jobs", str(len(job_ids)),
        "--seconds", str(seconds + 2),
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(120) or proc.stdout.readline().strip() != "ready":
                proc.kill()
                raise RuntimeError(f"the fleet receiver did not get ready: {proc.communicate()[1]}")
        until = time.monotonic() + seconds
        shares = [job_ids[k::POSTERS] for k in range(POSTERS)]
        counters = [[0] for _ in shares]
        threads = [
            threading.Thread(target=_post_paced, args=(server.url, share, until, count))
            for share, count in zip(shares, counters, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 60)
        out, err = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"the fleet receiver failed:\n{err}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["update_rate"] = sum(c[0] for c in counters) / seconds
    return result


def _fanout_figure(result: dict[str, Any], subscribers: int) -> tuple[str, float]:
    latencies = result["latencies_ms"]
    p99 = percentile(latencies, 99)
    per_subscriber = result["bytes"] / result["seconds"] / subscribers
    return (
        f"p50 {percentile(latencies, 50):.0f} ms  p99 {p99:.0f} ms  "
        f"{per_subscriber / 1024:.0f} KiB/s per subscriber  "
        f"({result['update_rate']:.0f} updates/s posted)"
    ), p99


def summary(job_id: str, **fields: Any) -> dict[str, Any]:
    """A job summary as ``JOBS_CHANGED`` carries it (jobwatch/server/events/fleet_feed.py)."""
    return {
        "id": job_id, "name": f"sweep {job_id}", "status": "running", "progress": 0.0,
        "currentOperation": "epoch 0", "timeRemaining": 1000.0, "costSoFar": 0.0,
        "estimatedTotalCost": 10.0, "currency": "QUBIC", "pricePerHour": 2.0,
        "gpuUtilization": 50.0, "gpuTemperature": 65.0, "updatedAt": "2026-11-29T10:00:00.000Z",
        "startedAt": "2026-11-29T09:00:00.000Z", "completedAt": None,
        "createdAt": "2026-11-29T09:00:00.000Z", "workerId": "bench", "stalled": False,
        "alerts": 0, **fields,
    }  # fmt: skip


def _table_bytes(jobs: int, seconds: float, shown: bool) -> float:
    """Bytes per second a table's comm sends for ``jobs`` jobs changing once a second."""
    import comm

    from benchmarks.memory import MessageCounter, _counting_comm_factory
    from jobwatch.notebook.fleet_table import FleetTableWidget

    counter = MessageCounter()
    original = comm.create_comm
    comm.create_comm = _counting_comm_factory(counter)
    try:
        widget = FleetTableWidget()
        if shown:
            widget.shown()
        widget.update({f"job-{i}": summary(f"job-{i}") for i in range(jobs)})
        counter.take()
        renders = int(seconds * RENDERS_PER_SECOND)
        per_render = jobs // RENDERS_PER_SECOND
        for r in range(renders):
            changed = {}
            for k in range(per_render):
                i = (r * per_render + k) % jobs
                changed[f"job-{i}"] = summary(
                    f"job-{i}",
                    progress=float(r % 100),
                    currentOperation=f"epoch {r}",
                    timeRemaining=1000.0 - r,
                    costSoFar=0.01 * r,
                    estimatedTotalCost=10.0 + 0.001 * r,
                    gpuUtilization=float((r * 7 + i) % 101),
                    updatedAt=f"2026-11-29T10:{r // 240 % 60:02d}:{r // 4 % 60:02d}.{r % 4 * 250:03d}Z",
                )
            widget.update(changed)
        size, _ = counter.take()
        widget.close()
    finally:
        comm.create_comm = original
    return size / seconds


def run(quick: bool) -> list[Row]:
    """Rows: fan-out to 1 (baseline) and 100 fleet subscribers; the table's bytes."""
    jobs = 200 if quick else JOBS
    seconds = 8.0 if quick else SECONDS
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "fleet.db")) as server,
    ):
        job_ids = [f"fleet-{i}" for i in range(jobs)]
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        for job_id in job_ids:
            conn.request("PUT", f"/api/jobs/{job_id}", json.dumps({"pricePerHour": 2.0}),
                         {"Content-Type": "application/json"})  # fmt: skip
            conn.getresponse().read()
        conn.close()
        baseline = _measure(server, job_ids, 1, seconds)
        many = _measure(server, job_ids, SUBSCRIBERS, seconds)
    base_text, base_p99 = _fanout_figure(baseline, 1)
    many_text, many_p99 = _fanout_figure(many, SUBSCRIBERS)
    note = f"{jobs:,} jobs each updated once a second for {seconds:.0f} s; receivers in their own process"
    whole = _table_bytes(jobs, seconds, shown=False)
    patches = _table_bytes(jobs, seconds, shown=True)
    return [
        Row(
            "fleet",
            "1 fleet subscriber, POST -> JOBS_CHANGED read (baseline)",
            base_text,
            1.0,
            "",
            note,
        ),
        Row(
            "fleet",
            f"{SUBSCRIBERS} fleet subscribers",
            many_text,
            many_p99 / base_p99,
            "p99 <= 500 ms",
            "ratio = p99 / baseline p99; up to 250 ms is the feed's coalescing",
        ),
        Row(
            "fleet",
            f"JobsTable, {jobs:,} jobs changing once a second: row list synced whole (baseline)",
            f"{whole / 1024:.0f} KiB/s",
            1.0,
            "",
            "counted at the comm, 4 renders a second, no kernel",
        ),
        Row(
            "fleet",
            "JobsTable shown: changed fields of changed rows as messages",
            f"{patches / 1024:.0f} KiB/s",
            patches / whole,
            "",
            "ratio = bytes / baseline bytes; a report changes most of a row's fields",
        ),
    ]
