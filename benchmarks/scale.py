"""Scale-out: ingest and fan-out of ``jobwatch serve --workers N`` on PostgreSQL
and Redis, for N = 1, 2 and 4, each as a ratio to N = 1 measured in the same run.

Needs ``JOBWATCH_TEST_POSTGRES_URL`` and ``JOBWATCH_TEST_REDIS_URL`` (as the
tests do); without them the group prints one row saying so. Each run gets a
fresh PostgreSQL schema and Redis channel. Goal: two processes carry
at least 1.6x the ingest of one. The load generator, PostgreSQL, Redis and the
server share this machine's cores, so the CPU columns say who used them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import requests

from benchmarks.fanout import FanoutResult, figure, measure
from benchmarks.ingest import SEED_BODY
from benchmarks.load import LoadResult, post_load
from benchmarks.procs import cpu_seconds, worker_pids
from benchmarks.report import Row
from jobwatch.server.deploy.process import ServerProcess, serve_command

PROCESSES = (1, 2, 4)
JOBS = 1000
"""Jobs the ingest load spreads over (many workers, as on a marketplace)."""
ROUNDS = 3
"""Ingest runs per process count (1 with ``--quick``); the table shows the median."""


def _median(results: list[tuple[LoadResult, str]]) -> tuple[LoadResult, str]:
    """The run with the median throughput (with its CPU note)."""
    ordered = sorted(results, key=lambda r: r[0].rps)
    return ordered[len(ordered) // 2]


@contextmanager
def _served(postgres: str, redis_url: str, workers: int) -> Iterator[ServerProcess]:
    schema = f"jw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in postgres else "?"
    database = f"{postgres}{joiner}options={quote(f'-csearch_path={schema}')}"
    env = {"JOBWATCH_REDIS_CHANNEL": f"jobwatch-bench:{schema}"}
    command = serve_command(database, "--redis-url", redis_url, "--workers", str(workers))
    server = ServerProcess(command, env=env)
    try:
        yield server
    finally:
        server.kill()
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, ValueError):
            continue
    return total


def _ingest(postgres: str, redis_url: str, workers: int, seconds: float) -> tuple[LoadResult, str]:
    with _served(postgres, redis_url, workers) as server:
        pids = worker_pids(server, workers)
        ids = [f"job{i}" for i in range(JOBS)]
        with requests.Session() as session:
            for job_id in ids:
                session.put(f"{server.url}/api/jobs/{job_id}", json={"pricePerHour": 1.5})
        pg = _postgres_pids()
        before = _cpu(pids), _cpu(pg)
        result = post_load(server.url, json.dumps(SEED_BODY), job_ids=ids, seconds=seconds)
        used = (_cpu(pids) - before[0]) / seconds, (_cpu(pg) - before[1]) / seconds
    per_core = result.rps / used[0] if used[0] > 0 else float("nan")
    return result, (
        f"CPU: jobwatch {used[0]:.2f} cores ({per_core:,.0f} req/s per core), "
        f"PostgreSQL {used[1]:.2f} cores"
    )


def _fanout(
    postgres: str, redis_url: str, workers: int, subscribers: int, updates: int
) -> FanoutResult:
    with _served(postgres, redis_url, workers) as server, requests.Session() as session:
        return measure(server, worker_pids(server, workers), session, subscribers, updates)


def run(quick: bool) -> list[Row]:
    """Rows: ingest for 1, 2, 4 processes; fan-out to 100 (and 1,000) subscribers likewise."""
    postgres = os.environ.get("JOBWATCH_TEST_POSTGRES_URL")
    redis_url = os.environ.get("JOBWATCH_TEST_REDIS_URL")
    if not (postgres and redis_url):
        reason = "JOBWATCH_TEST_POSTGRES_URL / JOBWATCH_TEST_REDIS_URL not set"
        return [Row("scale", "not run", reason, None, "")]
    seconds = 3.0 if quick else 10.0
    rounds = 1 if quick else ROUNDS
    rows: list[Row] = []
    runs: dict[int, list[tuple[LoadResult, str]]] = {n: [] for n in PROCESSES}
    for _ in range(rounds):  # interleaved, so a noisy minute hits every count alike
        for n in PROCESSES:
            runs[n].append(_ingest(postgres, redis_url, n, seconds))
    ingest = {n: _median(results) for n, results in runs.items()}
    base = ingest[1][0].rps
    for n, (result, cpu) in ingest.items():
        each = ", ".join(f"{r.rps:,.0f}" for r, _ in runs[n])
        rows.append(
            Row(
                "scale",
                f"ingest, {n} process{'es' if n > 1 else ''} (PostgreSQL + Redis), {JOBS:,} jobs",
                f"{result.rps:,.0f} req/s  p99 {result.p99_ms:.1f} ms  errors {result.errors}",
                result.rps / base,
                "2 processes >= 1.6x" if n == 2 else ("baseline" if n == 1 else ""),
                f"{result.tool}; median of {rounds} run(s): {each} req/s; {cpu}; "
                f"{os.cpu_count()} CPUs in all",
            )
        )
    updates = 40 if quick else 100
    for subscribers in (100,) if quick else (100, 1000):
        fan = {n: _fanout(postgres, redis_url, n, subscribers, updates) for n in PROCESSES}
        for n, r in fan.items():
            rows.append(
                Row(
                    "scale",
                    f"fan-out to {subscribers:,} subscribers over {n} process"
                    f"{'es' if n > 1 else ''}",
                    figure(r),
                    r.p99_ms / fan[1].p99_ms,
                    "delivered 1.0" if n > 1 else "baseline",
                    f"ratio = p99 / 1 process p99; server CPU {r.server_cpu:.2f} cores",
                )
            )
    return rows
