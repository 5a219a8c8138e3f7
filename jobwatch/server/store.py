"""Storage of jobs, metric samples and log lines (SQLAlchemy Core).

SQLite by default: a file in WAL mode (``synchronous=FULL``: a commit is on
disk before the request is answered) or ``:memory:``. PostgreSQL (through
psycopg 3) for several server processes sharing one database: the same
schema and statements, with job rows locked ``FOR UPDATE`` so each job's
``seq`` stays gap-free whichever process writes. Writes go through a
:class:`~jobwatch.server.writer.GroupCommitWriter`; reads use their own
connections (WAL lets them run beside the writer).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, delete, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from jobwatch.errors import (
    Conflict,
    JobFinished,
    JobNotFound,
    StoreUnavailable,
    WorkerMismatch,
)
from jobwatch.protocol import (
    FINISHED_STATUSES,
    CompleteRequest,
    JobSpec,
    ProgressUpdate,
    RateState,
    format_ts,
    update_rate,
)
from jobwatch.server import batch
from jobwatch.server.files import prepare_sqlite_file
from jobwatch.server.schema import encode_json, jobs, log_lines, metadata, samples
from jobwatch.server.wire import Event, job_estimates
from jobwatch.server.writer import GroupCommitWriter, Operation, R

Row = dict[str, Any]
Clock = Callable[[], float]

DEFAULT_CURRENCY = "QUBIC"


@dataclass(frozen=True)
class ProgressReply:
    """What ``POST /progress`` answers, computed inside the write."""

    job: Row
    body: dict[str, Any]


SCHEMA_LOCK = 0x6A6F_6277_6174_6368 >> 1
"""PostgreSQL advisory lock key ("jobwatch") held while a process creates the schema."""


def database_url(db: str) -> str:
    """Turn the CLI's ``--db`` value (a path, ``:memory:`` or a URL) into a SQLAlchemy URL.

    ``postgresql://`` and ``postgres://`` (the libpq spellings) select the
    psycopg 3 driver; other URLs pass unchanged.
    """
    for scheme in ("postgresql://", "postgres://"):
        if db.startswith(scheme):
            return "postgresql+psycopg://" + db[len(scheme) :]
    if "://" in db:
        return db
    if db == ":memory:":
        return "sqlite://"
    return f"sqlite:///{Path(db).expanduser().resolve()}"


class Store:
    """Jobs, samples and log lines in one SQL database.

    Parameters
    ----------
    url:
        SQLAlchemy URL (``sqlite:///path``, ``sqlite://`` for memory) or a
        ``--db`` value accepted by :func:`database_url`.
    clock:
        Returns the server time in seconds since the epoch; the reference for
        ``startedAt``, elapsed time, cost and metric windows.

    Raises
    ------
    jobwatch.server.files.UnsafeDatabasePath
        A SQLite file in a directory every user may write to.
    """

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        self.url = database_url(url)
        self.clock = clock
        parsed = make_url(self.url)
        self._memory = parsed.get_backend_name() == "sqlite" and parsed.database in (
            None,
            "",
            ":memory:",
        )
        self._lock: Any = threading.RLock() if self._memory else None
        if self._memory:
            self.engine = create_engine(
                "sqlite://",
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        elif parsed.get_backend_name() == "sqlite":
            prepare_sqlite_file(Path(parsed.database or ""))  # 0600, in a directory not /tmp
            self.engine = create_engine(
                self.url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            _cooperative_waits()
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=10)
        _create_schema(self.engine)
        self._unavailable = _unavailable_errors()  # after connecting: the driver is loaded
        self._publish: Callable[[list[Event]], None] = lambda events: None
        self._writer = GroupCommitWriter(
            self.engine,
            self._publish_events,
            lock=self._lock,
            begin=batch.begin,
            finish=batch.finish,
            unavailable=self._unavailable,
        )

    # -- plumbing -------------------------------------------------------------

    def set_publisher(self, publish: Callable[[list[Event]], None]) -> None:
        """Route committed events to ``publish`` (the broker), in commit order."""
        self._publish = publish

    def _publish_events(self, events: list[Event]) -> None:
        self._publish(events)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (under the shared lock for ``:memory:``).

        Raises
        ------
        StoreUnavailable
            The database cannot be reached (503).
        """
        try:
            if self._lock is not None:
                with self._lock, self.engine.connect() as conn:
                    yield conn
            else:
                with self.engine.connect() as conn:
                    yield conn
        except self._unavailable as exc:
            raise _store_unavailable() from exc

    def _submit(self, op: Operation[R], *, key: str = "") -> R:
        try:
            return self._writer.submit(op, key=key)
        except self._unavailable as exc:
            raise _store_unavailable() from exc

    def close(self) -> None:
        """Finish queued writes and release the database."""
        self._writer.close()
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------

    def create_job(self, spec: JobSpec, job_id: str | None, *, upsert: bool) -> tuple[Row, bool]:
        """Create a job, or with ``upsert`` update the fields ``spec`` gives.

        Returns
        -------
        (job row, created)

        Raises
        ------
        Conflict
            Without ``upsert``, when the id exists (409 ``job_exists``).
        WorkerMismatch
            With ``upsert``, when ``spec.workerId`` differs from the bound worker.
        """
        target = job_id or spec.id or uuid.uuid4().hex[:12]

        def op(conn: Connection) -> tuple[tuple[Row, bool], list[Event]]:
            now = self.clock()
            existing = batch.lock_job(conn, target)
            if existing is None:
                row = {
                    "id": target,
                    "name": spec.name,
                    "status": "pending",
                    "progress": 0.0,
                    "current_operation": None,
                    "worker_id": spec.worker_id,
                    "price_per_hour": spec.price_per_hour,
                    "currency": spec.currency or DEFAULT_CURRENCY,
                    "provider_id": spec.provider_id,
                    "created_at": now,
                    "started_at": None,
                    "updated_at": now,
                    "completed_at": None,
                    "progress_at": None,
                    "worker_ts": None,
                    "result": None,
                    "error": None,
                    "seq": 0,
                    "ema_dp": 0.0,
                    "ema_dt": 0.0,
                    "ema_calls": 0,
                    "progress_seq": None,
                    "progress_event": None,
                    "completed_seq": None,
                    "n_info": 0,
                    "n_warning": 0,
                    "n_error": 0,
                }
                batch.insert_job(conn, row)
                return (row, True), []
            if not upsert:
                raise Conflict(f"job {target!r} already exists; PUT /api/jobs/{target} updates it")
            bound = existing["worker_id"]
            if spec.worker_id is not None and bound is not None and spec.worker_id != bound:
                raise WorkerMismatch(
                    f"job {target!r} is bound to worker {bound!r}, not {spec.worker_id!r}"
                )
            changes = {
                column: value
                for column, value in (
                    ("name", spec.name),
                    ("worker_id", spec.worker_id),
                    ("price_per_hour", spec.price_per_hour),
                    ("currency", spec.currency),
                    ("provider_id", spec.provider_id),
                )
                if value is not None
            }
            if not changes:
                return (existing, False), []
            changes["updated_at"] = now
            batch.update_job(conn, target, changes)
            return ({**existing, **changes}, False), []

        return self._submit(op, key=target)

    def apply_progress(self, job_id: str, update: ProgressUpdate) -> ProgressReply:
        """Apply one progress update; return the reply once it is committed.

        The first update binds an unbound job to ``update.workerId``, sets
        ``startedAt`` and status ``running``. An update whose worker
        ``timestamp`` is older than the last applied one keeps its samples and
        log lines but does not change progress or operation. Emits
        ``JOB_PROGRESS`` and, with log lines, ``JOB_LOGS``.

        Raises
        ------
        JobNotFound, WorkerMismatch, JobFinished
            404, 403, 409; nothing is written.
        """

        def op(conn: Connection) -> tuple[ProgressReply, list[Event]]:
            now = self.clock()
            job = _require_job(conn, job_id)
            check_writable(job, update.worker_id)
            changes: dict[str, Any] = {"updated_at": now}
            if job["worker_id"] is None:
                changes["worker_id"] = update.worker_id
            if job["started_at"] is None:
                changes["started_at"] = now
            if job["status"] == "pending":
                changes["status"] = "running"
            worker_ts = update.worker_ts(now)
            late = (
                worker_ts is not None
                and job["worker_ts"] is not None
                and worker_ts < job["worker_ts"]
            )
            if not late:
                if worker_ts is not None:
                    changes["worker_ts"] = worker_ts
                if update.current_operation is not None:
                    changes["current_operation"] = update.current_operation
                if update.progress != job["progress"] or job["progress_at"] is None:
                    changes.update(_rate_changes(job, update.progress, now))
                    changes["progress"] = update.progress
                    changes["progress_at"] = now

            seq = job["seq"]
            events: list[Event] = []
            merged = {**job, **changes}
            estimates = job_estimates(merged, now)
            metrics: dict[str, Any] | None = None
            if update.metrics is not None:
                metrics = {"timestamp": format_ts(now), **update.metrics.flat()}
                gpus = (
                    [g.model_dump(by_alias=True) for g in update.metrics.gpus]
                    if update.metrics.gpus
                    else None
                )
                if gpus:
                    metrics["gpus"] = gpus
                batch.insert_sample(
                    conn,
                    {
                        "job_id": job_id,
                        "ts": now,
                        "gpu_utilization": metrics["gpuUtilization"],
                        "gpu_memory_used": metrics["gpuMemoryUsed"],
                        "gpu_memory_total": metrics["gpuMemoryTotal"],
                        "gpu_temperature": metrics["gpuTemperature"],
                        "power_usage": metrics["powerUsage"],
                        "gpus": encode_json(gpus),
                    },
                )
            seq += 1
            progress_data = {
                "jobId": job_id,
                "status": merged["status"],
                "progress": merged["progress"],
                "currentOperation": merged["current_operation"],
                "metrics": metrics,
                "timeRemaining": estimates.time_remaining,
                "costSoFar": estimates.cost_so_far,
                "estimatedTotalCost": estimates.estimated_total_cost,
                "elapsed": estimates.elapsed,
                "currency": merged["currency"],
                "timestamp": format_ts(now),
            }
            events.append(Event(job_id, seq, "JOB_PROGRESS", progress_data))
            changes["progress_seq"] = seq
            changes["progress_event"] = progress_data

            if update.log_lines:
                seq += 1
                rows = [
                    {
                        "job_id": job_id,
                        "seq": seq,
                        "ts": line.time_at(now),
                        "level": line.level,
                        "message": line.message,
                    }
                    for line in update.log_lines
                ]
                logs = [
                    {
                        "id": None,  # set from RETURNING before the commit
                        "level": r["level"],
                        "timestamp": format_ts(r["ts"]),
                        "message": r["message"],
                    }
                    for r in rows
                ]
                batch.insert_logs(conn, rows, logs)
                events.append(Event(job_id, seq, "JOB_LOGS", {"jobId": job_id, "logs": logs}))
                for level in ("info", "warning", "error"):
                    n = sum(1 for r in rows if r["level"] == level)
                    if n:
                        changes[f"n_{level}"] = job[f"n_{level}"] + n
            changes["seq"] = seq
            batch.update_job(conn, job_id, changes)
            body = {
                "success": True,
                "jobId": job_id,
                "status": merged["status"],
                "progress": merged["progress"],
                "timeRemaining": estimates.time_remaining,
                "costSoFar": estimates.cost_so_far,
                "estimatedTotalCost": estimates.estimated_total_cost,
                "currency": merged["currency"],
                "seq": seq,
            }
            return ProgressReply({**merged, "seq": seq}, body), events

        return self._submit(op, key=job_id)

    def complete_job(self, job_id: str, request: CompleteRequest) -> Row:
        """Finish a job as completed, failed or cancelled; emits ``JOB_COMPLETED``.

        ``completed`` sets progress to 100. Returns the updated job row.

        Raises
        ------
        JobNotFound, WorkerMismatch, JobFinished
            404, 403, 409; nothing is written.
        """

        def op(conn: Connection) -> tuple[Row, list[Event]]:
            now = self.clock()
            job = _require_job(conn, job_id)
            check_writable(job, request.worker_id)
            seq = job["seq"] + 1
            changes: dict[str, Any] = {
                "status": request.status,
                "completed_at": now,
                "updated_at": now,
                "result": request.result,
                "error": request.error,
                "seq": seq,
                "completed_seq": seq,
            }
            if job["worker_id"] is None:
                changes["worker_id"] = request.worker_id
            if request.status == "completed":
                changes["progress"] = 100.0
            merged = {**job, **changes}
            batch.update_job(conn, job_id, changes)
            return merged, [completed_event(merged, now)]

        return self._submit(op, key=job_id)

    def prune(self, older_than: float) -> dict[str, int]:
        """Delete jobs that finished more than ``older_than`` seconds ago, with
        their samples and log lines. Running and pending jobs are never touched.

        Returns
        -------
        ``{"jobs": n, "samples": n, "logLines": n}`` deleted.
        """
        if not older_than >= 0:
            raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")

        def op(conn: Connection) -> tuple[dict[str, int], list[Event]]:
            batch.forget_rows(conn)  # rows read at the batch's start may be deleted here
            cutoff = self.clock() - older_than
            old = select(jobs.c.id).where(
                jobs.c.status.in_(sorted(FINISHED_STATUSES)) & (jobs.c.completed_at < cutoff)
            )
            n_samples = conn.execute(delete(samples).where(samples.c.job_id.in_(old))).rowcount
            n_logs = conn.execute(delete(log_lines).where(log_lines.c.job_id.in_(old))).rowcount
            n_jobs = conn.execute(delete(jobs).where(jobs.c.id.in_(old))).rowcount
            return {"jobs": n_jobs, "samples": n_samples, "logLines": n_logs}, []

        return self._submit(op)


def completed_event(job: Row, now: float) -> Event:
    """The ``JOB_COMPLETED`` event of a finished job row."""
    return Event(
        job["id"],
        job["completed_seq"],
        "JOB_COMPLETED",
        {
            "jobId": job["id"],
            "status": job["status"],
            "result": job["result"],
            "error": job["error"],
            "completedAt": format_ts(job["completed_at"]),
            "costSoFar": job_estimates(job, now).cost_so_far,
            "currency": job["currency"],
        },
    )


def _rate_changes(job: Row, progress: float, now: float) -> dict[str, Any]:
    if job["progress_at"] is None:
        return {}
    state = update_rate(
        RateState(job["ema_dp"], job["ema_dt"], job["ema_calls"]),
        progress - job["progress"],
        now - job["progress_at"],
    )
    return {"ema_dp": state.ema_dp, "ema_dt": state.ema_dt, "ema_calls": state.calls}


def _require_job(conn: Connection, job_id: str) -> Row:
    job = batch.lock_job(conn, job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    return job


def check_writable(job: Row, worker_id: str) -> None:
    """Raise :class:`WorkerMismatch` (403) when ``job`` is bound to another worker,
    :class:`JobFinished` (409) when it has finished."""
    bound = job["worker_id"]
    if bound is not None and bound != worker_id:
        raise WorkerMismatch(
            f"job {job['id']!r} is bound to worker {bound!r}; "
            f"worker {worker_id!r} may not write to it"
        )
    if job["status"] in FINISHED_STATUSES:
        raise JobFinished(f"job {job['id']!r} is {job['status']}; it takes no more updates")


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the database cannot be reached or used right now"
    (connection refused or lost, disk full, locked), from SQLAlchemy and from
    the drivers, whose cursors :mod:`sqlexec` uses directly."""
    import sqlite3

    from sqlalchemy import exc as sa_exc

    errors: list[type[BaseException]] = [
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sqlite3.OperationalError,
        sqlite3.InterfaceError,
    ]
    if "psycopg" in sys.modules:
        import psycopg

        errors += [psycopg.OperationalError, psycopg.InterfaceError]
    return tuple(errors)


def _store_unavailable() -> StoreUnavailable:
    """The 503 for a database error meaning "cannot reach it now"; the driver's
    text stays in the server log, not in the answer."""
    return StoreUnavailable("the database is unavailable; nothing was written, retry shortly")


def _cooperative_waits() -> None:
    """Make psycopg wait for PostgreSQL through gevent when gevent has patched this process.

    psycopg picks how to wait for the server when first imported
    (``psycopg.waiting``): its C function unless gevent has already patched
    ``select``. A gunicorn worker forked from a master that imported psycopg
    earlier (``jobwatch serve`` checks the database before forking) would
    otherwise block every greenlet for each query's round trip (measured:
    ingest fell to a fifth). ``wait_poll`` is what psycopg picks itself on
    Linux under gevent.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("select"):
        return
    from psycopg import waiting

    if waiting.wait is getattr(waiting, "wait_c", None):
        waiting.wait = waiting.wait_poll


def _create_schema(engine: Any) -> None:
    """Create missing tables and indexes; on PostgreSQL under an advisory lock,
    so several processes starting at once do not race on ``CREATE TABLE``."""
    if engine.dialect.name != "postgresql":
        metadata.create_all(engine)
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        metadata.create_all(conn)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
