"""The fleet feed: ``subscribe:jobs`` streams compact summaries of every job.

One :class:`FleetFeed` per server process listens to every job's events
(those committed here and, with Redis, in every other process), notes which
jobs changed, and every :data:`INTERVAL` seconds reads those jobs' rows once,
builds their summaries once and hands each fleet subscriber the ones its
``status`` filter keeps, as one ``JOBS_CHANGED`` message. So a job is
summarised at most four times a second whatever its update rate, and the cost
of a tick does not grow with the number of subscribers beyond one filter and
one send each.

``seq`` of ``JOBS_CHANGED`` is the server time of the tick in milliseconds; a
client that resumes with ``since`` gets every job changed after ``since``
minus :data:`RESUME_MARGIN` (summaries are whole states, so a repeat is
harmless, and the margin covers writes that committed late or on a process
whose clock runs a little behind).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy import select

from jobwatch.contract.requests import format_ts
from jobwatch.server.core.job_row import JobRow, job_row
from jobwatch.server.core.rules import job_estimates
from jobwatch.server.core.serialize import dumps
from jobwatch.server.core.tenancy import Scope
from jobwatch.server.events.broker import ALL_JOBS, Broker
from jobwatch.server.storage.schema import decode_row, jobs
from jobwatch.server.storage.store import Store

log = logging.getLogger(__name__)

FLEET = "jobs"
"""The ``subscriptionId`` of a fleet subscription in ``subscribed``/``unsubscribed``."""
INTERVAL = 0.25
"""Seconds between two ticks: a job's summary goes out at most 4 times a second."""
RESUME_MARGIN = 5.0
"""Seconds before ``since`` a resumed fleet subscription starts from."""
PAGE = 500
"""Most summaries per ``JOBS_CHANGED`` message."""
MAX_INITIAL = 10_000
"""Most jobs (newest first) a new fleet subscription receives at once."""


EVERY_JOB = Scope(everything=True)
"""The scope of a subscriber that may see every job (the admin's)."""


class FleetSubscriber(Protocol):
    """A fleet subscription's end: takes ``JOBS_CHANGED`` text without blocking."""

    def deliver_fleet(self, message: bytes) -> None:
        """Queue one ``JOBS_CHANGED`` message (never block)."""


def summary(job: JobRow, now: float) -> dict[str, Any]:
    """A job's summary for the fleet view: ``{id, name, status, progress,
    currentOperation, timeRemaining (s), costSoFar, estimatedTotalCost, currency,
    pricePerHour, gpuUtilization (%), gpuTemperature (Celsius), updatedAt,
    startedAt, completedAt, createdAt, workerId, stalled, alerts}``."""
    estimates = job_estimates(job, now)
    metrics = (job["progress_event"] or {}).get("metrics") or {}
    return {
        "id": job["id"],
        "name": job["name"],
        "status": job["status"],
        "progress": job["progress"],
        "currentOperation": job["current_operation"],
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
        "workerId": job["worker_id"],
        "stalled": bool(job["stalled"]),
        "alerts": job["n_alerts"],
    }


def jobs_changed(summaries: list[dict[str, Any]], seq: int) -> Iterable[bytes]:
    """``JOBS_CHANGED`` messages of at most :data:`PAGE` summaries each."""
    for start in range(0, len(summaries), PAGE):
        page = summaries[start : start + PAGE]
        yield dumps({"type": "JOBS_CHANGED", "seq": seq, "data": {"jobs": page}})


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
        :data:`MAX_INITIAL`). Returns the answer's ``seq``.

        Raises
        ------
        jobwatch.errors.StoreUnavailable
            The database cannot be read (nothing was subscribed).
        """
        now = self.clock()
        seq = int(now * 1000)
        start = None if since is None else since / 1000 - RESUME_MARGIN
        first = self._initial(status, start, now, scope)
        with self._lock:  # a tick that sees this subscriber delivers after these
            subscriber.deliver_fleet(
                dumps({"type": "subscribed", "subscriptionId": FLEET, "seq": seq})
            )
            for message in jobs_changed(first, seq):
                subscriber.deliver_fleet(message)
            if not self._subscribers:
                self.broker.subscribe(ALL_JOBS, self)
            self._subscribers[subscriber] = (status, scope)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobwatch-fleet", daemon=True
                )
                self._thread.start()
        return seq

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
        """Send the summaries of the jobs changed since the last tick; returns how many."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            everything, self._everything = self._everything, False
            subscribers = list(self._subscribers.items())
        if not subscribers or not (dirty or everything):
            return 0
        now = self.clock()
        rows = self._rows(None if everything else sorted(dirty))
        summaries = [summary(row, now) for row in rows]
        owners = {row["id"]: row["tenant"] for row in rows}
        before = self._note_statuses(summaries)
        seq = int(now * 1000)
        for subscriber, (status, scope) in subscribers:
            kept = [
                s
                for s in summaries
                if scope.shows(owners[s["id"]])
                and (status is None or status in (s["status"], before.get(s["id"])))
            ]
            for message in jobs_changed(kept, seq):
                subscriber.deliver_fleet(message)
        return len(summaries)

    def _note_statuses(self, summaries: list[dict[str, Any]]) -> dict[str, str]:
        """Record each job's status; return the statuses they had before (where known)."""
        with self._lock:
            before = {s["id"]: self._statuses.get(s["id"]) for s in summaries}
            self._statuses.update((s["id"], s["status"]) for s in summaries)
        return {job_id: status for job_id, status in before.items() if status is not None}

    def _rows(self, ids: list[str] | None) -> list[JobRow]:
        query = select(jobs)
        if ids is not None:
            query = query.where(jobs.c.id.in_(ids))
        with self.store.read() as conn:
            return [job_row(decode_row(r)) for r in conn.execute(query).mappings()]

    def _initial(
        self, status: str | None, start: float | None, now: float, scope: Scope
    ) -> list[dict[str, Any]]:
        query = select(jobs).order_by(jobs.c.updated_at.desc()).limit(MAX_INITIAL)
        if not scope.everything:
            query = query.where(jobs.c.tenant == scope.tenant)
        if status is not None:
            query = query.where(jobs.c.status == status)
        if start is not None:
            query = query.where(jobs.c.updated_at >= start)
        with self.store.read() as conn:
            rows = [job_row(decode_row(r)) for r in conn.execute(query).mappings()]
        first = [summary(row, now) for row in rows]
        self._note_statuses(first)
        return first
