"""A job's price over time, without I/O: cost integrates the price per hour over the run.

A job's ``pricePerHour`` may change while it runs: a spot instance is
repriced, and its worker sends the new price (``PUT /api/jobs/{id}``). The job
then costs the sum over its price segments of each price times the time it
held::

    costSoFar = sum_i pricePerHour_i x duration_i / 3600

not its whole elapsed time at the newest price. A segment runs from the
moment the server received its price (the server's clock is the reference for
cost, as for elapsed time) to the next change, the first from ``startedAt``
and the last to now, or to ``completedAt`` once the job has finished. With one
price this is the seed's ``elapsed / 3600 x pricePerHour``.

Two rules decide where a segment starts:

- a price set or changed before the job starts is its price from ``startedAt``;
- a price given while it runs, when it had none, is its price from
  ``startedAt`` too: the price was not known, the time was not free.

The row keeps the running integral (``price_cost``: what the job cost at its
earlier prices, up to ``price_from``, where the current price starts), so
estimates need no other read and a restarted server goes on from it. Each
closed segment is also stored (``price_segments``) for what cuts a run in
time: spend per day (:mod:`jobwatch.server.core.spend`) and the cost at which
a training metric was logged.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobwatch.server.core.job_row import JobChanges, ListedJob

__all__ = [
    "PriceTimeline",
    "Segment",
    "closed_segment",
    "price_change",
    "segment_start",
]


@dataclass(frozen=True)
class Segment:
    """One price held from ``start`` to ``end`` (server seconds since the epoch),
    ``price`` in the job's currency per hour."""

    start: float
    end: float
    price: float

    def cost(self, since: float, until: float) -> float:
        """What this segment costs of the time from ``since`` to ``until`` (currency)."""
        seconds = min(self.end, until) - max(self.start, since)
        return max(0.0, seconds) / 3600.0 * self.price


def segment_start(job: ListedJob) -> float | None:
    """Server time from which the job's current price applies: ``price_from``, else
    ``startedAt``; ``None`` before the start."""
    started = job["started_at"]
    if started is None:
        return None
    since = job["price_from"]
    return started if since is None else max(started, since)


def price_change(job: ListedJob, price: float | None, now: float) -> JobChanges:
    """What setting the job's price to ``price`` at server time ``now`` changes.

    Sets ``price_per_hour``; when a running job's known price changes, also
    closes its current segment: ``price_cost`` grows by the old price over
    ``[segment_start, now]`` and ``price_from`` becomes ``now``
    (:func:`closed_segment` gives that segment's row); a hang in progress adds
    its part so far at the old price to ``hung_cost``. Empty when ``price`` is
    the job's price.
    """
    old = job["price_per_hour"]
    if price == old:
        return {}
    changes: JobChanges = {"price_per_hour": price}
    start = segment_start(job)
    if start is None or old is None or job["completed_at"] is not None:
        return changes
    changes["price_from"] = now
    if now > start:
        changes["price_cost"] = (job["price_cost"] or 0.0) + (now - start) / 3600.0 * old
        hung_at = job["hung_at"]
        if job["hung"] and hung_at is not None and now > hung_at:
            # a hang the change cuts: its part so far at the old price joins its cost
            # now (hangs.end_hang counts the rest from price_from, at the new price)
            since = max(hung_at, start)
            changes["hung_cost"] = job["hung_cost"] + (now - since) / 3600.0 * old
    return changes


def closed_segment(job: ListedJob, changes: JobChanges) -> dict[str, Any] | None:
    """The ``price_segments`` row (``job_id, start_at, end_at, price_per_hour``) that
    ``changes`` (from :func:`price_change`) close on ``job``, or ``None`` when they
    close none (no change, not started, no earlier price, no time since the last
    change)."""
    start = segment_start(job)
    if "price_cost" not in changes or start is None or job["price_per_hour"] is None:
        return None
    end = changes["price_from"]
    return {
        "job_id": job["id"],
        "start_at": start,
        "end_at": end,
        "price_per_hour": job["price_per_hour"],
    }


class PriceTimeline:
    """A job's prices over its run: its stored closed segments and its current one.

    Parameters
    ----------
    job:
        The job's row (its price, ``startedAt``, ``completedAt``, ``price_from``).
    closed:
        Its ``price_segments`` rows (``start_at``, ``end_at``, ``price_per_hour``),
        any order.
    now:
        Server time; the current segment of a running job ends here.
    """

    def __init__(self, job: ListedJob, closed: Iterable[Mapping[str, Any]], now: float) -> None:
        segments = [
            Segment(float(r["start_at"]), float(r["end_at"]), float(r["price_per_hour"]))
            for r in closed
        ]
        start = segment_start(job)
        price = job["price_per_hour"]
        if start is not None and price is not None:
            end = job["completed_at"] if job["completed_at"] is not None else now
            segments.append(Segment(start, max(start, end), price))
        self.segments: Sequence[Segment] = sorted(segments, key=lambda s: s.start)
        self._ends = [s.end for s in self.segments]
        cumulative = [0.0]
        for segment in self.segments:
            cumulative.append(cumulative[-1] + segment.cost(segment.start, segment.end))
        self._before = cumulative

    @property
    def priced(self) -> bool:
        """Whether the job has had a price for any of its run."""
        return bool(self.segments)

    def cost_between(self, since: float, until: float) -> float:
        """What the job cost from ``since`` to ``until`` (server times; currency)."""
        return sum(s.cost(since, until) for s in self.segments if s.end > since and s.start < until)

    def cost_at(self, at: float) -> float | None:
        """What the job had cost at server time ``at`` (``None`` without a price):
        the integral of its price from ``startedAt`` to ``at``. ``O(log n)``."""
        if not self.segments:
            return None
        i = bisect.bisect_right(self._ends, at)
        cost = self._before[i]
        if i < len(self.segments):
            cost += self.segments[i].cost(self.segments[i].start, at)
        return cost
