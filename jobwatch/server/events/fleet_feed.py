"""The fleet feed: ``subscribe:jobs`` streams compact summaries of every job.

One :class:`FleetFeed` per server process listens to every job's events
(those committed here and, with Redis, in every other process), notes which
jobs changed, and every :data:`INTERVAL` seconds reads those jobs' rows once,
builds their summaries once and hands each fleet subscriber the ones its
``status`` filter keeps, as one ``JOBS_CHANGED`` message. So a job is
summarised at most four times a second whatever its update rate, and the cost
of a tick does not grow with the number of subscribers beyond one filter and
one send each.

What one subscription costs is bounded whatever the jobs hold: the feed reads
only the columns a summary shows (never a result, never the newest progress
event beyond its two GPU figures), a summary's free text (name, operation,
worker id) is cut to :data:`SUMMARY_TEXT_BYTES` (:func:`bounded_text`), and a
large fleet is read and sent :data:`PAGE` jobs at a time: the first page before
the ``subscribed`` answer, the rest by the connection's sender as the client
takes them, so a fleet never has to fit in a subscriber's send queue at once.

``seq`` of ``JOBS_CHANGED`` is the server time of the tick in milliseconds; a
client that resumes with ``since`` gets every job changed after ``since``
minus :data:`RESUME_MARGIN` (summaries are whole states, so a repeat is
harmless, and the margin covers writes that committed late or on a process
whose clock runs a little behind).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Protocol, overload

from sqlalchemy import JSON, and_, cast, or_, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from jobwatch.contract.requests import format_ts
from jobwatch.server.core.rules import job_estimates
from jobwatch.server.core.serialize import dumps
from jobwatch.server.core.tenancy import Scope
from jobwatch.server.core.text import bounded_text
from jobwatch.server.events.broker import ALL_JOBS, Broker
from jobwatch.server.events.turns import let_others_run
from jobwatch.server.storage.schema import jobs
from jobwatch.server.storage.store import Store

__all__ = [
    "FLEET",
    "INTERVAL",
    "MAX_INITIAL",
    "PAGE",
    "RESUME_MARGIN",
    "SUMMARY_TEXT_BYTES",
    "FleetFeed",
    "FleetSubscriber",
    "bounded_text",
    "summary",
]

log = logging.getLogger(__name__)

Row = dict[str, Any]

FLEET = "jobs"
"""The ``subscriptionId`` of a fleet subscription in ``subscribed``/``unsubscribed``."""
INTERVAL = 0.25
"""Seconds between two ticks: a job's summary goes out at most 4 times a second."""
RESUME_MARGIN = 5.0
"""Seconds before ``since`` a resumed fleet subscription starts from."""
PAGE = 100
"""Most summaries per ``JOBS_CHANGED`` message, and most jobs read at once: a page is
read and encoded in one turn of the process (see :mod:`jobwatch.server.events.turns`),
so a subscription's first pages hold other requests for one page at a time."""
MAX_INITIAL = 10_000
"""Most jobs (newest first) a new fleet subscription receives, in pages of :data:`PAGE`."""
SUMMARY_TEXT_BYTES = 256
"""Most UTF-8 bytes of a summary's ``name``, ``currentOperation`` and ``workerId``:
longer text is cut on a character and ends in ``…`` (:func:`bounded_text`). With
it a summary stays under about 1.5 KB, a page of :data:`PAGE` under 1 MB."""

_SUMMARY_COLUMNS = (
    "id",
    "name",
    "status",
    "progress",
    "current_operation",
    "worker_id",
    "price_per_hour",
    "currency",
    "created_at",
    "started_at",
    "updated_at",
    "completed_at",
    "progress_at",
    "ema_dp",
    "ema_dt",
    "ema_calls",
    "resumed_from",
    "stalled",
    "n_alerts",
    "world_size",
    "n_workers",
    "n_nodes",
    "node_cost",
    "node_rate",
    "tenant",
    "price_cost",
    "price_from",
    "budget",
)
"""The ``jobs`` columns a summary needs (with the two GPU figures of the newest
progress event, read by :func:`_summary_query`)."""


EVERY_JOB = Scope(everything=True)
"""The scope of a subscriber that may see every job (the admin's)."""


class FleetSubscriber(Protocol):
    """A fleet subscription's end: takes ``JOBS_CHANGED`` text without blocking."""

    def deliver_fleet(self, message: bytes) -> None:
        """Queue one ``JOBS_CHANGED`` message (never block)."""

    def deliver_fleet_pages(self, pages: Iterator[bytes]) -> None:
        """Queue ``pages``, to be read and sent one message at a time in order
        after what is queued (never block)."""


def summary(job: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A job's summary for the fleet view: ``{id, name, status, progress,
    currentOperation, timeRemaining (s), costSoFar, estimatedTotalCost, currency,
    pricePerHour, gpuUtilization (%), gpuTemperature (Celsius), updatedAt,
    startedAt, completedAt, createdAt, workerId, stalled, alerts, worldSize, workers,
    nodes, budget}`` (``worldSize``, ``workers``, ``nodes`` and ``budget`` as in the
    job object: a distributed job's ranks, its reporting workers and their nodes;
    the most the job should cost, in its currency).

    ``job`` holds the summary's columns (:data:`_SUMMARY_COLUMNS`) and either
    ``gpu_utilization`` and ``gpu_temperature`` or a whole ``progress_event``.
    ``name``, ``currentOperation`` and ``workerId`` are cut to
    :data:`SUMMARY_TEXT_BYTES` (:func:`bounded_text`).
    """
    estimates = job_estimates(job, now)  # type: ignore[arg-type]  # reads only the columns above
    if "progress_event" in job:
        metrics = (job["progress_event"] or {}).get("metrics") or {}
    else:
        metrics = {
            "gpuUtilization": job["gpu_utilization"],
            "gpuTemperature": job["gpu_temperature"],
        }
    return {
        "id": job["id"],
        "name": bounded_text(job["name"], SUMMARY_TEXT_BYTES),
        "status": job["status"],
        "progress": job["progress"],
        "currentOperation": bounded_text(job["current_operation"], SUMMARY_TEXT_BYTES),
        "timeRemaining": estimates.time_remaining,
        "costSoFar": estimates.cost_so_far,
        "estimatedTotalCost": estimates.estimated_total_cost,
        "currency": job["currency"],
        "pricePerHour": job["price_per_hour"],
        "gpuUtilization": metrics.get("gpuUtilization"),
        "gpuTemperature": metrics.get("gpuTemperature"),
        "updatedAt": format_ts(job["updated_at"]),
        "startedAt": format_ts(job["started_at"]),
        "completedAt": format_ts(job["completed_at"]),
        "createdAt": format_ts(job["created_at"]),
        "workerId": bounded_text(job["worker_id"], SUMMARY_TEXT_BYTES),
        "stalled": bool(job["stalled"]),
        "alerts": job["n_alerts"],
        "worldSize": job["world_size"],
        "workers": job["n_workers"],
        "nodes": job["n_nodes"],
        "budget": job["budget"],
    }


class FleetFeed:
    """Coalesces job changes into ``JOBS_CHANGED`` for the fleet subscribers of this process.

    Parameters
    ----------
    store, broker, clock:
        The app's; the feed subscribes to every job's events on ``broker``
        while it has subscribers.
    interval:
        Seconds between ticks (:data:`INTERVAL`).
    """

    def __init__(
        self, store: Store, broker: Broker, clock: Callable[[], float], interval: float = INTERVAL
    ) -> None:
        self.store, self.broker, self.clock, self.interval = store, broker, clock, interval
        self._lock = threading.Lock()
        self._subscribers: dict[FleetSubscriber, tuple[str | None, Scope]] = {}
        self._dirty: set[str] = set()
        self._everything = False
        # Each job's status as last summarised here: a job that leaves a
        # subscriber's status filter is sent to it once more, so that a view
        # of running jobs sees one finish instead of showing it running forever.
        self._statuses: dict[str, str] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- subscriptions ---------------------------------------------------------

    def subscribe(
        self,
        subscriber: FleetSubscriber,
        status: str | None,
        since: int | None,
        scope: Scope = EVERY_JOB,
    ) -> int:
        """Add ``subscriber`` (jobs of ``status`` only, or all; only the jobs ``scope``
        shows, :func:`jobwatch.server.core.tenancy.list_scope`) and send it, in this
        order, its ``subscribed`` answer and what it should see first: the jobs
        changed after ``since`` (ms), or every job (newest first, at most
        :data:`MAX_INITIAL`), a page of :data:`PAGE` at a time. The first page is
        read here; the rest are read as the subscriber's sender gets to them.
        Returns the answer's ``seq``.

        Raises
        ------
        jobwatch.errors.StoreUnavailable
            The database cannot be read (nothing was subscribed).
        """
        now = self.clock()
        seq = int(now * 1000)
        start = None if since is None else since / 1000 - RESUME_MARGIN
        pages = self._pages(status, start, now, MAX_INITIAL, scope)
        first = next(pages, [])
        with self._lock:  # a tick that sees this subscriber delivers after these
            subscriber.deliver_fleet(
                dumps({"type": "subscribed", "subscriptionId": FLEET, "seq": seq})
            )
            if first:
                subscriber.deliver_fleet(_jobs_changed_page(first, seq))
            if len(first) == PAGE:
                subscriber.deliver_fleet_pages(self._later_pages(pages, seq))
            if not self._subscribers:
                self.broker.subscribe(ALL_JOBS, self)
            self._subscribers[subscriber] = (status, scope)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobwatch-fleet", daemon=True
                )
                self._thread.start()
        return seq

    def _later_pages(self, pages: Iterator[list[dict[str, Any]]], seq: int) -> Iterator[bytes]:
        """The pages after the first as ``JOBS_CHANGED`` messages, read when asked
        for; a database that goes away ends them with an ``error`` for ``jobs``."""
        try:
            while True:
                let_others_run()  # each page is read and encoded in a turn of its own
                page = next(pages, None)
                if page is None:
                    return
                yield _jobs_changed_page(page, seq)
        except Exception as exc:
            log.warning("jobwatch: the fleet feed could not read jobs: %s", exc)
            error = {"code": "store_unavailable", "message": str(exc), "details": []}
            yield dumps({"type": "error", "subscriptionId": FLEET, "error": error})

    def unsubscribe(self, subscriber: FleetSubscriber) -> None:
        """Remove ``subscriber`` (no error if it was not subscribed)."""
        with self._lock:
            if subscriber not in self._subscribers:
                return
            del self._subscribers[subscriber]
            if not self._subscribers:
                self.broker.unsubscribe(ALL_JOBS, self)

    def subscriber_count(self) -> int:
        """Fleet subscriptions in this process."""
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # -- broker side (the feed is the broker's subscriber to every job) --------------

    def deliver(self, job_id: str, seq: int, message: bytes) -> None:
        """Note that ``job_id`` changed (called by the broker; never blocks)."""
        with self._lock:
            self._dirty.add(job_id)

    def resync(self, job_id: str, seq: int) -> None:
        """Events may have been lost between processes: resend ``job_id`` (``"*"``: all)."""
        with self._lock:
            if job_id == ALL_JOBS:
                self._everything = True
            else:
                self._dirty.add(job_id)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # the database away for a moment: next tick
                log.warning("jobwatch: the fleet feed could not read jobs: %s", exc)

    def tick(self) -> int:
        """Send the summaries of the jobs changed since the last tick, read and sent
        :data:`PAGE` jobs at a time (all jobs, at most :data:`MAX_INITIAL`, after a
        resync); returns how many."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            everything, self._everything = self._everything, False
            subscribers = list(self._subscribers.items())
        if not subscribers or not (dirty or everything):
            return 0
        now = self.clock()
        seq = int(now * 1000)
        if everything:
            pages = self._pages(None, None, now, MAX_INITIAL, EVERY_JOB, owners=True)
        else:
            pages = self._changed(sorted(dirty), now)
        sent = 0
        for owned in pages:
            summaries = [s for _, s in owned]
            owners = {s["id"]: tenant for tenant, s in owned}
            before = self._note_statuses(summaries)
            for subscriber, (status, scope) in subscribers:
                kept = [
                    s
                    for s in summaries
                    if scope.shows(owners[s["id"]])
                    and (status is None or status in (s["status"], before.get(s["id"])))
                ]
                if kept:
                    subscriber.deliver_fleet(_jobs_changed_page(kept, seq))
            sent += len(summaries)
        return sent

    def _note_statuses(self, summaries: list[dict[str, Any]]) -> dict[str, str]:
        """Record each job's status; return the statuses they had before (where known)."""
        with self._lock:
            before = {s["id"]: self._statuses.get(s["id"]) for s in summaries}
            self._statuses.update((s["id"], s["status"]) for s in summaries)
        return {job_id: status for job_id, status in before.items() if status is not None}

    def _changed(self, ids: list[str], now: float) -> Iterator[list[tuple[str | None, Row]]]:
        """(tenant, summary) of the jobs ``ids``, :data:`PAGE` at a time."""
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            with self.store.read() as conn:
                query = _summary_query(conn).where(jobs.c.id.in_(chunk))
                rows = list(conn.execute(query).mappings())
            yield [(row["tenant"], summary(dict(row), now)) for row in rows]

    @overload
    def _pages(
        self, status: str | None, start: float | None, now: float, most: int, scope: Scope
    ) -> Iterator[list[Row]]: ...

    @overload
    def _pages(
        self,
        status: str | None,
        start: float | None,
        now: float,
        most: int,
        scope: Scope,
        *,
        owners: Literal[True],
    ) -> Iterator[list[tuple[str | None, Row]]]: ...

    def _pages(
        self,
        status: str | None,
        start: float | None,
        now: float,
        most: int,
        scope: Scope,
        *,
        owners: bool = False,
    ) -> Iterator[Any]:
        """Summaries of the jobs of ``status`` (all: ``None``) that ``scope`` shows,
        updated since ``start``, newest first, :data:`PAGE` per page and at most
        ``most`` in all (with ``owners``: as ``(tenant, summary)`` pairs); each page
        is read when asked for (keyset pagination on ``updated_at``, ``id``)."""
        after: tuple[float, str] | None = None
        left = most
        while left > 0:
            with self.store.read() as conn:
                query = _summary_query(conn)
                if not scope.everything:
                    query = query.where(jobs.c.tenant == scope.tenant)
                if status is not None:
                    query = query.where(jobs.c.status == status)
                if start is not None:
                    query = query.where(jobs.c.updated_at >= start)
                if after is not None:
                    query = query.where(
                        or_(
                            jobs.c.updated_at < after[0],
                            and_(jobs.c.updated_at == after[0], jobs.c.id < after[1]),
                        )
                    )
                query = query.order_by(jobs.c.updated_at.desc(), jobs.c.id.desc())
                rows = list(conn.execute(query.limit(min(PAGE, left))).mappings())
            if not rows:
                return
            page = [summary(dict(row), now) for row in rows]
            self._note_statuses(page)
            yield (
                [(row["tenant"], s) for row, s in zip(rows, page, strict=True)] if owners else page
            )
            if len(rows) < min(PAGE, left):
                return
            left -= len(rows)
            after = (rows[-1]["updated_at"], rows[-1]["id"])


def _jobs_changed_page(summaries: list[dict[str, Any]], seq: int) -> bytes:
    return dumps({"type": "JOBS_CHANGED", "seq": seq, "data": {"jobs": summaries}})


def _summary_query(conn: Connection) -> Any:
    """``SELECT`` of the columns a summary needs, with the newest progress event's
    ``metrics.gpuUtilization`` and ``metrics.gpuTemperature`` read in SQL (SQLite's
    ``json_extract``, PostgreSQL's ``#>>``), so the event itself is never read."""
    event: ColumnElement[Any]
    if conn.dialect.name == "postgresql":
        event = cast(jobs.c.progress_event, JSON)
    else:
        event = type_coerce(jobs.c.progress_event, JSON)
    return select(
        *(jobs.c[name] for name in _SUMMARY_COLUMNS),
        event[("metrics", "gpuUtilization")].as_float().label("gpu_utilization"),
        event[("metrics", "gpuTemperature")].as_float().label("gpu_temperature"),
    )
