"""Memory and bandwidth: the server worker's resident memory (empty store,
the big store before and after the query load, 10,000 jobs) and the bytes a
``JobMonitor`` syncs to the browser while a job reports 100 updates a second.

RSS is the gunicorn worker's (the server process's only child), read from
``/proc/PID/status``; the baseline is the same worker on an empty store.
Widget traffic is counted at the comm: every message the widgets publish,
as the JSON of its content plus its binary buffers, against the same updates
pushed on every event (``refresh=0.01``).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from benchmarks import queries, stores
from benchmarks.procs import rss_mb, served, worker_pid
from benchmarks.report import Row

MANY_JOBS = 10_000
RATE = 100.0
"""Updates per second during the widget measurement."""


# -- server RSS -------------------------------------------------------------------


def _rss_rows(quick: bool) -> list[Row]:
    n_large = queries.LARGE_QUICK if quick else queries.LARGE
    n_gets = 50 if quick else 200
    large = stores.cached(queries.N_JOBS, n_large, n_large)
    many = stores.cached(MANY_JOBS, 0, 0)
    with tempfile.TemporaryDirectory() as tmp, served(Path(tmp) / "empty.db") as server:
        empty = rss_mb(worker_pid(server))
    with served(large.path) as server:
        worker = worker_pid(server)
        large_start = rss_mb(worker)
        queries.query_load(server.url, large, n_gets)
        large_after = rss_mb(worker)
    with served(many.path) as server, requests.Session() as session:
        worker = worker_pid(server)
        many_start = rss_mb(worker)
        listed = 0
        for offset in range(0, MANY_JOBS, 1000):
            page = session.get(
                f"{server.url}/api/jobs", params={"limit": 1000, "offset": offset}, timeout=30
            )
            page.raise_for_status()
            listed += len(page.json()["jobs"])
        many_after = rss_mb(worker)
    label = f"{n_large:,} samples + {n_large:,} log lines ({large.size_mb:,.0f} MB file)"

    def row(what: str, mb: float, note: str = "") -> Row:
        return Row("memory", what, f"{mb:.0f} MB RSS", mb / empty, "", note)

    return [
        row("server worker, empty store, after start (baseline)", empty),
        row(f"server worker, {label}, after start", large_start),
        row(
            f"server worker, {label}, after the query load",
            large_after,
            note=f"{n_gets} GETs of each of {len(queries.ENDPOINTS)} endpoints + /health",
        ),
        row(f"server worker, {MANY_JOBS:,} jobs, after start", many_start),
        row(
            f"server worker, {MANY_JOBS:,} jobs, after listing them all",
            many_after,
            note=f"GET /api/jobs, pages of 1,000: {listed:,} jobs",
        ),
    ]


# -- widget bytes -------------------------------------------------------------------


class MessageCounter:
    """Bytes and messages counted from any thread; :meth:`take` reads and resets them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.messages = 0

    def add(self, size: int) -> None:
        with self._lock:
            self.bytes += size
            self.messages += 1

    def take(self) -> tuple[int, int]:
        """Bytes and messages since the last call."""
        with self._lock:
            out = (self.bytes, self.messages)
            self.bytes = self.messages = 0
            return out


def _counting_comm_factory(counter: MessageCounter) -> Any:
    """A ``comm.create_comm`` replacement whose comms count what they would send."""
    from comm.base_comm import BaseComm

    class CountingComm(BaseComm):
        def publish_msg(
            self,
            msg_type: str,
            data: dict[str, Any] | None = None,
            metadata: dict[str, Any] | None = None,
            buffers: list[Any] | None = None,
            **keys: Any,
        ) -> None:
            content = {"comm_id": self.comm_id, "data": data or {}, **keys}
            size = len(json.dumps(content, default=str))
            size += sum(memoryview(b).nbytes for b in buffers or ())
            counter.add(size)

    return CountingComm


def _update_body(i: int) -> dict[str, Any]:
    gpus = [
        {
            "index": g,
            "uuid": f"GPU-{g}",
            "name": "NVIDIA A100-SXM4-40GB",
            "gpuUtilization": float((i * 7 + g * 13) % 101),
            "gpuMemoryUsed": 20_000.0 + i % 100,
            "gpuMemoryTotal": 40_960.0,
            "gpuTemperature": 60.0 + i % 20,
            "powerUsage": 250.0 + i % 50,
        }
        for g in range(2)
    ]
    return {
        "workerId": "bench",
        "progress": min(100.0, i / 100),
        "currentOperation": f"step {i}",
        "metrics": {"gpus": gpus},
        "logLines": [{"level": "info", "message": f"step {i}: loss {1 / (i + 1):.5f}"}],
    }


def _post_at_rate(url: str, job_id: str, seconds: float, sent: list[int]) -> None:
    """``RATE`` updates a second for ``seconds`` (fewer if the server is slower)."""
    with requests.Session() as session:
        start = time.monotonic()
        for i in range(int(seconds * RATE)):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -seconds:
                break  # hopelessly behind: stop at the time limit anyway
            body = _update_body(i)
            session.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=10)
            sent[0] += 1


@dataclass(frozen=True)
class Traffic:
    """What the widgets sent while updates arrived (per second) and the updates achieved."""

    bytes_per_s: float
    messages_per_s: float
    updates_per_s: float
    renders: int


def _traffic(url: str, refresh: float, seconds: float, counter: MessageCounter) -> Traffic:
    from jobwatch import Client
    from jobwatch.notebook.monitor import JobMonitor

    job_id = f"widget-{refresh:g}"
    with Client(url) as client:
        client.create_job(job_id=job_id)
        client.report_progress(job_id, "bench", 0.0, "starting")
    with JobMonitor(job_id, url, refresh=refresh) as monitor:
        deadline = time.monotonic() + 10
        while monitor.state.connection != "live" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the first renders settle
        counter.take()
        renders_before = monitor.renders
        sent = [0]
        poster = threading.Thread(
            target=_post_at_rate, args=(url, job_id, seconds, sent), daemon=True
        )
        started = time.monotonic()
        poster.start()
        poster.join(seconds * 3 + 30)
        time.sleep(refresh + 0.3)  # the last coalesced render
        elapsed = time.monotonic() - started
        size, messages = counter.take()
        renders = monitor.renders - renders_before
    return Traffic(size / elapsed, messages / elapsed, sent[0] / elapsed, renders)


def _widget_rows(quick: bool) -> list[Row]:
    import comm

    from jobwatch.notebook import monitor as monitor_module
    from jobwatch.notebook.monitor import REFRESH, MonitorView
    from jobwatch.server import EmbeddedServer

    seconds = 2.0 if quick else 10.0
    counter = MessageCounter()
    saved = comm.create_comm, monitor_module._make_view
    comm.create_comm = _counting_comm_factory(counter)
    # outside a kernel JobMonitor falls back to text: force the widget view (as the tests do)
    monitor_module._make_view = lambda monitor, time_range: MonitorView(
        monitor._change_range, monitor._load_older, time_range, monitor._redraw
    )
    try:
        with EmbeddedServer() as server:
            unthrottled = _traffic(server.url, 0.01, seconds, counter)
            throttled = _traffic(server.url, REFRESH, seconds, counter)
    finally:
        comm.create_comm, monitor_module._make_view = saved

    def figure(t: Traffic) -> str:
        return (
            f"{t.bytes_per_s / 1024:,.0f} KB/s, {t.messages_per_s:,.0f} messages/s "
            f"({t.renders} renders)"
        )

    note = (
        f"{seconds:.0f} s of updates (2 GPUs + 1 log line each) at "
        f"{unthrottled.updates_per_s:.0f} and {throttled.updates_per_s:.0f} /s achieved"
    )
    return [
        Row(
            "memory",
            "JobMonitor comm traffic, pushed on every event (refresh 0.01 s, baseline)",
            figure(unthrottled),
            1.0,
            "",
            note,
        ),
        Row(
            "memory",
            f"JobMonitor comm traffic, throttled (refresh {REFRESH} s, shipped)",
            figure(throttled),
            throttled.bytes_per_s / unthrottled.bytes_per_s,
            "<= 4 pushes/s (the monitor's REFRESH)",
            "ratio = throttled / unthrottled bytes",
        ),
    ]


def run(quick: bool) -> list[Row]:
    """Rows: worker RSS in four states, then the monitor's comm traffic."""
    return _rss_rows(quick) + _widget_rows(quick)
