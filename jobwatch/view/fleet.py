"""What a fleet view knows of every job, kept apart from any display.

:class:`FleetState` takes the job summaries of ``JOBS_CHANGED`` messages
(``subscribe:jobs``, docs/api.md "The fleet") and answers what a table shows:
rows keyed by job id, sorted and filtered, and the totals (what the running
jobs have cost so far and what was spent today). It does no IO and imports no
display library, so it is tested without a kernel or a terminal and shared by
:class:`jobwatch.JobsTable` and ``jobwatch top``. The browsers sort and filter
with the same rules in JavaScript, written once in
``jobwatch/notebook/static/jobstable.js`` (the notebook's table) and imported
from there by the server's fleet page (``/assets/widgets/jobstable.js``);
``tests/view/test_fleet_rules.py`` checks on generated rows that the two agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobwatch.contract.answers import JobsChanged
from jobwatch.contract.basics import FINISHED_STATUSES, check_status, parse_ts

__all__ = [
    "SORT_KEYS",
    "STATUS_ORDER",
    "FleetState",
    "Totals",
    "check_status",
    "has_status",
    "matches",
    "sort_rows",
]

SORT_KEYS = (
    "status",
    "name",
    "progress",
    "timeRemaining",
    "costSoFar",
    "gpuUtilization",
    "gpuTemperature",
    "alerts",
    "updatedAt",
)
"""Columns a fleet view sorts by: ``"status"`` (then newest update first) or one summary field."""
STATUS_ORDER = {"running": 0, "pending": 1, "failed": 2, "cancelled": 3, "completed": 4}
"""Where each status sorts under ``"status"``: what needs a look first (htop's running first)."""
NUMERIC_KEYS = frozenset(
    {"progress", "timeRemaining", "costSoFar", "gpuUtilization", "gpuTemperature", "alerts"}
)
STALLED = "stalled"
"""The status filter that keeps the stalled jobs that have not finished."""


@dataclass(frozen=True)
class Totals:
    """Money and counts over every job held.

    ``running`` and ``today`` map a currency to an amount in it (jobs without
    a price count in neither); ``counts`` maps a status to its number of jobs;
    ``stalled`` counts the stalled jobs.
    """

    running: dict[str, float] = field(default_factory=dict)
    today: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    stalled: int = 0

    def as_wire(self) -> dict[str, Any]:
        """``{running, today, counts, stalled}`` with camelCase keys, for a page."""
        return {
            "running": dict(self.running),
            "today": dict(self.today),
            "counts": dict(self.counts),
            "stalled": self.stalled,
        }


class FleetState:
    """Every job's latest summary, and what a table of them shows.

    Parameters
    ----------
    status:
        Hold only jobs of this status (the ``status`` of the subscription): a
        job whose summary says otherwise is dropped. ``None`` holds every job.
    clock:
        Monotonic seconds; a running job's cost grows with it between summaries.
    wall:
        Seconds since the epoch, for "today" (local midnight).

    Raises
    ------
    ValueError
        ``status`` is not a job status.
    """

    def __init__(
        self,
        status: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.status = check_status(status)
        self.rows: dict[str, dict[str, Any]] = {}
        self.seq: int | None = None
        self._received: dict[str, float] = {}
        self._changed: set[str] = set()
        self._clock, self._wall = clock, wall

    def apply(self, message: JobsChanged) -> set[str]:
        """Take one ``JOBS_CHANGED`` message ``{type, seq, data: {jobs: [summary]}}``.

        A summary replaces the job's row; one that equals the row held changes
        nothing, one whose status is not :attr:`status` removes the row.
        Malformed summaries (not an object, no string ``id``) are skipped.

        Returns
        -------
        set of str
            The ids whose row was added, changed or removed (also kept for
            :meth:`take_changed`).
        """
        seq = message.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.seq = max(seq, self.seq or 0)
        data = message.get("data")
        jobs = data.get("jobs") if isinstance(data, Mapping) else None
        return self.apply_summaries(jobs if isinstance(jobs, list) else [])

    def apply_summaries(self, summaries: Iterable[Any]) -> set[str]:
        """As :meth:`apply`, for the summaries alone."""
        now = self._clock()
        changed: set[str] = set()
        for summary in summaries:
            if not isinstance(summary, Mapping) or not isinstance(summary.get("id"), str):
                continue
            job_id = summary["id"]
            if self.status is not None and summary.get("status") != self.status:
                if self.rows.pop(job_id, None) is not None:
                    self._received.pop(job_id, None)
                    changed.add(job_id)
                continue
            self._received[job_id] = now
            if self.rows.get(job_id) != summary:
                self.rows[job_id] = dict(summary)
                changed.add(job_id)
        self._changed |= changed
        return changed

    def take_changed(self) -> set[str]:
        """The ids changed since the last call (added, changed or removed)."""
        changed, self._changed = self._changed, set()
        return changed

    # -- what a table shows ----------------------------------------------------------

    def view(
        self,
        sort: str = "status",
        descending: bool = False,
        status: str | None = None,
        name: str = "",
    ) -> list[dict[str, Any]]:
        """The rows a table shows, in order.

        Parameters
        ----------
        sort:
            One of :data:`SORT_KEYS`. ``"status"`` orders by :data:`STATUS_ORDER`,
            then newest update first; ``"name"`` by name (else id), ignoring case (``str.lower``, as the page's ``toLowerCase``);
            the others by value. Ties go newest update first, then by id; rows
            without a value come last either way.
        descending:
            Reverse the order of the rows that have a value.
        status:
            Only jobs of this status, or ``"stalled"`` for the stalled jobs
            (:func:`has_status`; ``None``: all).
        name:
            Only jobs whose name or id contains this text, ignoring case.

        Raises
        ------
        ValueError
            ``sort`` or ``status`` is not allowed.
        """
        if status != STALLED:
            check_status(status)
        rows = [row for row in self.rows.values() if has_status(row, status) and matches(row, name)]
        return sort_rows(rows, sort, descending)

    def cost(self, job_id: str) -> float | None:
        """The job's cost so far (in its currency) now: its summary's ``costSoFar``,
        plus, while it runs, its price for the time since that summary came."""
        row = self.rows[job_id]
        cost = _number(row.get("costSoFar"))
        price = _number(row.get("pricePerHour"))
        if cost is None or price is None or row.get("status") != "running":
            return cost
        return cost + price * max(0.0, self._clock() - self._received[job_id]) / 3600.0

    def totals(self, day_start: float | None = None) -> Totals:
        """What the running jobs have cost so far, what every job cost today, and counts.

        Parameters
        ----------
        day_start:
            Seconds since the epoch where "today" starts; default local midnight.

        Notes
        -----
        A job that started today counts its whole cost so far (the server's
        ``costSoFar``, its price integrated over its run, moved on to now). One
        that started before counts its current price per hour times the hours of
        its run (``startedAt`` to ``completedAt``, or to now while it runs) after
        ``day_start``, which is exact unless its price changed today: the server's
        spend report (``GET /api/costs``, docs/api.md) cuts every run at its price
        changes.
        """
        now = self._wall()
        start_of_day = day_start if day_start is not None else _local_midnight(now)
        running: dict[str, float] = {}
        today: dict[str, float] = {}
        counts: dict[str, int] = {}
        stalled = 0
        for job_id, row in self.rows.items():
            status = str(row.get("status"))
            counts[status] = counts.get(status, 0) + 1
            stalled += bool(row.get("stalled"))
            currency = str(row.get("currency") or "")
            if status == "running" and (cost := self.cost(job_id)) is not None:
                running[currency] = running.get(currency, 0.0) + cost
            spent = _spent_since(row, start_of_day, now, self.cost(job_id))
            if spent is not None:
                today[currency] = today.get(currency, 0.0) + spent
        return Totals(running, today, counts, stalled)


def has_status(row: Mapping[str, Any], status: str | None) -> bool:
    """Whether the job passes the status filter ``status``: every job for ``None``,
    ``""`` or ``"all"``; for ``"stalled"``, a stalled job that has not finished;
    else a job of that status."""
    if not status or status == "all":
        return True
    if status == STALLED:
        return bool(row.get("stalled")) and row.get("status") not in FINISHED_STATUSES
    return row.get("status") == status


def matches(row: Mapping[str, Any], name: str) -> bool:
    """Whether the job's name or id contains ``name``, ignoring case (``""``: every job)."""
    if not name:
        return True
    needle = name.lower()
    return needle in str(row.get("id", "")).lower() or needle in str(row.get("name") or "").lower()


def sort_rows(rows: list[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """``rows`` in the order of :meth:`FleetState.view` (a new list).

    Raises
    ------
    ValueError
        ``sort`` is not one of :data:`SORT_KEYS`.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    # Newest update first, then id: Python's sort is stable, so sorting by the
    # tie-breaks first and the key last keeps them within equal keys.
    ordered = sorted(rows, key=lambda row: _text_key(str(row.get("id", ""))))
    ordered.sort(key=lambda row: _text_key(str(row.get("updatedAt") or "")), reverse=True)
    present = [row for row in ordered if _key(row, sort) is not None]
    missing = [row for row in ordered if _key(row, sort) is None]
    present.sort(key=lambda row: _key(row, sort), reverse=descending)
    return present + missing


def _key(row: Mapping[str, Any], sort: str) -> Any:
    if sort == "status":
        return STATUS_ORDER.get(str(row.get("status")), len(STATUS_ORDER))
    if sort == "name":
        return _text_key(str(row.get("name") or row.get("id", "")).lower())
    value = row.get(sort)
    if sort in NUMERIC_KEYS:
        return _number(value)
    return _text_key(value) if isinstance(value, str) else None


def _text_key(text: str) -> bytes:
    """``text`` in the order JavaScript's ``<`` gives strings (UTF-16 code units, which
    differs from Python's code points above U+FFFF), so the pages order as Python does."""
    return text.encode("utf-16-be", "surrogatepass")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _local_midnight(now: float) -> float:
    return (
        datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    )


def _spent_since(
    row: Mapping[str, Any], start_of_day: float, now: float, cost: float | None
) -> float | None:
    """The job's cost between ``start_of_day`` and ``now`` (``cost``: its cost so far
    now); ``None`` without a price or a start."""
    price = _number(row.get("pricePerHour"))
    started = parse_ts(row.get("startedAt"))
    if price is None or started is None:
        return None
    if started >= start_of_day and cost is not None:
        return cost  # all of it today
    if row.get("status") in FINISHED_STATUSES:
        end = parse_ts(row.get("completedAt")) or parse_ts(row.get("updatedAt")) or started
    else:
        end = now
    seconds = max(0.0, min(end, now) - max(started, start_of_day))
    return seconds / 3600.0 * price
