"""Reads against a big store: the GETs a dashboard makes, timed on a store of
10,000 samples + 10,000 log lines and on one of 1,000,000 + 1,000,000 (quick:
100,000 + 100,000), both over 1,000 jobs, each served by ``jobwatch serve``.
The ratio is the big store's median over the small store's: a read that only
touches one job's newest rows should not grow with the store. The full run
also times one long job (a sample a second for a day, a million log lines):
spread over 1,000 jobs, a big store holds only 1,000 rows per job.

Requests are sequential on one keep-alive ``requests.Session`` and rotate over
the jobs, so each lands on a job the previous one did not touch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from benchmarks import stores
from benchmarks.procs import served
from benchmarks.report import Row, percentile

N_JOBS = 1000
SMALL = 10_000
LARGE = 1_000_000
LARGE_QUICK = 100_000
LONG_JOB_SAMPLES = 86_400
"""One sample a second for 24 hours: the long job of the full run."""
LONG_JOB_LINES = 1_000_000
LONG_JOB_GETS = 20
"""GETs per endpoint on the long job (some take a good part of a second)."""
GOAL = "p50 <= 10 ms, ratio ~1"

Path_ = Callable[[stores.BuiltStore, int], str]
"""The request path for job number ``i`` of a store."""

ENDPOINTS: dict[str, Path_] = {
    "/metrics?timeRange=60": lambda s, i: f"/api/jobs/{s.job_id(i)}/metrics?timeRange=60",
    "/metrics?timeRange=86400&maxPoints=500": lambda s, i: (
        f"/api/jobs/{s.job_id(i)}/metrics?timeRange=86400&maxPoints=500"
    ),
    "/logs (offset 0)": lambda s, i: f"/api/jobs/{s.job_id(i)}/logs",
    "/logs (offset total-100)": lambda s, i: (
        f"/api/jobs/{s.job_id(i)}/logs?offset={max(0, s.logs_of(i) - 100)}"
    ),
    "/monitor": lambda s, i: f"/api/jobs/{s.job_id(i)}/monitor",
}
"""What is timed, by name."""


@dataclass(frozen=True)
class Timing:
    """Latency (ms) of sequential GETs and how many items the first answer held."""

    p50_ms: float
    p99_ms: float
    items: str


def _items(body: dict[str, Any]) -> str:
    """What an answer held: samples, log lines or (``/monitor``) both."""
    metrics, logs = body.get("metrics"), body.get("logs")
    if isinstance(metrics, dict):
        return f"{len(metrics['history'])} samples + {len(logs or [])} lines"
    if isinstance(metrics, list):
        return f"{len(metrics)} samples"
    return f"{len(logs or [])} lines" if logs is not None else ""


def time_gets(session: requests.Session, url: str, paths: list[str]) -> Timing:
    """GET each path in turn; fail on any non-200 answer."""
    latencies = []
    items = None
    for path in paths:
        start = time.perf_counter()
        response = session.get(url + path, timeout=30)
        response.raise_for_status()
        body = response.json()
        latencies.append((time.perf_counter() - start) * 1000)
        if items is None:
            items = _items(body)
    return Timing(percentile(latencies, 50), percentile(latencies, 99), items or "")


def _job_order(n_jobs: int, n: int) -> list[int]:
    """``n`` job numbers, consecutive ones far apart (a stride coprime with ``n_jobs``)."""
    return [(k * 7919) % n_jobs for k in range(n)]


def query_load(url: str, store: stores.BuiltStore, n: int) -> tuple[dict[str, Timing], Timing]:
    """Time ``n`` GETs of every endpoint and of ``/api/health`` against a served store."""
    order = _job_order(store.n_jobs, n)
    with requests.Session() as session:
        time_gets(session, url, ["/api/health"] * 20)  # warm the connection and the worker
        health = time_gets(session, url, ["/api/health"] * n)
        timings = {
            name: time_gets(session, url, [path(store, i) for i in order])
            for name, path in ENDPOINTS.items()
        }
    return timings, health


def _serve_and_time(store: stores.BuiltStore, n: int) -> tuple[dict[str, Timing], Timing]:
    with served(store.path) as server:
        return query_load(server.url, store, n)


def _build_row(store: stores.BuiltStore) -> Row:
    return Row(
        "queries",
        f"build: {store.n_samples:,} samples + {store.n_logs:,} log lines, {store.n_jobs:,} job(s)",
        f"{store.build_s:.1f} s, {store.size_mb:,.0f} MB",
        None,
        "bounded (a minute or two)",
        "sqlite3.executemany into Store's schema",
    )


def _timing(t: Timing) -> str:
    return f"p50 {t.p50_ms:.1f} ms p99 {t.p99_ms:.1f} ms ({t.items})"


def run(quick: bool) -> list[Row]:
    """Rows: each store's build, one row per endpoint (small and large store) and,
    not quick, the same endpoints on one long job."""
    n = 50 if quick else 200
    n_large = LARGE_QUICK if quick else LARGE
    small = stores.cached(N_JOBS, SMALL, SMALL)
    large = stores.cached(N_JOBS, n_large, n_large)
    long_job = None if quick else stores.cached(1, LONG_JOB_SAMPLES, LONG_JOB_LINES)
    small_t, small_health = _serve_and_time(small, n)
    large_t, large_health = _serve_and_time(large, n)
    rows = [_build_row(s) for s in (small, large, long_job) if s is not None]
    floor = (
        f"/health p50 {small_health.p50_ms:.1f} ms / {large_health.p50_ms:.1f} ms (framework floor)"
    )
    for name in ENDPOINTS:
        a, b = small_t[name], large_t[name]
        rows.append(
            Row(
                "queries",
                f"GET {name}, {n} sequential",
                f"{SMALL:,}: {_timing(a)}; {n_large:,}: {_timing(b)}",
                b.p50_ms / a.p50_ms,
                GOAL,
                floor,
            )
        )
    if long_job is not None:
        long_t, long_health = _serve_and_time(long_job, LONG_JOB_GETS)
        for name in ENDPOINTS:
            rows.append(
                Row(
                    "queries",
                    f"GET {name}, one job of {LONG_JOB_SAMPLES:,} samples + "
                    f"{LONG_JOB_LINES:,} lines, {LONG_JOB_GETS} sequential",
                    _timing(long_t[name]),
                    long_t[name].p50_ms / small_t[name].p50_ms,
                    GOAL,
                    f"ratio = p50 / {SMALL:,}-store p50; /health p50 {long_health.p50_ms:.1f} ms",
                )
            )
    return rows
