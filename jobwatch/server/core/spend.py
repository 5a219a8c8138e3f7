"""Spend across jobs, without I/O: what ``GET /api/costs`` and ``jobwatch costs`` report.

What is counted, exactly (docs/api.md "Spend across jobs"):

- every job the asker may read (its tenant's, or every job for the operator)
  whose run overlaps the window, finished and running alike;
- a job's run is from ``startedAt`` (its first progress update) to
  ``completedAt``, or to now while it runs (a stalled or hung job counts until
  it is completed, as its ``costSoFar`` does); the time before its first update
  is not counted;
- its money is its ``costSoFar``, the figure ``/monitor`` and the receipt show:
  its price integrated over its run (:mod:`jobwatch.server.core.pricing`), or
  what its nodes accrued for a distributed job whose nodes report their own
  price. A day gets the part of it that fell between that day's midnights in
  the report's time zone, cut at the job's price segments (a node-metered job's
  by its nodes' summed price over time);
- amounts in different currencies are never added: every total is per currency;
- jobs without a price are not in the money; the report says how many there
  were and how long they ran (``unpriced``);
- nothing jobwatch was not told about: a machine's time outside its jobs' runs
  (idle, setup, between jobs), storage, network, this server. Unlike ``sky
  cost-report``, which prices the clusters it launched (controller included,
  skypilot#2312), this reports the jobs' own declared prices.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from jobwatch.contract.basics import format_ts
from jobwatch.server.core.job_row import ListedJob
from jobwatch.server.core.pricing import PriceTimeline
from jobwatch.server.core.rules import job_estimates

__all__ = ["Day", "day_bounds", "group_key", "job_daily", "report"]


@dataclass(frozen=True)
class Day:
    """One calendar day of the report: ``date`` (``YYYY-MM-DD``) and its midnights
    ``start`` and ``end`` (s since the epoch; 23 or 25 hours apart across a
    daylight-saving change)."""

    date: str
    start: float
    end: float


def day_bounds(first: date, last: date, zone: tzinfo) -> list[Day]:
    """The days from ``first`` to ``last`` (inclusive) with their midnights in ``zone``."""
    days = []
    day = first
    while day <= last:
        following = day + timedelta(days=1)
        days.append(Day(day.isoformat(), _midnight(day, zone), _midnight(following, zone)))
        day = following
    return days


def _midnight(day: date, zone: tzinfo) -> float:
    return datetime.combine(day, time(0), zone).timestamp()


def group_key(job: ListedJob, by: str | None) -> str | None:
    """The group ``job`` falls in: its ``providerId``, its tenant (``None``: the
    operator's), or its name (its id where it has none); ``None`` without ``by``."""
    if by == "provider":
        return job["provider_id"]
    if by == "tenant":
        return job["tenant"]
    if by == "name":
        return job["name"] or job["id"]
    return None


def job_daily(
    job: ListedJob, timeline: PriceTimeline, days: list[Day], now: float
) -> tuple[list[float] | None, float]:
    """What ``job`` cost on each of ``days`` (``None`` without a price) and the
    hours of its run inside them.

    Each day gets the job's ``costSoFar`` in proportion to its price integrated
    over the part of the day the job ran (so the days of a whole run add up to
    its ``costSoFar``; a job that cost nothing by its price, in proportion to
    its time in each day).
    """
    bounds = _Bounds(days)
    by_day, hours = _job_days(job, timeline, bounds, now)
    if by_day is None:
        return None, hours
    daily = [0.0] * len(days)
    for i, amount in by_day.items():
        daily[i] = amount
    return daily, hours


class _Bounds:
    """The days' midnights as sorted lists, for finding the days a run overlaps."""

    def __init__(self, days: list[Day]) -> None:
        self.days = days
        self.starts = [d.start for d in days]
        self.ends = [d.end for d in days]


def _job_days(
    job: ListedJob, timeline: PriceTimeline, bounds: _Bounds, now: float
) -> tuple[dict[int, float] | None, float]:
    """:func:`job_daily` as ``{day index: amount}`` for the days the run overlaps only
    (a run is hours long, a window up to a year)."""
    started = job["started_at"]
    if started is None:
        return None, 0.0
    end = job["completed_at"] if job["completed_at"] is not None else now
    first = bisect.bisect_right(bounds.ends, started)
    last = bisect.bisect_left(bounds.starts, end)
    days = bounds.days
    spans = {i: (max(days[i].start, started), min(days[i].end, end)) for i in range(first, last)}
    hours = sum(max(0.0, b - a) for a, b in spans.values()) / 3600.0
    cost = job_estimates(job, now).cost_so_far
    if cost is None:
        return None, hours
    whole = timeline.cost_between(started, end)
    run = end - started
    if whole > 0:
        return {i: cost * timeline.cost_between(a, b) / whole for i, (a, b) in spans.items()}, hours
    if run > 0:
        return {i: cost * max(0.0, b - a) / run for i, (a, b) in spans.items()}, hours
    return dict.fromkeys(spans, 0.0), hours


@dataclass
class _Sum:
    """Running totals of one group (or currency)."""

    n_days: int
    cost: float = 0.0
    hours: float = 0.0
    jobs: int = 0
    running: int = 0
    daily: list[float] = field(default_factory=list)

    def add(self, daily: dict[int, float], hours: float, running: bool) -> None:
        if not self.daily:
            self.daily = [0.0] * self.n_days
        for i, amount in daily.items():
            self.daily[i] += amount
        self.cost += sum(daily.values())
        self.hours += hours
        self.jobs += 1
        self.running += running

    def wire(self) -> dict[str, Any]:
        return {
            "cost": round(self.cost, 6),
            "hours": round(self.hours, 6),
            "jobs": self.jobs,
            "running": self.running,
            "daily": [round(x, 6) for x in (self.daily or [0.0] * self.n_days)],
        }


def report(
    jobs: Iterable[tuple[ListedJob, PriceTimeline]],
    *,
    by: str | None,
    days: list[Day],
    now: float,
    time_zone: str,
) -> dict[str, Any]:
    """The spend report over ``days`` of ``jobs`` (each with its price timeline).

    Returns
    -------
    dict
        ``{since, until, timeZone, by, days, groups, totals, unpriced}``:
        ``since`` the first day's midnight and ``until`` now (timestamps);
        ``days`` the dates; ``groups`` (with ``by``; else empty) one entry per
        group and currency ``{group, currency, cost, hours, jobs, running,
        daily}``, costliest first; ``totals`` the same per currency without
        ``group``; ``daily`` the cost on each of ``days``, in order; ``hours``
        the jobs' run time inside the window; ``running`` how many of ``jobs``
        run now; ``unpriced`` ``{jobs, hours}`` of the jobs without a price
        (in no sum of money).
    """
    n = len(days)
    bounds = _Bounds(days)
    groups: dict[tuple[str | None, str], _Sum] = {}
    totals: dict[str, _Sum] = {}
    unpriced = {"jobs": 0, "hours": 0.0}
    for job, timeline in jobs:
        daily, hours = _job_days(job, timeline, bounds, now)
        if hours <= 0 and not (daily and any(daily.values())):
            continue
        if daily is None:
            unpriced["jobs"] += 1
            unpriced["hours"] += hours
            continue
        running = job["status"] == "running"
        currency = job["currency"]
        totals.setdefault(currency, _Sum(n)).add(daily, hours, running)
        if by is not None:
            key = (group_key(job, by), currency)
            groups.setdefault(key, _Sum(n)).add(daily, hours, running)
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1].cost, str(kv[0][0]), kv[0][1]))
    return {
        "since": format_ts(days[0].start) if days else format_ts(now),
        "until": format_ts(now),
        "timeZone": time_zone,
        "by": by,
        "days": [d.date for d in days],
        "groups": [{"group": g, "currency": c, **s.wire()} for (g, c), s in ordered],
        "totals": [{"currency": c, **totals[c].wire()} for c in sorted(totals)],
        "unpriced": {"jobs": unpriced["jobs"], "hours": round(unpriced["hours"], 6)},
    }
