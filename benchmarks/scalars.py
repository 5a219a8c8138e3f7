"""Reading training metrics: ``GET /scalars?names=loss&maxPoints=500`` on one
job holding 1,000 points and on one holding 1,000,000 (quick: 100,000), each
served by ``jobwatch serve``. The ratio is the big job's median over the small
one's: the goal is a flat cost (p50 <= 10 ms whatever the history)."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.procs import served
from benchmarks.report import Row, percentile
from jobwatch.protocol import JobSpec
from jobwatch.server.rules import new_job
from jobwatch.server.schema import encode_json
from jobwatch.server.store import Store

GETS = 30
NAMES = ("loss", "accuracy")


def _build(path: Path, points: int) -> float:
    """A store with one running job whose two metrics hold ``points`` values in
    all, one step a second up to now; returns the build time (s)."""
    started = time.monotonic()
    Store(str(path)).close()
    now = time.time()
    row = new_job("long", JobSpec(), now - points)
    row.update(status="running", started_at=now - points, progress=50.0, progress_at=now)
    per_name = points // len(NAMES)
    row["latest_scalars"] = encode_json(
        {n: {"step": per_name - 1, "timestamp": None, "value": 0.5} for n in NAMES}
    )
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        conn.executemany(
            "INSERT INTO scalars (job_id, name, step, ts, value) VALUES (?, ?, ?, ?, ?)",
            (
                ("long", name, step, now - per_name + step, 1.0 / (step + 1))
                for name in NAMES
                for step in range(per_name)
            ),
        )
    return time.monotonic() - started


def _time(url: str) -> tuple[float, float, int]:
    latencies = []
    points = 0
    with requests.Session() as session:
        for _ in range(GETS):
            start = time.perf_counter()
            answer = session.get(
                f"{url}/api/jobs/long/scalars?names=loss&maxPoints=500", timeout=60
            )
            latencies.append((time.perf_counter() - start) * 1000)
            answer.raise_for_status()
            points = len(answer.json()["scalars"]["loss"])
    return percentile(latencies, 50), percentile(latencies, 99), points


def run(quick: bool) -> list[Row]:
    """Rows: /scalars p50/p99 on 1,000 points (baseline) and on the big job."""
    big = 100_000 if quick else 1_000_000
    rows = []
    baseline_p50 = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1_000, big):
            path = Path(tmp) / f"s{n}.db"
            build_s = _build(path, n)
            with served(path) as server:
                p50, p99, points = _time(server.url)
            if n == 1_000:
                baseline_p50 = p50
            rows.append(
                Row(
                    "scalars",
                    f"/scalars?names=loss&maxPoints=500, one job of {n:,} points",
                    f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  ({points} points; built in {build_s:.0f} s)",
                    p50 / baseline_p50,
                    "p50 <= 10 ms, ratio ~1",
                )
            )
    return rows
