"""Long histories: ``GET /metrics?timeRange=86400&maxPoints=500`` (and over the
whole job) on one job of 10,000 / 100,000 / 1,000,000 samples at one a second,
and ``GET /scalars?names=loss&maxPoints=500`` on one metric of 1,000 and
1,000,000 steps, each served by ``jobwatch serve`` on SQLite and on PostgreSQL
(``JOBWATCH_TEST_POSTGRES_URL``; skipped without it). The ratio is each
figure's p50 over the smallest history's on the same backend: the goal is a
flat cost (p50 <= 10 ms whatever the job's length, issues 16 and 18).

Rows go in straight through SQL (``executemany`` / ``COPY``), shaped as the
store writes them; the roll-ups are then computed from them as a database
made before the roll-ups gets them (:func:`jobwatch.server.storage.rollups.backfill`).
``--quick``: 10,000 / 100,000 samples and 1,000 / 100,000 steps, SQLite only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from benchmarks import stores
from benchmarks.report import Row, percentile
from jobwatch.server.deploy.process import ServerProcess, serve_command
from jobwatch.server.storage.schema import jobs
from jobwatch.server.storage.store import Store

GETS = 20
GOAL = "p50 <= 10 ms, ratio ~1"
JOB = "job00000"
WHOLE = 30 * 86400
"""``timeRange`` covering the whole job (the longest one spans 11.6 days)."""

_SAMPLE_SQL = (
    "INSERT INTO samples (job_id, ts, gpu_utilization, gpu_memory_used, gpu_memory_total, "
    "gpu_temperature, power_usage, gpus) VALUES ({})"
)
_SCALAR_SQL = "INSERT INTO scalars (job_id, name, step, ts, value) VALUES ({})"


def _samples(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    for k in range(n):
        gpus, flat = stores._VARIANTS[k % len(stores._VARIANTS)]
        yield (JOB, now - n + k, *flat, gpus)


def _scalars(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    for step in range(n):
        yield (JOB, "loss", step, now - n + step, 1.0 / (step + 1) + (step % 7) * 1e-3)


def _job_row(now: float, n_samples: int) -> tuple[Any, ...]:
    row = stores._job_row(0, 0, now)
    row.update(created_at=now - n_samples - 10, started_at=now - n_samples)
    return tuple(row[c.name] for c in jobs.columns)


def _fill(conn: Any, paramstyle: str, n_samples: int, n_scalars: int) -> None:
    """Insert the job, its samples and its steps through a DBAPI connection."""
    now = time.time()
    mark = "?" if paramstyle == "qmark" else "%s"
    names = [c.name for c in jobs.columns]
    cursor = conn.cursor()
    cursor.execute(
        f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})",
        _job_row(now, n_samples),
    )
    if paramstyle == "qmark":
        cursor.executemany(_SAMPLE_SQL.format(", ".join("?" * 8)), _samples(n_samples, now))
        cursor.executemany(_SCALAR_SQL.format(", ".join("?" * 5)), _scalars(n_scalars, now))
        return
    columns = "job_id, ts, gpu_utilization, gpu_memory_used, gpu_memory_total, "
    columns += "gpu_temperature, power_usage, gpus"
    with cursor.copy(f"COPY samples ({columns}) FROM STDIN") as copy:
        for values in _samples(n_samples, now):
            copy.write_row(values)
    with cursor.copy("COPY scalars (job_id, name, step, ts, value) FROM STDIN") as copy:
        for values in _scalars(n_scalars, now):
            copy.write_row(values)


def _rollups(url: str) -> None:
    """Compute the roll-ups of what was inserted (absent before they existed)."""
    try:
        from jobwatch.server.storage import rollups
    except ImportError:
        return
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            rollups.backfill(conn)
    finally:
        store.close()


@contextlib.contextmanager
def _sqlite(n_samples: int, n_scalars: int) -> Iterator[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        path = Path(tmp) / "history.db"
        Store(str(path)).close()
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA synchronous=OFF")
            _fill(db, "qmark", n_samples, n_scalars)
            db.commit()
        finally:
            db.close()
        _rollups(str(path))
        yield str(path), time.monotonic() - started


@contextlib.contextmanager
def _postgres(postgres: str, n_samples: int, n_scalars: int) -> Iterator[tuple[str, float]]:
    import psycopg

    schema = f"jw_hist_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in postgres else "?"
    url = f"{postgres}{joiner}options={quote(f'-csearch_path={schema}')}"
    try:
        started = time.monotonic()
        Store(url).close()
        with psycopg.connect(url) as conn:
            _fill(conn, "format", n_samples, n_scalars)
        _rollups(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        yield url, time.monotonic() - started
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _time(session: requests.Session, url: str) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, points of the first answer) of :data:`GETS` sequential GETs."""
    for _ in range(3):
        session.get(url, timeout=120).raise_for_status()
    latencies, points = [], 0
    for _ in range(GETS):
        start = time.perf_counter()
        answer = session.get(url, timeout=120)
        answer.raise_for_status()
        body = answer.json()
        latencies.append((time.perf_counter() - start) * 1000)
        items = body.get("metrics") or body.get("scalars", {}).get("loss", [])
        points = len(items)
    return percentile(latencies, 50), percentile(latencies, 99), points


def _reads(n_scalars: int) -> dict[str, str]:
    paths = {
        "/metrics?timeRange=86400&maxPoints=500": "metrics?timeRange=86400&maxPoints=500",
        "/metrics (whole job)&maxPoints=500": f"metrics?timeRange={WHOLE}&maxPoints=500",
    }
    if n_scalars:
        paths["/scalars?names=loss&maxPoints=500"] = "scalars?names=loss&maxPoints=500"
    return {name: f"/api/jobs/{JOB}/{path}" for name, path in paths.items()}


def _backend(name: str, sizes: list[tuple[int, int]], postgres: str | None) -> list[Row]:
    figures: dict[str, list[tuple[int, float, float, int]]] = {}
    builds = []
    for n_samples, n_scalars in sizes:
        build = _sqlite if postgres is None else lambda a, b: _postgres(postgres, a, b)
        with build(n_samples, n_scalars) as (db, build_s):
            builds.append(f"{n_samples:,}+{n_scalars:,}: {build_s:.0f} s")
            with ServerProcess(serve_command(db)) as server, requests.Session() as session:
                for what, path in _reads(n_scalars).items():
                    size = n_scalars if what.startswith("/scalars") else n_samples
                    figures.setdefault(what, []).append((size, *_time(session, server.url + path)))
    rows = []
    for what, measured in figures.items():
        base = measured[0][1]
        unit = "steps" if what.startswith("/scalars") else "samples"
        for size, p50, p99, points in measured:
            rows.append(
                Row(
                    "history",
                    f"GET {what}, {name}, one job of {size:,} {unit}",
                    f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  ({points} points)",
                    p50 / base,
                    GOAL,
                    "ratio: p50 / the smallest job's" if size == measured[-1][0] else "",
                )
            )
    rows.append(Row("history", f"build ({name})", "; ".join(builds), None, ""))
    return rows


def run(quick: bool) -> list[Row]:
    """Rows: p50/p99 of each read on each history size and backend."""
    if quick:
        return _backend("SQLite", [(10_000, 1_000), (100_000, 100_000)], None)
    sizes = [(10_000, 1_000), (100_000, 0), (1_000_000, 1_000_000)]
    rows = _backend("SQLite", sizes, None)
    postgres = os.environ.get("JOBWATCH_TEST_POSTGRES_URL")
    if postgres:
        rows += _backend("PostgreSQL", sizes, postgres)
    else:
        rows.append(
            Row("history", "PostgreSQL", "skipped: no JOBWATCH_TEST_POSTGRES_URL", None, "")
        )
    return rows
