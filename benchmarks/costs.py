"""The spend report (``GET /api/costs``) on stores of 1,000 and 10,000 jobs (quick:
1,000 and 3,000) run over the last 30 days, a tenth of them repriced twice while
running, a tenth still running; each store served by ``jobwatch serve``.

The report reads every job whose run overlaps the window and its price segments,
and cuts each run at midnight in Python: its time grows with the jobs in the
window. The ratio is the big store's median over the small store's, against the
ratio of their job counts; ``GET /api/jobs?limit=100`` on the same server is the
framework's floor.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.procs import served
from benchmarks.queries import time_gets
from benchmarks.report import Row
from jobwatch.contract.requests import JobSpec
from jobwatch.server.core.rules import new_job
from jobwatch.server.storage.schema import jobs, price_segments
from jobwatch.server.storage.store import Store

DAY = 86_400.0
WINDOW_DAYS = 30
GOAL = "p50 grows at most as the jobs in the window (ratio <= job ratio)"


def build(path: Path, n_jobs: int, now: float) -> None:
    """``n_jobs`` jobs started over the last 30 days, each running 1-20 hours at a price
    of 1-8 an hour (every tenth repriced twice, every tenth still running)."""
    Store(str(path)).close()  # the schema
    columns = [c.name for c in jobs.columns]
    rows, segments = [], []
    for i in range(n_jobs):
        started = now - WINDOW_DAYS * DAY + (i * 7919 % n_jobs) / n_jobs * (WINDOW_DAYS - 1) * DAY
        hours = 1 + i % 20
        price = 1.0 + i % 8
        running = i % 10 == 3
        row = dict(new_job(f"job{i:05d}", JobSpec(name=f"sweep-{i % 50}"), started))
        row.update(
            status="running" if running else "completed",
            started_at=started,
            updated_at=now if running else started + hours * 3600,
            completed_at=None if running else started + hours * 3600,
            price_per_hour=price,
            progress=50.0 if running else 100.0,
        )
        if i % 10 == 7:  # repriced twice: two closed segments, the third current
            a, b = started + 1200, started + 2400
            segments += [(row["id"], started, a, price * 2), (row["id"], a, b, price * 3)]
            row.update(price_from=b, price_cost=(price * 2 + price * 3) / 3)
        rows.append(tuple(_sql(row[c]) for c in columns))
    with sqlite3.connect(path) as conn:
        marks = ", ".join("?" for _ in columns)
        conn.executemany(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({marks})", rows)
        conn.executemany(
            f"INSERT INTO {price_segments.name} VALUES (?, ?, ?, ?)",
            segments,
        )


def _sql(value: object) -> object:
    if isinstance(value, dict | list):
        import json

        return json.dumps(value)
    return value


def run(quick: bool) -> list[Row]:
    """One row per store size: the report's p50/p99 and the floor beside it."""
    sizes = (1000, 3000) if quick else (1000, 10_000)
    n = 10 if quick else 30
    timings = {}
    with tempfile.TemporaryDirectory(prefix="jobwatch-costs-") as folder:
        for size in sizes:
            path = Path(folder) / f"costs-{size}.db"
            build(path, size, time.time())
            with served(path) as server, requests.Session() as session:
                time_gets(session, server.url, ["/api/costs?since=1d"] * 3)  # warm
                report = time_gets(
                    session, server.url, [f"/api/costs?since={WINDOW_DAYS}d&by=name"] * n
                )
                floor = time_gets(session, server.url, ["/api/jobs?limit=100"] * n)
            timings[size] = (report, floor)
    small, big = sizes
    rows = []
    for size in sizes:
        report, floor = timings[size]
        rows.append(
            Row(
                "costs",
                f"GET /api/costs?since={WINDOW_DAYS}d&by=name, {size:,} jobs, {n} sequential",
                f"p50 {report.p50_ms:.1f} ms p99 {report.p99_ms:.1f} ms",
                None if size == small else report.p50_ms / timings[small][0].p50_ms,
                GOAL if size == big else "",
                f"/api/jobs?limit=100 p50 {floor.p50_ms:.1f} ms; job ratio {big / small:g}",
            )
        )
    return rows
