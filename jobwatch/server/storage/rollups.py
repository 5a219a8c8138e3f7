"""Roll-ups of metric samples and training metrics, written at ingest.

A read of a long window (``/metrics?timeRange=86400&maxPoints=500``,
``/scalars?maxPoints=500`` over a million steps) would otherwise aggregate
every raw row it covers. As RRDtool's consolidated archives do (one archive
per resolution, updated on every write, read from the coarsest one that still
has enough rows), each raw row also updates one summary row per resolution:
per job (and name) and fixed interval, the row count, the first and last
time (and step) seen, and every field's minimum and maximum, in the same
transaction as the raw row. Reads (:mod:`rollup_reads`) then touch
``O(maxPoints)`` rows whatever the job's length.

- ``sample_rollups``: intervals of :data:`SAMPLE_WIDTHS` seconds of sample time,
  one ``min_``/``max_`` column pair per flat metric column of ``samples``
  (taken from :data:`~jobwatch.server.storage.schema.SAMPLE_FIELDS`).
- ``scalar_rollups``: intervals of :data:`SCALAR_WIDTHS` steps per metric name.

No mean is kept: no answer needs one (downsampling keeps each span's minimum
and maximum so spikes show).

A database made before the roll-ups existed gets them from its raw rows once,
when the tables are created (:func:`backfill`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    String,
    Table,
    delete,
    inspect,
    text,
)

from jobwatch.server.storage.schema import SAMPLE_FIELDS, metadata

Row = dict[str, Any]

SAMPLE_WIDTHS = (10, 60, 300, 3600)
"""Seconds per sample roll-up interval, finest first."""
SCALAR_WIDTHS = (10, 100, 1000, 10_000)
"""Steps per training-metric roll-up interval, finest first."""

METRIC_COLUMNS = [column.name for column in SAMPLE_FIELDS.values()]
"""The flat metric columns of ``samples`` that are rolled up."""

sample_rollups = Table(
    "sample_rollups",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("width", Integer, primary_key=True, doc="seconds per interval"),
    Column("bucket", BigInteger, primary_key=True, doc="interval start: floor(ts / width) * width"),
    Column("n", BigInteger, nullable=False, doc="samples in the interval"),
    Column("t0", Float, nullable=False, doc="first sample time"),
    Column("t1", Float, nullable=False, doc="last sample time"),
    *[Column(f"min_{name}", Float) for name in METRIC_COLUMNS],
    *[Column(f"max_{name}", Float) for name in METRIC_COLUMNS],
)

scalar_rollups = Table(
    "scalar_rollups",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("width", Integer, primary_key=True, doc="steps per interval"),
    Column("bucket", BigInteger, primary_key=True, doc="first step: floor(step / width) * width"),
    Column("n", BigInteger, nullable=False, doc="values in the interval"),
    Column("s0", BigInteger, nullable=False, doc="lowest step"),
    Column("s1", BigInteger, nullable=False, doc="highest step"),
    Column("t0", Float, nullable=False, doc="first time"),
    Column("t1", Float, nullable=False, doc="last time"),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
)

_SAMPLE_KEY = ("job_id", "width", "bucket")
_SCALAR_KEY = ("job_id", "name", "width", "bucket")
_SAMPLE_LOW = ["t0", *[f"min_{name}" for name in METRIC_COLUMNS]]
_SAMPLE_HIGH = ["t1", *[f"max_{name}" for name in METRIC_COLUMNS]]
_SCALAR_LOW = ["s0", "t0", "low"]
_SCALAR_HIGH = ["s1", "t1", "high"]


def _low(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _high(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def merge(rows: Iterable[Row], key: tuple[str, ...], low: list[str], high: list[str]) -> list[Row]:
    """Combine roll-up rows of the same interval (``n`` adds, minima and maxima
    ignore ``None``)."""
    merged: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        k = tuple(row[name] for name in key)
        have = merged.get(k)
        if have is None:
            merged[k] = dict(row)
            continue
        have["n"] += row["n"]
        for name in low:
            have[name] = _low(have[name], row[name])
        for name in high:
            have[name] = _high(have[name], row[name])
    return list(merged.values())


class _Spec(NamedTuple):
    """How one roll-up table is computed from its raw table."""

    raw: str
    widths: tuple[int, ...]
    groups: tuple[str, ...]
    """Grouping columns before the width (and the interval start after it)."""
    aggregates: tuple[str, ...]
    """The ``INSERT ... SELECT`` expressions after the key columns."""
    key: tuple[str, ...]
    low: list[str]
    high: list[str]


_SPECS = {
    "sample_rollups": _Spec(
        "samples",
        SAMPLE_WIDTHS,
        ("job_id",),
        (
            "count(*)",
            "min(ts)",
            "max(ts)",
            *[f"min({c})" for c in METRIC_COLUMNS],
            *[f"max({c})" for c in METRIC_COLUMNS],
        ),
        _SAMPLE_KEY,
        _SAMPLE_LOW,
        _SAMPLE_HIGH,
    ),
    "scalar_rollups": _Spec(
        "scalars",
        SCALAR_WIDTHS,
        ("job_id", "name"),
        ("count(*)", "min(step)", "max(step)", "min(ts)", "max(ts)", "min(value)", "max(value)"),
        _SCALAR_KEY,
        _SCALAR_LOW,
        _SCALAR_HIGH,
    ),
}


def _rollup_sql(table: Table, dialect: str, where: str) -> str:
    """``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE``: the raw rows
    matching ``where``, aggregated per job (and name), width and interval, added
    to the stored roll-ups (counts add; minima and maxima combine). Samples are
    cut by time (``floor(ts / width)``), training metrics by step (integer
    division on both backends).

    PostgreSQL's ``LEAST``/``GREATEST`` ignore NULLs; SQLite's two-argument
    ``min``/``max`` return NULL if either is, hence the ``coalesce`` pairs.
    """
    spec = _SPECS[table.name]
    if spec.raw == "scalars":
        bucket = "(step / w.width) * w.width"
    elif dialect == "sqlite":  # CAST truncates: the floor of a positive time
        bucket = "CAST(ts / w.width AS BIGINT) * w.width"
    else:
        bucket = "CAST(floor(ts / w.width) AS BIGINT) * w.width"
    widths = " UNION ALL ".join(f"SELECT {w} AS width" for w in spec.widths)
    groups = [*spec.groups, "w.width", bucket]
    name = table.name

    def pick(fn: str, col: str) -> str:
        a, b = f"{name}.{col}", f"excluded.{col}"
        if dialect == "postgresql":
            return f"{'LEAST' if fn == 'min' else 'GREATEST'}({a}, {b})"
        return f"{fn}(coalesce({a}, {b}), coalesce({b}, {a}))"

    sets = [f"n = {name}.n + excluded.n"]
    sets += [f"{col} = {pick('min', col)}" for col in spec.low]
    sets += [f"{col} = {pick('max', col)}" for col in spec.high]
    return (
        f"INSERT INTO {name} ({', '.join(c.name for c in table.columns)}) "
        f"SELECT {', '.join([*groups, *spec.aggregates])} FROM {spec.raw}, ({widths}) AS w "
        f"WHERE {where} GROUP BY {', '.join(groups)} "
        f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {', '.join(sets)}"
    )


_SINCE = {"sqlite": "id > :since", "postgresql": "id = ANY(%(ids)s)"}
_ADD = {
    (table.name, dialect): _rollup_sql(table, dialect, where)
    for table in (sample_rollups, scalar_rollups)
    for dialect, where in _SINCE.items()
}


def add(conn: Connection, table: Table, *, since: int = 0, ids: list[int] | None = None) -> None:
    """Add raw rows just inserted into ``samples`` (``table`` is
    :data:`sample_rollups`) or ``scalars`` (:data:`scalar_rollups`) to their
    roll-ups, inside ``conn``'s transaction, with one statement.

    On SQLite the rows are those whose ``id`` exceeds ``since`` (the table's
    highest id read before inserting: the writer holds SQLite's one write lock,
    so every such row is the caller's). On PostgreSQL, where other processes
    insert at the same time, they are the ``ids`` the insert returned.
    """
    dialect = conn.dialect.name
    params: dict[str, Any] = {"ids": ids or []} if dialect == "postgresql" else {"since": since}
    cursor: Any = conn.connection.cursor()
    try:
        cursor.execute(_ADD[(table.name, dialect)], params)
    finally:
        cursor.close()


def delete_jobs(conn: Connection, job_ids: Any) -> None:
    """Delete the roll-ups of ``job_ids`` (a list or a subquery of ids)."""
    conn.execute(delete(sample_rollups).where(sample_rollups.c.job_id.in_(job_ids)))
    conn.execute(delete(scalar_rollups).where(scalar_rollups.c.job_id.in_(job_ids)))


def missing_tables(conn: Connection) -> list[str]:
    """Names of the roll-up tables ``conn``'s database lacks (call before creating them)."""
    inspector = inspect(conn)
    return [t.name for t in (sample_rollups, scalar_rollups) if not inspector.has_table(t.name)]


def backfill(
    conn: Connection, tables: Iterable[str] = ("sample_rollups", "scalar_rollups")
) -> None:
    """Compute the roll-ups in ``tables`` from every raw row, with the statement
    ingest uses for new rows (:func:`add`): for a database made before the
    roll-ups existed, and for tools that write raw rows in bulk. Rows already
    in the tables are added to, so they must hold no row of the jobs concerned."""
    for table in (sample_rollups, scalar_rollups):
        if table.name in tables:
            conn.execute(text(_rollup_sql(table, conn.dialect.name, "true")))
