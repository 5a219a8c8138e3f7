"""Storage of jobs, metric samples and log lines (SQLAlchemy Core).

SQLite by default: a file in WAL mode (``synchronous=FULL``: a commit is on
disk before the request is answered) or ``:memory:``. PostgreSQL (through
psycopg 3) for several server processes sharing one database: the same
schema and statements, with job rows locked ``FOR UPDATE`` so each job's
``seq`` stays gap-free whichever process writes. Writes go through a
:class:`~jobwatch.server.storage.writer.GroupCommitWriter`; reads use their own
connections (WAL lets them run beside the writer).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, delete, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from jobwatch.contract.requests import FINISHED_STATUSES, CompleteRequest, JobSpec, ProgressUpdate
from jobwatch.errors import (
    APIError,
    Conflict,
    JobNotFound,
    StoreUnavailable,
    ValidationError,
    first_line,
)
from jobwatch.server.core import pricing, rules, tenancy
from jobwatch.server.core import workers as core_workers
from jobwatch.server.core.alerts import alert_rules, hangs, receipt
from jobwatch.server.core.alerts.alert_rules import AlertRule
from jobwatch.server.core.alerts.nccl_hang import NcclHangRule
from jobwatch.server.core.job_row import JobChanges, JobRow, with_changes
from jobwatch.server.core.quotas import Quotas, StoredTotal, data_bytes, log_bytes
from jobwatch.server.core.serialize import Event
from jobwatch.server.core.tenancy import ADMIN, Principal
from jobwatch.server.storage import batch, prices, queries, rollups
from jobwatch.server.storage import workers as stored_workers
from jobwatch.server.storage.files import prepare_sqlite_file
from jobwatch.server.storage.schema import (
    add_missing_columns,
    alerts,
    applied_updates,
    encode_json,
    jobs,
    log_lines,
    metadata,
    samples,
    scalars,
)
from jobwatch.server.storage.writer import GroupCommitWriter, Operation, R

log = logging.getLogger(__name__)

Row = dict[str, Any]
Clock = Callable[[], float]


@dataclass(frozen=True)
class ProgressReply:
    """What ``POST /progress`` answers, computed inside the write."""

    job: JobRow
    body: dict[str, Any]


DEFAULT_TIMEOUT = 5.0
"""Seconds PostgreSQL may take to connect or answer, and a write to commit
(``--database-timeout``; see :mod:`jobwatch.server.storage.postgres`)."""
SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite write waits for another process's write lock."""

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
    alert_rules:
        The ``--alert`` rules checked on every sample
        (:func:`jobwatch.server.core.alerts.alert_rules.parse_rule`).
    nccl_hang:
        The NCCL-hang signature checked on every sample
        (:mod:`jobwatch.server.core.alerts.nccl_hang`); ``None``: off.
    quotas:
        What the server may store (:class:`~jobwatch.server.core.quotas.Quotas`);
        default: its defaults.
    default_currency:
        The currency of a job created without one.
    timeout:
        Seconds PostgreSQL may take to connect or to answer, and a write may
        wait for its commit (a SQLite file's writes wait up to
        :data:`SQLITE_BUSY_TIMEOUT` more, for another process's lock); past
        it the call raises :class:`~jobwatch.errors.StoreUnavailable`.
        ``None``: no limit (maintenance such as ``jobwatch prune``).

    A PostgreSQL that cannot be reached does not stop the store from being
    made: its schema is created by the first read or write that reaches it,
    and until then each raises :class:`~jobwatch.errors.StoreUnavailable`
    (so a server process started during an outage serves once it is over).

    Raises
    ------
    jobwatch.errors.UnsafeDatabasePath
        A SQLite file in a directory every user may write to.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = time.time,
        alert_rules: tuple[AlertRule, ...] = (),
        nccl_hang: NcclHangRule | None = None,
        quotas: Quotas | None = None,
        default_currency: str = rules.DEFAULT_CURRENCY,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = database_url(url)
        self.default_currency = default_currency
        self.timeout = timeout
        self.clock = clock
        self.alert_rules = alert_rules
        self.nccl_hang = nccl_hang
        self.quotas = quotas or Quotas()
        self._stored = StoredTotal(_stored_bytes)
        self._tenant_stored: dict[str, StoredTotal] = {}
        self._tenant_lock = threading.Lock()
        parsed = make_url(self.url)
        self._memory = parsed.get_backend_name() == "sqlite" and parsed.database in (
            None,
            "",
            ":memory:",
        )
        self._lock: Any = threading.RLock() if self._memory else None
        wait_timeout = None if timeout is None else timeout + SQLITE_BUSY_TIMEOUT
        if self._memory:
            self.engine = create_engine(
                "sqlite://",
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        elif parsed.get_backend_name() == "sqlite":
            prepare_sqlite_file(Path(parsed.database or ""))  # 0600, in a directory not /tmp
            self.engine = create_engine(
                self.url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            from jobwatch.server.storage import postgres

            _cooperative_waits()
            self.engine = create_engine(self.url, **postgres.engine_options(timeout))
            postgres.install_deadline(self.engine, timeout)
            wait_timeout = timeout
        self._unavailable = _unavailable_errors()  # after the engine: the driver is loaded
        self._refused = _refused_errors()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        if self.engine.dialect.name == "postgresql":
            try:
                self._ensure_schema()
            except StoreUnavailable as exc:
                log.warning("%s; serving anyway, the schema is created once it answers", exc)
        else:
            _create_schema(self.engine)
            self._schema_ready = True
        self._publish: Callable[[list[Event]], None] = lambda events: None
        self._writer = GroupCommitWriter(
            self.engine,
            self._publish_events,
            lock=self._lock,
            begin=batch.begin,
            finish=batch.finish,
            unavailable=self._unavailable,
            wait_timeout=None if self._memory else wait_timeout,
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
        with self._connected(self.engine.connect) as conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction of its own, outside the group-commit
        writer: for rare writes such as tenants and tokens (under the shared
        lock for ``:memory:``). Commits when the block ends, rolls back on an error.

        Raises
        ------
        StoreUnavailable
            The database cannot be reached (503).
        """
        with self._connected(self.engine.begin) as conn:
            yield conn

    @contextlib.contextmanager
    def _connected(
        self, open_connection: Callable[[], contextlib.AbstractContextManager[Connection]]
    ) -> Iterator[Connection]:
        """``open_connection()`` (``engine.connect`` or ``engine.begin``) under the
        shared lock for ``:memory:``, with the database's errors turned into the
        contract's (503 unavailable, 400 a value it cannot store)."""
        self._ensure_schema()
        try:
            if self._lock is not None:
                with self._lock, open_connection() as conn:
                    yield conn
            else:
                with open_connection() as conn:
                    yield conn
        except self._unavailable as exc:
            raise _store_unavailable() from exc
        except self._refused as exc:
            raise _refused_value(exc) from exc

    def _ensure_schema(self) -> None:
        """Create the schema if this store has not yet done so.

        Raises
        ------
        StoreUnavailable
            The database cannot be reached (503).
        """
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            try:
                _create_schema(self.engine)
            except self._unavailable as exc:
                raise StoreUnavailable(
                    f"the database is unavailable ({first_line(exc)}); retry shortly"
                ) from exc
            self._schema_ready = True

    def ping(self) -> None:
        """Run one trivial query (``/api/ready``).

        Raises
        ------
        StoreUnavailable
            The database cannot be reached or did not answer in time (503).
        """
        with self.read() as conn:
            conn.execute(select(1))

    def _submit(self, op: Operation[R], *, key: str = "") -> R:
        self._ensure_schema()
        try:
            return self._writer.submit(op, key=key)
        except self._unavailable as exc:
            raise _store_unavailable() from exc
        except self._refused as exc:
            raise _refused_value(exc) from exc

    def close(self) -> None:
        """Finish queued writes and release the database."""
        self._writer.close()
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------

    def create_job(
        self,
        spec: JobSpec,
        job_id: str | None,
        *,
        upsert: bool,
        principal: Principal = ADMIN,
        owner: str | None = None,
    ) -> tuple[JobRow, bool]:
        """Create a job, or with ``upsert`` update the fields ``spec`` gives.

        ``principal`` is who asks (:mod:`jobwatch.server.core.tenancy`; it has
        passed :func:`~jobwatch.server.core.tenancy.check_create` for the id) and
        ``owner`` the tenant a new job belongs to (``None``: the operator's).

        Returns
        -------
        (job row, created)

        Raises
        ------
        Conflict
            Without ``upsert``, when the id exists (409 ``job_exists``); with
            it, when the principal may not write the existing job.
        WorkerMismatch
            With ``upsert``, when ``spec.workerId`` differs from the bound worker.
        QuotaExceeded
            The server's or the owner's job quota is reached (507).
        """
        target = job_id or spec.id or uuid.uuid4().hex[:12]

        def op(conn: Connection) -> tuple[tuple[JobRow, bool], list[Event]]:
            now = self.clock()
            existing = batch.lock_job(conn, target)
            if existing is None:
                if owner is not None and principal.quotas is not None:
                    principal.quotas.check_new_job(owner, tenant_job_count(conn, owner))
                self.quotas.check_new_job(_job_count(conn))
                row = rules.new_job(target, spec, now, self.default_currency)
                row["tenant"] = owner
                batch.insert_job(conn, row)
                return (row, True), []
            if not upsert:
                raise Conflict(f"job {target!r} already exists; PUT /api/jobs/{target} updates it")
            tenancy.check_upsert(principal, existing["tenant"], target)
            changes = rules.spec_changes(existing, spec, now)
            if changes:
                _store_segment(conn, existing, changes)
                batch.update_job(conn, target, changes)
            return (with_changes(existing, changes), False), []

        return self._submit(op, key=target)

    def apply_progress(
        self, job_id: str, update: ProgressUpdate, principal: Principal = ADMIN
    ) -> ProgressReply:
        """Apply one progress update (:func:`jobwatch.server.core.rules.apply_progress`)
        for ``principal``; return the reply once it is committed.

        Raises
        ------
        JobNotFound, WorkerMismatch, JobFinished
            404 (also a job ``principal`` may not write), 403, 409; nothing is written.
        QuotaExceeded
            507: a quota of the server or of the job's tenant; nothing is written.
        """

        def op(conn: Connection) -> tuple[ProgressReply, list[Event]]:
            job = _require_job(conn, job_id, principal)
            applied = None
            if update.update_id is not None:
                applied = batch.applied_reply(conn, job_id, update.update_id)
            worker = None
            if update.rank is not None:
                worker = stored_workers.read(conn, job_id, update.rank)
            outcome = rules.apply_progress(
                job,
                update,
                self.clock(),
                applied_reply=applied,
                alert_on=self.alert_rules,
                nccl_hang=self.nccl_hang,
                worker=worker,
            )
            gpus_json = None if outcome.sample is None else encode_json(outcome.sample["gpus"])
            added = log_bytes(update) if outcome.log_rows else 0
            data = data_bytes(gpus_json, [row["name"] for row in outcome.scalar_rows])
            if added:
                self.quotas.check_logs(job_id, job["log_bytes"], added)
            if added or data:
                self.quotas.check_total(self._stored.get(conn), added + data)
                self._check_tenant_bytes(conn, job["tenant"], principal, added + data)
                outcome.changes["log_bytes"] = job["log_bytes"] + added
                outcome.changes["data_bytes"] = job["data_bytes"] + data
                self._stored.add(added + data)
            if outcome.sample is not None:
                batch.insert_sample(conn, {**outcome.sample, "gpus": gpus_json})
            if outcome.log_rows:
                batch.insert_logs(conn, outcome.log_rows, outcome.log_lines)
            if outcome.scalar_rows:
                batch.insert_scalars(conn, outcome.scalar_rows)
            if outcome.alert_rows:
                batch.insert_alerts(conn, outcome.alert_rows)
            if outcome.applied_update is not None:
                batch.remember_update(conn, outcome.applied_update, job["seq"])
            if outcome.worker is not None:
                stored_workers.write(conn, outcome.worker, exists=worker is not None)
                shrunk = outcome.changes.get("world_size")
                if shrunk is not None and job["world_size"] and shrunk < job["world_size"]:
                    outcome.recount |= stored_workers.leave_beyond(conn, job_id, shrunk)
                if outcome.recount:
                    n_workers, n_nodes = stored_workers.counts(conn, job_id)
                    outcome.changes.update(n_workers=n_workers, n_nodes=n_nodes)
                    outcome.job = with_changes(
                        outcome.job, {"n_workers": n_workers, "n_nodes": n_nodes}
                    )
            if outcome.changes:
                _store_segment(conn, job, outcome.changes)
                batch.update_job(conn, job_id, outcome.changes)
            return ProgressReply(outcome.job, outcome.reply), outcome.events

        return self._submit(op, key=job_id)

    def _check_tenant_bytes(
        self, conn: Connection, tenant: str | None, principal: Principal, added: int
    ) -> None:
        """Refuse ``added`` bytes past the quota of the job's tenant (as the principal
        carries it: the admin writes past tenants' quotas); count them if taken."""
        quotas = principal.quotas
        if tenant is None or quotas is None or not quotas.max_bytes:
            return
        with self._tenant_lock:
            stored = self._tenant_stored.get(tenant)
            if stored is None:
                stored = self._tenant_stored[tenant] = StoredTotal(
                    functools.partial(_tenant_bytes_of, tenant)
                )
        quotas.check_bytes(tenant, stored.get(conn), added)
        stored.add(added)

    def complete_job(
        self, job_id: str, request: CompleteRequest, principal: Principal = ADMIN
    ) -> JobRow:
        """Finish a job as completed, failed or cancelled for ``principal``; emits
        ``JOB_COMPLETED`` (:func:`jobwatch.server.core.rules.complete_job`). Returns
        the updated job row.

        Raises
        ------
        JobNotFound, WorkerMismatch, JobFinished
            404 (also a job ``principal`` may not write), 403, 409; nothing is written.
        """

        def op(conn: Connection) -> tuple[JobRow, list[Event]]:
            job = _require_job(conn, job_id, principal)
            now = self.clock()

            def receipt_of(finished: JobRow) -> dict[str, Any]:
                return self._receipt(conn, finished, now)

            changes, events, alert_rows = rules.complete_job(job, request, now, receipt_of)
            if alert_rows:
                batch.insert_alerts(conn, alert_rows)
            batch.update_job(conn, job_id, changes)
            if job["world_size"] is not None:
                stored_workers.finish(conn, job_id)
            return with_changes(job, changes), events

        return self._submit(op, key=job_id)

    def _receipt(self, conn: Connection, job: JobRow, now: float) -> dict[str, Any]:
        batch.flush(conn)  # the batch's samples and training metrics first
        ranges = queries.scalar_ranges(conn, job["id"])
        gpus = receipt.gpu_count(queries.latest_sample(conn, job["id"]))
        return receipt.receipt(job, now, ranges, gpus)

    def job_receipt(self, job_id: str) -> dict[str, Any]:
        """The receipt of ``job_id`` (:func:`jobwatch.server.core.alerts.receipt.receipt`):
        a finished job's, or a running one's so far.

        Raises
        ------
        JobNotFound
            No such job (404).
        """
        with self.read() as conn:
            job = queries.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            ranges = queries.scalar_ranges(conn, job_id)
            gpus = receipt.gpu_count(queries.latest_sample(conn, job_id))
        return receipt.receipt(job, self.clock(), ranges, gpus)

    def stalled_candidates(self, stall_after: float) -> list[str]:
        """Ids of running jobs, not marked stalled, silent for more than
        ``stall_after`` seconds (the lowest threshold any job has)."""
        cutoff = self.clock() - stall_after
        query = select(jobs.c.id).where(
            (jobs.c.status == "running") & (jobs.c.stalled == 0) & (jobs.c.updated_at < cutoff)
        )
        with self.read() as conn:
            return [row[0] for row in conn.execute(query)]

    def distributed_running(self) -> list[str]:
        """Ids of running distributed jobs (those with a world size)."""
        query = select(jobs.c.id).where(
            (jobs.c.status == "running") & jobs.c.world_size.is_not(None)
        )
        with self.read() as conn:
            return [row[0] for row in conn.execute(query)]

    def check_workers(self, job_id: str, silent_after: float) -> int:
        """Mark the workers of ``job_id`` that went silent, and flag or clear its
        stragglers (:func:`jobwatch.server.core.workers.silent`,
        :func:`~jobwatch.server.core.workers.stragglers`), each with its alert;
        under the job's row lock. Returns how many workers changed."""

        def op(conn: Connection) -> tuple[int, list[Event]]:
            now = self.clock()
            job = batch.lock_job(conn, job_id)
            if job is None or job["world_size"] is None:
                return 0, []
            rows = stored_workers.job_workers(conn, job_id)
            changed = core_workers.silent(job, rows, now, silent_after)
            by_rank = {row["rank"]: row for row in rows}
            for row, _ in changed:
                by_rank[row["rank"]] = row
            changed += core_workers.stragglers(list(by_rank.values()))
            if not changed:
                return 0, []
            changes: JobChanges = {}
            rate = job["node_rate"]
            for row, _ in changed:
                stored_workers.write(conn, row, exists=True)
                if row["status"] == "silent" and row["price_per_hour"] and rate is not None:
                    before = next(r for r in rows if r["rank"] == row["rank"])
                    if before["status"] == "running":
                        rate = max(0.0, rate - row["price_per_hour"])
            if rate != job["node_rate"]:
                changes.update(node_rate=rate, **pricing.price_change(job, rate, now))
                _store_segment(conn, job, changes)
            alert_rows, events, counts = alert_rules.alert_changes(
                job, [alert for _, alert in changed], now, job["seq"]
            )
            batch.insert_alerts(conn, alert_rows)
            batch.update_job(conn, job_id, {**changes, **counts})
            return len(changed), events

        return self._submit(op, key=job_id)

    def mark_stalled(self, job_id: str, stall_after: float) -> bool:
        """Mark ``job_id`` stalled if it is (:func:`jobwatch.server.core.alerts.alert_rules.stall`),
        with ``JOB_STALLED`` and a ``JOB_ALERT``; under the job's row lock, so of
        several processes only one marks it. Returns whether this call did."""

        def op(conn: Connection) -> tuple[bool, list[Event]]:
            now = self.clock()
            job = batch.lock_job(conn, job_id)
            if job is None:
                return False, []
            stalled = alert_rules.stall(job, now, stall_after)
            if stalled is None:
                return False, []
            changes, events, alert = stalled
            changes.update(hangs.end_hang(job, job["updated_at"]))  # silent now: a stall
            rows, alert_events, counts = alert_rules.alert_changes(
                with_changes(job, changes), [alert], now, changes["seq"]
            )
            batch.insert_alerts(conn, rows)
            batch.update_job(conn, job_id, {**changes, **counts})
            return True, events + alert_events

        return self._submit(op, key=job_id)

    def hung_candidates(self, hang_after: float) -> list[str]:
        """Ids of running jobs, neither stalled nor marked hung, whose training code
        said when it last called (``lastCallAt``) and has been quiet for more than
        ``hang_after`` seconds (the lowest threshold any job has)."""
        cutoff = self.clock() - hang_after
        quiet = (jobs.c.progress_at.is_(None)) | (jobs.c.progress_at < cutoff)
        query = select(jobs.c.id).where(
            (jobs.c.status == "running")
            & (jobs.c.stalled == 0)
            & (jobs.c.hung == 0)
            & (jobs.c.last_call_at < cutoff)
            & quiet
        )
        with self.read() as conn:
            return [row[0] for row in conn.execute(query)]

    def mark_hung(self, job_id: str, hang_after: float) -> bool:
        """Mark ``job_id`` hung if it is (:func:`jobwatch.server.core.alerts.hangs.hang`), with
        its ``JOB_ALERT``; under the job's row lock, so of several processes only
        one marks it. Returns whether this call did."""

        def op(conn: Connection) -> tuple[bool, list[Event]]:
            now = self.clock()
            job = batch.lock_job(conn, job_id)
            if job is None:
                return False, []
            hung = hangs.hang(job, now, hang_after)
            if hung is None:
                return False, []
            changes, alert = hung
            rows, events, counts = alert_rules.alert_changes(job, [alert], now, job["seq"])
            batch.insert_alerts(conn, rows)
            batch.update_job(conn, job_id, {**changes, **counts})
            return True, events

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
            conn.execute(delete(applied_updates).where(applied_updates.c.job_id.in_(old)))
            conn.execute(delete(scalars).where(scalars.c.job_id.in_(old)))
            rollups.delete_jobs(conn, old)
            conn.execute(delete(alerts).where(alerts.c.job_id.in_(old)))
            prices.delete_jobs(conn, old)
            n_jobs = conn.execute(delete(jobs).where(jobs.c.id.in_(old))).rowcount
            self._stored.forget()
            with self._tenant_lock:
                self._tenant_stored.clear()
            return {"jobs": n_jobs, "samples": n_samples, "logLines": n_logs}, []

        return self._submit(op)


def _store_segment(conn: Connection, job: JobRow, changes: JobChanges) -> None:
    """Store the price segment that ``changes`` close on ``job``, if any
    (:func:`jobwatch.server.core.pricing.closed_segment`)."""
    segment = pricing.closed_segment(job, changes)
    if segment is not None:
        prices.insert(conn, segment)


def _stored_bytes(conn: Connection) -> int:
    batch.flush(conn)  # the batch's changed job rows first: their byte counts are in the sum
    total = conn.execute(select(func.coalesce(func.sum(jobs.c.log_bytes + jobs.c.data_bytes), 0)))
    return int(total.scalar_one())


def tenant_job_count(conn: Connection, tenant: str) -> int:
    """Jobs ``tenant`` stores now (a new job row is inserted at once, not batched)."""
    query = select(func.count()).select_from(jobs).where(jobs.c.tenant == tenant)
    return int(conn.execute(query).scalar_one())


def tenant_bytes(conn: Connection, tenant: str) -> int:
    """Bytes of log text, samples and metrics of ``tenant``'s jobs
    (the ``log_bytes`` and ``data_bytes`` the quotas count)."""
    batch.flush(conn)
    total = func.coalesce(func.sum(jobs.c.log_bytes + jobs.c.data_bytes), 0)
    return int(conn.execute(select(total).where(jobs.c.tenant == tenant)).scalar_one())


def _job_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def _tenant_bytes_of(tenant: str, conn: Connection) -> int:
    return tenant_bytes(conn, tenant)


def _require_job(conn: Connection, job_id: str, principal: Principal = ADMIN) -> JobRow:
    """The job, locked for this transaction; one ``principal`` may not write is missing."""
    job = batch.lock_job(conn, job_id)
    if job is None or not tenancy.can_write(principal, job["tenant"], job_id):
        raise JobNotFound(f"no job with id {job_id!r}")
    return job


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


def _refused_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the database refused this request's data" (a value it
    cannot store, a duplicate key written by another process), from SQLAlchemy
    and from the drivers."""
    import sqlite3

    from sqlalchemy import exc as sa_exc

    errors: list[type[BaseException]] = [
        sa_exc.DataError,
        sa_exc.IntegrityError,
        sqlite3.DataError,
        sqlite3.IntegrityError,
    ]
    if "psycopg" in sys.modules:
        import psycopg

        errors += [psycopg.DataError, psycopg.IntegrityError]
    return tuple(errors)


def _refused_value(exc: BaseException) -> APIError:
    """The 400 (a value the database cannot store) or 409 (a row another process
    wrote at the same moment) for a refused write; never a 500."""
    from sqlalchemy import exc as sa_exc

    integrity = isinstance(exc, sa_exc.IntegrityError) or "Integrity" in type(exc).__name__
    if integrity:
        return Conflict("the request conflicts with data written at the same moment; retry it")
    return ValidationError(
        f"the database refused a value of this request ({first_line(exc)}); nothing was written"
    )


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
    Linux under gevent. Connecting (``wait_conn``) uses the selector class
    psycopg bound at import, which would be the unpatched one and hold every
    greenlet for as long as a connection takes (up to the connect timeout
    against a stopped server): it gets gevent's.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("select"):
        return
    import selectors

    from psycopg import waiting

    if waiting.wait is getattr(waiting, "wait_c", None):
        waiting.wait = waiting.wait_poll
    if getattr(waiting, "DefaultSelector", None) is not selectors.DefaultSelector:
        setattr(waiting, "DefaultSelector", selectors.DefaultSelector)  # noqa: B010  # not exported


def _create_schema(engine: Any) -> None:
    """Create missing tables, indexes and columns; on PostgreSQL under an advisory
    lock, so several processes starting at once do not race on ``CREATE TABLE``.
    Roll-up tables new to an existing database are filled from its raw rows."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        new_rollups = rollups.missing_tables(conn)
        metadata.create_all(conn)
        add_missing_columns(conn)
        if new_rollups:
            with _no_deadline(conn):  # filling roll-ups of a large database takes long
                rollups.backfill(conn, new_rollups)


@contextlib.contextmanager
def _no_deadline(conn: Connection) -> Iterator[None]:
    """Lift PostgreSQL's statement timeout and the answer deadline inside this
    transaction (:mod:`jobwatch.server.storage.postgres`)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.execute(text("SET LOCAL statement_timeout = 0"))
    driver = conn.connection.driver_connection
    saved = getattr(driver, "answer_timeout", None)
    driver.answer_timeout = None  # type: ignore[union-attr]
    try:
        yield
    finally:
        driver.answer_timeout = saved  # type: ignore[union-attr]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
