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
  (taken from :data:`~jobwatch.server.schema.SAMPLE_FIELDS`).
- ``scalar_rollups``: intervals of :data:`SCALAR_WIDTHS` steps per metric name.

No mean is kept: no answer needs one (downsampling keeps each span's minimum
and maximum so spikes show).

A database made before the roll-ups existed gets them from its raw rows once,
when the tables are created (:func:`backfill`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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

from jobwatch.server.schema import SAMPLE_FIELDS, metadata

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


def sample_rows(samples: Iterable[Row]) -> list[Row]:
    """The ``sample_rollups`` changes for raw ``samples`` rows (``job_id``, ``ts``
    in seconds and the metric columns): one row per job, width and interval,
    several samples of one interval already combined (minima and maxima ignore
    ``None``)."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for sample in samples:
        ts, job_id = sample["ts"], sample["job_id"]
        for width in SAMPLE_WIDTHS:
            groups.setdefault((job_id, width, int(ts // width) * width), []).append(sample)
    rows = []
    for (job_id, width, bucket), members in groups.items():
        times = [m["ts"] for m in members]
        row: Row = {"job_id": job_id, "width": width, "bucket": bucket, "n": len(members)}
        row["t0"], row["t1"] = min(times), max(times)
        for name in METRIC_COLUMNS:
            values = [v for m in members if (v := m[name]) is not None]
            row[f"min_{name}"] = min(values) if values else None
            row[f"max_{name}"] = max(values) if values else None
        rows.append(row)
    return rows


def scalar_rows(points: Iterable[Row]) -> list[Row]:
    """The ``scalar_rollups`` changes for raw ``scalars`` rows (``job_id``,
    ``name``, ``step``, ``ts``, ``value``), combined per interval."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for p in points:
        step, job_id, name = p["step"], p["job_id"], p["name"]
        for width in SCALAR_WIDTHS:
            groups.setdefault((job_id, name, width, step // width * width), []).append(p)
    rows = []
    for (job_id, name, width, bucket), members in groups.items():
        steps = [m["step"] for m in members]
        times = [m["ts"] for m in members]
        values = [m["value"] for m in members]
        rows.append(
            {"job_id": job_id, "name": name, "width": width, "bucket": bucket}
            | {"n": len(members), "s0": min(steps), "s1": max(steps)}
            | {"t0": min(times), "t1": max(times), "low": min(values), "high": max(values)}
        )
    return rows


def _upsert_sql(
    table: Table, key: tuple[str, ...], low: list[str], high: list[str], dialect: str
) -> str:
    """``INSERT ... ON CONFLICT DO UPDATE`` combining a new row with the stored one.

    PostgreSQL's ``LEAST``/``GREATEST`` ignore NULLs; SQLite's two-argument
    ``min``/``max`` return NULL if either is, hence the ``coalesce`` pairs.
    """
    names = [c.name for c in table.columns]
    name = table.name

    def pick(fn: str, col: str) -> str:
        a, b = f"{name}.{col}", f"excluded.{col}"
        if dialect == "postgresql":
            return f"{'LEAST' if fn == 'min' else 'GREATEST'}({a}, {b})"
        return f"{fn}(coalesce({a}, {b}), coalesce({b}, {a}))"

    sets = [f"n = {name}.n + excluded.n"]
    sets += [f"{col} = {pick('min', col)}" for col in low]
    sets += [f"{col} = {pick('max', col)}" for col in high]
    if dialect == "postgresql":
        source = _pg_unnest(table, names)
        head = f"INSERT INTO {name} ({', '.join(names)}) SELECT {', '.join(names)} FROM {source}"
    else:
        head = (
            f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
        )
    return f"{head} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"


def _pg_unnest(table: Table, names: list[str]) -> str:
    types = {"FLOAT": "float8", "BIGINT": "int8", "INTEGER": "int4"}
    arrays = ", ".join(
        f"%({n})s::{types.get(str(table.c[n].type).split('(')[0], 'text')}[]" for n in names
    )
    return f"unnest({arrays}) AS v({', '.join(names)})"


_UPSERTS = {
    (table.name, dialect): _upsert_sql(table, key, low, high, dialect)
    for table, key, low, high in (
        (sample_rollups, _SAMPLE_KEY, _SAMPLE_LOW, _SAMPLE_HIGH),
        (scalar_rollups, _SCALAR_KEY, _SCALAR_LOW, _SCALAR_HIGH),
    )
    for dialect in ("sqlite", "postgresql")
}


def upsert(conn: Connection, table: Table, rows: list[Row]) -> None:
    """Add roll-up ``rows`` (from :func:`sample_rows` or :func:`scalar_rows`) to
    ``table`` inside ``conn``'s transaction: one ``executemany`` on SQLite, one
    statement of arrays on PostgreSQL (rows must be distinct per interval, as
    those functions return them)."""
    if not rows:
        return
    sql = _UPSERTS[(table.name, conn.dialect.name)]
    cursor: Any = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            names = [c.name for c in table.columns]
            cursor.execute(sql, {n: [row[n] for row in rows] for n in names})
        else:
            cursor.executemany(sql, rows)
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
    """Compute the roll-ups in ``tables`` from every raw row (``INSERT ... SELECT
    ... GROUP BY``, one statement per width): for a database made before the
    roll-ups existed, and for tools that write raw rows in bulk. The tables
    must hold no row of the jobs concerned."""
    floor = "CAST(({v}) / {w} AS BIGINT)" if conn.dialect.name == "sqlite" else "floor(({v}) / {w})"
    if "sample_rollups" in tables:
        names = [c.name for c in sample_rollups.columns]
        for width in SAMPLE_WIDTHS:
            bucket = f"CAST({floor.format(v='ts', w=f'{width}.0')} AS BIGINT) * {width}"
            values = [
                "job_id",
                str(width),
                bucket,
                "count(*)",
                "min(ts)",
                "max(ts)",
                *[f"min({c})" for c in METRIC_COLUMNS],
                *[f"max({c})" for c in METRIC_COLUMNS],
            ]
            conn.execute(
                text(
                    f"INSERT INTO sample_rollups ({', '.join(names)}) "
                    f"SELECT {', '.join(values)} FROM samples GROUP BY job_id, {bucket}"
                )
            )
    if "scalar_rollups" in tables:
        names = [c.name for c in scalar_rollups.columns]
        for width in SCALAR_WIDTHS:
            bucket = f"(step / {width}) * {width}"  # integer division on both backends
            values = [
                "job_id",
                "name",
                str(width),
                bucket,
                "count(*)",
                "min(step)",
                "max(step)",
                "min(ts)",
                "max(ts)",
                "min(value)",
                "max(value)",
            ]
            conn.execute(
                text(
                    f"INSERT INTO scalar_rollups ({', '.join(names)}) "
                    f"SELECT {', '.join(values)} FROM scalars GROUP BY job_id, name, {bucket}"
                )
            )
