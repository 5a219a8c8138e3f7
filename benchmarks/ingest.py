"""Ingest: the seed's complete progress body through ``jobwatch serve`` as
shipped (SQLite file, durable group commits) against a no-op Flask endpoint
parsing the same body under the same gunicorn setup."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests

from benchmarks.load import LoadResult, post_load
from benchmarks.report import Row
from jobwatch.server.deploy.process import ServerProcess, serve_command

SEED_BODY = {
    "workerId": "your_worker_id",
    "progress": 45,
    "currentOperation": "Training epoch 5/10",
    "metrics": {
        "gpuUtilization": 87,
        "gpuMemoryUsed": 18000,
        "gpuMemoryTotal": 24000,
        "gpuTemperature": 72,
        "powerUsage": 350,
    },
    "logLines": [
        {"level": "info", "message": "Epoch 5/10 completed"},
        {"level": "info", "message": "Loss: 0.0234, Accuracy: 98.5%"},
    ],
}


SCALARS_BODY = {
    **SEED_BODY,
    "scalars": {"step": 120, "values": {f"metric_{k}": 0.5 + k for k in range(10)}},
}
"""The seed's body plus 10 training metrics (an extension)."""


def _jobwatch(seconds: float, n_jobs: int, body: dict[str, object] = SEED_BODY) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        with ServerProcess(serve_command(db)) as server:
            ids = ["bench"] if n_jobs == 1 else [f"job{i}" for i in range(n_jobs)]
            with requests.Session() as session:
                for job_id in ids:
                    session.put(
                        f"{server.url}/api/jobs/{job_id}", json={"pricePerHour": 1.5}, timeout=10
                    )
            return post_load(server.url, json.dumps(body), job_ids=ids, seconds=seconds)


def _baseline(seconds: float, *options: str) -> LoadResult:
    command = [sys.executable, "-m", "benchmarks.noop_server", "--port", "0", *options]
    with ServerProcess(command) as server:
        return post_load(server.url, json.dumps(SEED_BODY), job_ids=["bench"], seconds=seconds)


_CASES: dict[str, Callable[[float], LoadResult]] = {
    "baseline": _baseline,
    "sync2": lambda seconds: _baseline(seconds, "--sync-workers", "2"),
    "one": lambda seconds: _jobwatch(seconds, 1),
    "many": lambda seconds: _jobwatch(seconds, 1000),
    "scalars": lambda seconds: _jobwatch(seconds, 1000, SCALARS_BODY),
}


def run(quick: bool) -> list[Row]:
    """Rows: the baselines, one job, 1,000 jobs, 1,000 jobs with 10 training
    metrics per update (32 connections, keep-alive).

    The cases run in turn, in 3 rounds (1 with ``quick``); each ratio is the
    median over the rounds of the ratio within a round, and each figure the
    median round's (this machine's speed drifts by 20 % over a minute).
    """
    seconds = 3.0 if quick else 10.0
    rounds = [
        {name: case(seconds) for name, case in _CASES.items()} for _ in range(1 if quick else 3)
    ]

    def median(name: str, over: str | None = None) -> tuple[LoadResult, float]:
        ranked = sorted(rounds, key=lambda r: r[name].rps / (r[over].rps if over else 1.0))
        middle = ranked[len(ranked) // 2]
        return middle[name], middle[name].rps / (middle[over].rps if over else 1.0)

    def figure(result: LoadResult) -> str:
        return f"{result.rps:,.0f} req/s  p99 {result.p99_ms:.1f} ms  errors {result.errors}"

    baseline, _ = median("baseline")
    sync2, sync2_ratio = median("sync2", "baseline")
    goal = "ratio >= 0.6"
    rows = [
        Row(
            "ingest",
            "no-op Flask, same body, same gunicorn (baseline)",
            f"{baseline.rps:,.0f} req/s",
            1.0,
            "",
            baseline.tool,
        ),
        Row(
            "ingest",
            "no-op Flask under gunicorn -w 2 (sync workers; ratio: / baseline)",
            f"{sync2.rps:,.0f} req/s",
            sync2_ratio,
            "",
            sync2.tool,
        ),
    ]
    for name, what in (
        ("one", "POST /progress, 1 job, durable (SQLite WAL, FULL)"),
        ("many", "POST /progress, 1,000 jobs, durable"),
    ):
        result, ratio = median(name, "baseline")
        _, to_sync2 = median(name, "sync2")
        rows.append(
            Row(
                "ingest",
                f"{what} (ratio: / baseline; / gunicorn -w 2: {to_sync2:.2f}x)",
                figure(result),
                ratio,
                goal,
                result.tool,
            )
        )
    scalars, scalars_ratio = median("scalars", "many")
    rows.append(
        Row(
            "ingest",
            "POST /progress + 10 scalars, 1,000 jobs (ratio: x the seed body)",
            figure(scalars),
            scalars_ratio,
            "",
            scalars.tool,
        )
    )
    return rows
