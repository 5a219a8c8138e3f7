"""Ingest: the seed's complete progress body through ``jobwatch serve`` as
shipped (SQLite file, durable group commits) against a no-op Flask endpoint
parsing the same body under the same gunicorn setup."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import requests

from benchmarks.load import LoadResult, post_load
from benchmarks.report import Row
from jobwatch.server.process import ServerProcess, serve_command

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


def _baseline(seconds: float) -> LoadResult:
    command = [sys.executable, "-m", "benchmarks.noop_server", "--port", "0"]
    with ServerProcess(command) as server:
        return post_load(server.url, json.dumps(SEED_BODY), job_ids=["bench"], seconds=seconds)


def run(quick: bool) -> list[Row]:
    """Rows: baseline, one job, 1,000 jobs, 1,000 jobs with 10 training metrics
    per update (32 connections, keep-alive)."""
    seconds = 3.0 if quick else 10.0
    baseline = _baseline(seconds)
    one = _jobwatch(seconds, 1)
    many = _jobwatch(seconds, 1000)
    with_scalars = _jobwatch(seconds, 1000, SCALARS_BODY)
    goal = "ratio >= 0.5"
    return [
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
            "POST /progress, 1 job, durable (SQLite WAL, FULL)",
            f"{one.rps:,.0f} req/s  p99 {one.p99_ms:.1f} ms  errors {one.errors}",
            one.rps / baseline.rps,
            goal,
            one.tool,
        ),
        Row(
            "ingest",
            "POST /progress, 1,000 jobs, durable",
            f"{many.rps:,.0f} req/s  p99 {many.p99_ms:.1f} ms  errors {many.errors}",
            many.rps / baseline.rps,
            goal,
            many.tool,
        ),
        Row(
            "ingest",
            "POST /progress + 10 scalars, 1,000 jobs (ratio: x the seed body)",
            f"{with_scalars.rps:,.0f} req/s  p99 {with_scalars.p99_ms:.1f} ms  "
            f"errors {with_scalars.errors}",
            with_scalars.rps / many.rps,
            "",
            with_scalars.tool,
        ),
    ]
