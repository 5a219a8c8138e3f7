"""Downsampled windows read from the roll-ups (:mod:`rollups`) instead of the raw rows.

A read picks the coarsest roll-up width that still cuts the window into at
least ``maxPoints // 2`` intervals (as RRDtool picks the archive to read), so it
reads at most a few times ``maxPoints`` summary rows whatever the job's length.
An interval lying only partly inside the window (its first or last) is
recomputed from the raw rows of its part in the window, so counts, minima and
maxima are exactly those of the window's raw rows. The intervals are then
grouped into at most ``maxPoints // 2`` equal spans of whole intervals, each
giving its minimum at its first time (or step) and its maximum at its last, as
the raw downsampling does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from jobwatch.server.rollups import (
    METRIC_COLUMNS,
    SAMPLE_WIDTHS,
    SCALAR_WIDTHS,
    merge,
    sample_rollups,
    scalar_rollups,
)
from jobwatch.server.schema import samples, scalars

Row = dict[str, Any]


@dataclass
class Intervals:
    """Roll-up intervals of one window (or one metric name's window), oldest first.

    ``count`` is the number of raw rows they summarise; ``first`` the index
    (value / width) of the first interval the window can touch and ``last`` of
    the last one.
    """

    width: int
    first: int
    last: int
    rows: list[Row]

    @property
    def count(self) -> int:
        """Raw rows in the window."""
        return sum(int(row["n"]) for row in self.rows)

    def spans(self, n_spans: int, low: Sequence[str], high: Sequence[str]) -> list[Row]:
        """The intervals combined into at most ``n_spans`` spans of equally many
        whole intervals, oldest first; ``low``/``high`` name the columns that
        combine by minimum/maximum."""
        per_span = max(1, math.ceil((self.last - self.first + 1) / n_spans))
        keyed = [
            {**row, "span": (row["bucket"] // self.width - self.first) // per_span}
            for row in self.rows
        ]
        merged = merge(keyed, ("span",), list(low), list(high))
        return sorted(merged, key=lambda row: row["span"])


def _coarsest(widths: Sequence[int], intervals: Any, n_spans: int) -> int | None:
    """The coarsest width giving at least ``n_spans`` intervals (``intervals(width)``)."""
    for width in reversed(widths):
        if intervals(width) >= n_spans:
            return width
    return None


# -- samples ----------------------------------------------------------------------

_SAMPLE_LOW = ["t0", *[f"min_{c}" for c in METRIC_COLUMNS]]
_SAMPLE_HIGH = ["t1", *[f"max_{c}" for c in METRIC_COLUMNS]]


def sample_intervals(
    conn: Connection, job_id: str, start: float, end: float, n_spans: int
) -> Intervals | None:
    """The window ``start <= ts <= end`` (seconds) of ``job_id``'s samples as
    roll-up intervals, or ``None`` when the window is too short for the finest
    width to give ``n_spans`` intervals (read the raw rows instead)."""
    width = _coarsest(SAMPLE_WIDTHS, lambda w: (end - start) / w, n_spans)
    if width is None:
        return None
    r = sample_rollups
    first, last = int(start // width), int(end // width)
    query = (
        select(r)
        .where(
            (r.c.job_id == job_id)
            & (r.c.width == width)
            & (r.c.bucket >= first * width)
            & (r.c.bucket <= last * width)
        )
        .order_by(r.c.bucket)
    )
    rows = []
    for stored in conn.execute(query).mappings():
        row: Row | None = dict(stored)
        if row is not None and (row["t0"] < start or row["t1"] > end):
            row = _raw_samples(conn, job_id, max(start, row["t0"]), min(end, row["t1"]), row)
        if row is not None:
            rows.append(row)
    return Intervals(width, first, last, rows)


def _raw_samples(conn: Connection, job_id: str, lo: float, hi: float, row: Row) -> Row | None:
    """``row``'s interval recomputed from its raw samples with ``lo <= ts <= hi``."""
    if lo > hi:
        return None
    s = samples.c
    query = select(
        func.count().label("n"),
        func.min(s.ts).label("t0"),
        func.max(s.ts).label("t1"),
        *[func.min(s[c]).label(f"min_{c}") for c in METRIC_COLUMNS],
        *[func.max(s[c]).label(f"max_{c}") for c in METRIC_COLUMNS],
    ).where((s.job_id == job_id) & (s.ts >= lo) & (s.ts <= hi))
    part = dict(conn.execute(query).mappings().one())
    return {**row, **part} if part["n"] else None


def sample_spans(intervals: Intervals, n_spans: int) -> list[Row]:
    """Downsampled sample rows (``ts`` and the metric columns), oldest first: per
    span one row of minima at its first sample time and, unless every field is
    constant in it, one of maxima at its last."""
    out: list[Row] = []
    for span in intervals.spans(n_spans, _SAMPLE_LOW, _SAMPLE_HIGH):
        low = {c: span[f"min_{c}"] for c in METRIC_COLUMNS}
        high = {c: span[f"max_{c}"] for c in METRIC_COLUMNS}
        out.append({"ts": span["t0"], **low})
        if high != low:
            out.append({"ts": span["t1"], **high})
    return out


# -- training metrics -------------------------------------------------------------

_SCALAR_LOW = ["s0", "t0", "low"]
_SCALAR_HIGH = ["s1", "t1", "high"]


def scalar_extents(
    conn: Connection, job_id: str, names: list[str] | None, start: float | None, end: float
) -> dict[str, tuple[int, int]]:
    """Per metric name with values in the window, a step range holding all of
    them (from the coarsest roll-up: a superset, enough to pick a width)."""
    r = scalar_rollups
    cond = (r.c.job_id == job_id) & (r.c.width == SCALAR_WIDTHS[-1]) & (r.c.t0 <= end)
    if start is not None:
        cond &= r.c.t1 >= start
    if names is not None:
        cond &= r.c.name.in_(names)
    query = select(r.c.name, func.min(r.c.s0), func.max(r.c.s1)).where(cond).group_by(r.c.name)
    return {name: (int(s0), int(s1)) for name, s0, s1 in conn.execute(query).all()}


def scalar_intervals(
    conn: Connection,
    job_id: str,
    name: str,
    extent: tuple[int, int],
    start: float | None,
    end: float,
    n_spans: int,
) -> Intervals | None:
    """One metric's window as roll-up intervals of steps, or ``None`` when its
    step range is too short for the finest width to give ``n_spans`` intervals."""
    lo, hi = extent
    width = _coarsest(SCALAR_WIDTHS, lambda w: hi // w - lo // w + 1, n_spans)
    if width is None:
        return None
    r = scalar_rollups
    first, last = lo // width, hi // width
    query = (
        select(r)
        .where(
            (r.c.job_id == job_id)
            & (r.c.name == name)
            & (r.c.width == width)
            & (r.c.bucket >= first * width)
            & (r.c.bucket <= last * width)
        )
        .order_by(r.c.bucket)
    )
    rows = []
    begin = -math.inf if start is None else start
    for stored in conn.execute(query).mappings():
        row: Row | None = dict(stored)
        if row is not None and (row["t0"] < begin or row["t1"] > end):
            row = _raw_scalars(conn, job_id, name, max(begin, row["t0"]), min(end, row["t1"]), row)
        if row is not None:
            rows.append(row)
    return Intervals(width, first, last, rows)


def _raw_scalars(
    conn: Connection, job_id: str, name: str, lo: float, hi: float, row: Row
) -> Row | None:
    """``row``'s interval of steps recomputed from its raw values with ``lo <= ts <= hi``."""
    if lo > hi:
        return None
    s = scalars.c
    query = select(
        func.count().label("n"),
        func.min(s.step).label("s0"),
        func.max(s.step).label("s1"),
        func.min(s.ts).label("t0"),
        func.max(s.ts).label("t1"),
        func.min(s.value).label("low"),
        func.max(s.value).label("high"),
    ).where(
        (s.job_id == job_id)
        & (s.name == name)
        & (s.ts >= lo)
        & (s.ts <= hi)
        & (s.step >= row["bucket"])
        & (s.step < row["bucket"] + row["width"])
    )
    part = dict(conn.execute(query).mappings().one())
    return {**row, **part} if part["n"] else None


def scalar_spans(intervals: Intervals, n_spans: int) -> list[Row]:
    """Downsampled points ``{step, ts, value}`` of one metric, oldest first: per
    span its minimum at its first step and, if different, its maximum at its last."""
    points: list[Row] = []
    for span in intervals.spans(n_spans, _SCALAR_LOW, _SCALAR_HIGH):
        points.append({"step": span["s0"], "ts": span["t0"], "value": span["low"]})
        if span["high"] != span["low"]:
            points.append({"step": span["s1"], "ts": span["t1"], "value": span["high"]})
    return points
