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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, select, true

from jobwatch.server.storage.rollups import (
    METRIC_COLUMNS,
    SAMPLE_WIDTHS,
    SCALAR_WIDTHS,
    merge,
    sample_rollups,
    scalar_rollups,
)
from jobwatch.server.storage.schema import samples, scalars

Row = dict[str, Any]


@dataclass
class Spans:
    """A window (or one metric name's window) as at most ``n`` spans of whole
    roll-up intervals, oldest first: each row has ``span`` (its number), ``n``
    (raw rows in it) and the combined columns of the roll-up table."""

    rows: list[Row]

    @property
    def count(self) -> int:
        """Raw rows in the window."""
        return sum(int(row["n"]) for row in self.rows)


def _read_spans(
    conn: Connection,
    table: Table,
    where: Any,
    width: int,
    first: int,
    last: int,
    n_spans: int,
    inside: tuple[Any, Any],
    low: list[str],
    high: list[str],
    recompute: Callable[[Row], Row | None],
) -> Spans:
    """Combine ``table``'s intervals (``where``: one job, name and ``width``;
    indexes ``first..last``) into at most ``n_spans`` spans of equally many
    intervals. Intervals lying wholly in the window (``inside``: the
    conditions on ``t0`` and ``t1``) are combined by the database, so only
    the spans and the few partial intervals (recomputed from raw rows)
    reach Python."""
    per_span = max(1, math.ceil((last - first + 1) / n_spans))
    c = table.c
    span = ((c.bucket // width - first) // per_span).label("span")
    in_range = where & (c.width == width) & (c.bucket >= first * width)
    in_range &= c.bucket <= last * width
    whole = inside[0] & inside[1]
    query = (
        select(
            span,
            func.sum(c.n).label("n"),
            *[func.min(c[name]).label(name) for name in low],
            *[func.max(c[name]).label(name) for name in high],
        )
        .where(in_range & whole)
        .group_by(span)
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    partial = select(table).where(in_range & ~whole)
    for stored in conn.execute(partial).mappings():
        row = recompute(dict(stored))
        if row is not None:
            row["span"] = (row["bucket"] // width - first) // per_span
            rows.append(row)
    merged = merge(rows, ("span",), low, high)
    return Spans(sorted(merged, key=lambda row: int(row["span"])))


def _coarsest(widths: Sequence[int], intervals: Any, n_spans: int) -> int | None:
    """The coarsest width giving at least ``n_spans`` intervals (``intervals(width)``)."""
    for width in reversed(widths):
        if intervals(width) >= n_spans:
            return width
    return None


# -- samples ----------------------------------------------------------------------

_SAMPLE_LOW = ["t0", *[f"min_{c}" for c in METRIC_COLUMNS]]
_SAMPLE_HIGH = ["t1", *[f"max_{c}" for c in METRIC_COLUMNS]]


def may_use_rollups(start: float, end: float, n_spans: int) -> bool:
    """Whether a window ``start..end`` (seconds) is long enough for the finest sample
    width to give ``n_spans`` intervals; shorter ones are always read raw."""
    return (end - start) / SAMPLE_WIDTHS[0] >= n_spans


def sample_intervals(
    conn: Connection, job_id: str, start: float, end: float, n_spans: int
) -> Spans | None:
    """The window ``start <= ts <= end`` (seconds) of ``job_id``'s samples as
    roll-up intervals, or ``None`` when the window is too short for the finest
    width to give ``n_spans`` intervals (read the raw rows instead)."""
    width = _coarsest(SAMPLE_WIDTHS, lambda w: (end - start) / w, n_spans)
    if width is None:
        return None
    r = sample_rollups
    return _read_spans(
        conn,
        r,
        r.c.job_id == job_id,
        width,
        int(start // width),
        int(end // width),
        n_spans,
        (r.c.t0 >= start, r.c.t1 <= end),
        _SAMPLE_LOW,
        _SAMPLE_HIGH,
        lambda row: _raw_samples(conn, job_id, max(start, row["t0"]), min(end, row["t1"]), row),
    )


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


def sample_spans(spans: Spans) -> list[Row]:
    """Downsampled sample rows (``ts`` and the metric columns), oldest first: per
    span one row of minima at its first sample time and, unless every field is
    constant in it, one of maxima at its last."""
    out: list[Row] = []
    for span in spans.rows:
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
) -> Spans | None:
    """One metric's window as roll-up intervals of steps, or ``None`` when its
    step range is too short for the finest width to give ``n_spans`` intervals."""
    lo, hi = extent
    width = _coarsest(SCALAR_WIDTHS, lambda w: hi // w - lo // w + 1, n_spans)
    if width is None:
        return None
    r = scalar_rollups
    begin = -math.inf if start is None else start
    return _read_spans(
        conn,
        r,
        (r.c.job_id == job_id) & (r.c.name == name),
        width,
        lo // width,
        hi // width,
        n_spans,
        (r.c.t0 >= begin, r.c.t1 <= end) if start is not None else (true(), r.c.t1 <= end),
        _SCALAR_LOW,
        _SCALAR_HIGH,
        lambda row: _raw_scalars(
            conn, job_id, name, max(begin, row["t0"]), min(end, row["t1"]), row
        ),
    )


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


def scalar_spans(spans: Spans) -> list[Row]:
    """Downsampled points ``{step, ts, value}`` of one metric, oldest first: per
    span its minimum at its first step and, if different, its maximum at its last."""
    points: list[Row] = []
    for span in spans.rows:
        points.append({"step": span["s0"], "ts": span["t0"], "value": span["low"]})
        if span["high"] != span["low"]:
            points.append({"step": span["s1"], "ts": span["t1"], "value": span["high"]})
    return points
