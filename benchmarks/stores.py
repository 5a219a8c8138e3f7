"""SQLite stores of a given size, written straight into jobwatch's schema.

Posting a million updates through the API would take longer than the
benchmark itself, so rows go in with ``sqlite3.executemany``, shaped as
:class:`jobwatch.server.storage.store.Store` writes them: JSON columns as text, the
per-level log counters ``n_info``/``n_warning``/``n_error`` and the ``seq``
numbers the API reads. The schema (tables and indexes) comes from
``Store(path)`` itself. Each job is running; its samples and log lines are
spread evenly over the last 24 hours, the newest a second before the build.
No ``ANALYZE``: the server never runs it either.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from jobwatch.contract.requests import JobSpec
from jobwatch.server.core.rules import new_job
from jobwatch.server.storage import rollups
from jobwatch.server.storage.schema import jobs
from jobwatch.server.storage.store import Store

SPAN = 24 * 3600.0
"""Seconds of history each job holds."""
GPU_MEMORY_TOTAL = 24_000.0
"""MB per GPU; every sample reports two GPUs."""


@dataclass(frozen=True)
class BuiltStore:
    """A built store: where it is, what it holds, how long it took (s) and its size (MB)."""

    path: Path
    n_jobs: int
    n_samples: int
    n_logs: int
    build_s: float
    size_mb: float

    def job_id(self, i: int) -> str:
        """The id of the ``i``-th job (0-based)."""
        return f"job{i:05d}"

    def logs_of(self, i: int) -> int:
        """How many log lines the ``i``-th job holds."""
        return _share(self.n_logs, self.n_jobs, i)


def _share(total: int, n_jobs: int, i: int) -> int:
    return total // n_jobs + (1 if i < total % n_jobs else 0)


def _gpus(k: int) -> tuple[str, tuple[float, float, float, float, float]]:
    """The ``gpus`` JSON text and the flat fields of sample number ``k`` (two GPUs)."""
    util = [float((k * 37 + g * 11) % 101) for g in range(2)]
    used = [float(8_000 + (k * 13 + g) % 16_000) for g in range(2)]
    temp = [float(40 + (k + g) % 45) for g in range(2)]
    power = [float(100 + (k * 7 + g) % 300) for g in range(2)]
    per_gpu = [
        {
            "index": g,
            "uuid": f"GPU-{g:08d}",
            "name": "NVIDIA A100-SXM4-40GB",
            "gpuUtilization": util[g],
            "gpuMemoryUsed": used[g],
            "gpuMemoryTotal": GPU_MEMORY_TOTAL,
            "gpuTemperature": temp[g],
            "powerUsage": power[g],
        }
        for g in range(2)
    ]
    # flat fields as the server fills them: mean utilization, summed memory and power, hottest
    flat = (sum(util) / 2, sum(used), 2 * GPU_MEMORY_TOTAL, max(temp), sum(power))
    return orjson.dumps(per_gpu).decode(), flat


_VARIANTS = [_gpus(k) for k in range(97)]  # reused round-robin: building stays fast


def _level(k: int) -> str:
    """2 % errors, 8 % warnings, the rest info."""
    r = k % 50
    return "error" if r == 0 else "warning" if r <= 4 else "info"


def _times(count: int, now: float) -> list[float]:
    step = SPAN / max(count, 1)
    return [now - 1.0 - (count - 1 - k) * step for k in range(count)]


def _sample_rows(n_samples: int, n_jobs: int, now: float) -> Iterator[tuple[object, ...]]:
    k = 0
    for i in range(n_jobs):
        job_id = f"job{i:05d}"
        for ts in _times(_share(n_samples, n_jobs, i), now):
            gpus, flat = _VARIANTS[k % len(_VARIANTS)]
            k += 1
            yield (job_id, ts, *flat, gpus)


def _log_rows(n_logs: int, n_jobs: int, now: float) -> Iterator[tuple[object, ...]]:
    for i in range(n_jobs):
        job_id = f"job{i:05d}"
        for k, ts in enumerate(_times(_share(n_logs, n_jobs, i), now)):
            message = f"step {k}: loss {1 / (k + 1):.4f}, throughput {900 + k % 200} samples/s"
            yield (job_id, k + 1, ts, _level(k), message)


def _job_row(i: int, n_logs: int, now: float) -> dict[str, object]:
    levels = [_level(k) for k in range(n_logs)]
    seq = n_logs + 1  # each log line came with its own update; the newest progress is last
    progress_event = {
        "jobId": f"job{i:05d}",
        "status": "running",
        "progress": 50.0,
        "currentOperation": "Training epoch 5/10",
        "metrics": None,
        "timeRemaining": SPAN,
        "costSoFar": 60.0,
        "estimatedTotalCost": 120.0,
        "elapsed": SPAN,
        "currency": "QUBIC",
        "timestamp": None,
    }
    return {
        **new_job(f"job{i:05d}", JobSpec(), now),  # every column, new ones included
        "id": f"job{i:05d}",
        "name": f"bench {i}",
        "status": "running",
        "progress": 50.0,
        "current_operation": "Training epoch 5/10",
        "worker_id": "bench-worker",
        "price_per_hour": 2.5,
        "currency": "QUBIC",
        "provider_id": None,
        "created_at": now - SPAN - 10 + i * 1e-3,
        "started_at": now - SPAN,
        "updated_at": now - 1.0,
        "completed_at": None,
        "progress_at": now - 1.0,
        "worker_ts": None,
        "result": None,
        "error": None,
        "seq": seq,
        "ema_dp": 0.05,
        "ema_dt": 86.4,
        "ema_calls": 10,
        "pause_streak": 0,
        "progress_seq": seq,
        "progress_event": orjson.dumps(progress_event).decode(),
        "completed_seq": None,
        "n_info": levels.count("info"),
        "n_warning": levels.count("warning"),
        "n_error": levels.count("error"),
    }


def build(path: Path, *, n_jobs: int, n_samples: int, n_logs: int) -> BuiltStore:
    """Write a store of ``n_jobs`` running jobs sharing ``n_samples`` samples and
    ``n_logs`` log lines evenly, at ``path`` (which must not exist)."""
    started = time.monotonic()
    Store(str(path)).close()  # the schema, exactly as the server creates it
    now = time.time()
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=DELETE")  # one big write: no WAL file to checkpoint
        db.execute("PRAGMA synchronous=OFF")
        names = [c.name for c in jobs.columns]
        db.executemany(
            f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            (
                tuple(row[name] for name in names)
                for row in (_job_row(i, _share(n_logs, n_jobs, i), now) for i in range(n_jobs))
            ),
        )
        db.executemany(
            "INSERT INTO samples (job_id, ts, gpu_utilization, gpu_memory_used, "
            "gpu_memory_total, gpu_temperature, power_usage, gpus) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _sample_rows(n_samples, n_jobs, now),
        )
        db.executemany(
            "INSERT INTO log_lines (job_id, seq, ts, level, message) VALUES (?, ?, ?, ?, ?)",
            _log_rows(n_logs, n_jobs, now),
        )
        db.commit()
        db.execute("PRAGMA journal_mode=WAL")  # as the server leaves it
    finally:
        db.close()
    store = Store(str(path))  # the roll-ups the server writes at ingest, from those rows
    try:
        with store.engine.begin() as conn:
            rollups.backfill(conn, ("sample_rollups",))
    finally:
        store.close()
    return BuiltStore(
        path=path,
        n_jobs=n_jobs,
        n_samples=n_samples,
        n_logs=n_logs,
        build_s=time.monotonic() - started,
        size_mb=path.stat().st_size / 2**20,
    )


@functools.cache
def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="jobwatch-bench-stores-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def cached(n_jobs: int, n_samples: int, n_logs: int) -> BuiltStore:
    """A store built once per run (the query and memory groups share the big one);
    removed when the process exits. Readers only: nothing may write to it."""
    path = _scratch() / f"store-{n_jobs}-{n_samples}-{n_logs}.db"
    return build(path, n_jobs=n_jobs, n_samples=n_samples, n_logs=n_logs)
