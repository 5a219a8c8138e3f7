"""One write transaction's statements, as few as the database needs.

The writer runs a batch of operations in one transaction (see
:mod:`~jobwatch.server.storage.writer`). A batch:

1. reads all its jobs' rows at its start (on PostgreSQL in one
   ``SELECT ... FOR UPDATE``, in id order, so two processes' batches never
   deadlock);
2. lets its operations work on those rows in memory, queueing samples,
   training metrics, log lines and row changes;
3. writes them at the end, before the commit and before any event is
   published: each changed job row once, with its final values; the samples'
   and training metrics' roll-ups once per interval (:mod:`rollups`).

On PostgreSQL every statement is a round trip, and under gevent each one
also costs a wait through the event loop (measured: a third of a worker's
CPU under load), so there each table gets one statement: rows as arrays
through ``unnest``, log lines as one multi-row ``INSERT`` whose ``RETURNING``
ids come back in order (SQLAlchemy's insertmanyvalues). SQLite runs inside
this process, where a statement costs microseconds but its Python work does
not: there the batch's samples go through one ``executemany``, and a job
updated 30 times in a batch is written once (docs/performance.md, "Ingest").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Table, bindparam, delete, select

from jobwatch.contract.job_fields import JOB_FIELDS
from jobwatch.server.core.job_row import JobRow, job_row
from jobwatch.server.core.rules import UPDATE_IDS_KEPT
from jobwatch.server.storage import rollups
from jobwatch.server.storage.schema import (
    alerts,
    applied_updates,
    decode_row,
    encode_json,
    jobs,
    log_lines,
    samples,
    scalars,
)
from jobwatch.server.storage.sqlexec import Prepared

Row = dict[str, Any]

_SELECT_JOB = Prepared(select(jobs).where(jobs.c.id == bindparam("b_job_id")))
_SELECT_JOB_FOR_UPDATE = Prepared(
    select(jobs).where(jobs.c.id == bindparam("b_job_id")).with_for_update()
)
_INSERT_JOB = Prepared(jobs.insert())
_UPDATE_JOB = Prepared(jobs.update().where(jobs.c.id == bindparam("b_job_id")))
_INSERT_SAMPLE = Prepared(samples.insert())
_INSERT_SCALAR = Prepared(scalars.insert())
_INSERT_ALERT = Prepared(alerts.insert())
_INSERT_LOG = Prepared(log_lines.insert().returning(log_lines.c.id))
_SELECT_APPLIED = Prepared(
    select(applied_updates.c.reply).where(
        (applied_updates.c.job_id == bindparam("b_job_id"))
        & (applied_updates.c.update_id == bindparam("b_update_id"))
    )
)
_INSERT_APPLIED = Prepared(applied_updates.insert())
_FORGET_APPLIED = Prepared(
    delete(applied_updates).where(
        (applied_updates.c.job_id == bindparam("b_job_id"))
        & (applied_updates.c.seq < bindparam("b_below"))
    )
)
FORGET_EVERY = 1024
"""A job's old update ids are deleted when its ``seq`` crosses a multiple of this."""

_STATE = "jobwatch.batch"
_JSON_FIELDS = tuple(f.column for f in JOB_FIELDS if f.sql == "json")


class _Batch:
    """What a batch holds until :func:`finish`."""

    def __init__(self, locked: set[str]) -> None:
        self.locked = locked
        self.rows: dict[str, Row] = {}
        self.dirty: dict[str, set[str]] = {}
        self.samples: list[Row] = []
        self.scalars: list[Row] = []
        self.alerts: list[Row] = []
        self.logs: list[tuple[Row, Row]] = []
        self.applied: dict[tuple[str, str], Row] = {}


def _batch(conn: Connection) -> _Batch | None:
    batch: _Batch | None = conn.info.get(_STATE)
    return batch


def begin(conn: Connection, job_ids: list[str]) -> None:
    """Start a batch writing ``job_ids`` (sorted): read their rows (on PostgreSQL
    also lock them, in id order)."""
    batch = conn.info[_STATE] = _Batch(set(job_ids))
    if not job_ids:
        return
    # One statement: a batch holds at most the writer's max_batch (512) ids,
    # far below SQLite's limit on a statement's parameters (32,766).
    params: Any
    if conn.dialect.name == "postgresql":
        sql, params = _LOCK_ROWS, {"ids": job_ids}
    else:
        sql, params = _select_rows_sqlite(len(job_ids)), job_ids
    cursor: Any = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            row = decode_row(zip(names, values, strict=True))
            batch.rows[row["id"]] = row
    finally:
        cursor.close()


def finish(conn: Connection) -> None:
    """Write what the batch queued (before the commit)."""
    flush(conn)
    conn.info.pop(_STATE, None)


def flush(conn: Connection) -> None:
    """Write what is queued so far; rows stay cached and locked."""
    batch = _batch(conn)
    if batch is None:
        return
    postgres = conn.dialect.name == "postgresql"
    if batch.samples:
        _insert_rolled_up(conn, batch.samples, _SAMPLES)
        batch.samples = []
    if batch.scalars:
        _insert_rolled_up(conn, batch.scalars, _SCALARS)
        batch.scalars = []
    if batch.alerts:
        _INSERT_ALERT.execute_many(conn, batch.alerts)
        batch.alerts = []
    if batch.logs:
        _insert_logs(conn, batch.logs, postgres)
        batch.logs = []
    if batch.applied:
        _INSERT_APPLIED.execute_many(conn, [_applied(row) for row in batch.applied.values()])
        batch.applied = {}
    if batch.dirty:
        if postgres:
            rows = [_encoded(batch.rows[job_id]) for job_id in sorted(batch.dirty)]
            _run(conn, _UPDATE_ROWS, _columns(rows, _ROW_COLUMNS))
        else:
            # In this process a column costs its binding and its write: only the
            # columns that changed, one executemany per set of them (usually one).
            by_columns: dict[tuple[str, ...], list[Row]] = {}
            for job_id in sorted(batch.dirty):
                row = batch.rows[job_id]
                names = tuple(sorted(batch.dirty[job_id] - {"id"}))
                if not names:
                    continue
                changed = {"b_job_id": job_id, **{name: row[name] for name in names}}
                by_columns.setdefault(names, []).append(_encoded(changed))
            for changed_rows in by_columns.values():
                _UPDATE_JOB.execute_many(conn, changed_rows)
    batch.dirty = {}


def forget_rows(conn: Connection) -> None:
    """Write what is queued, then drop the cached rows (before deleting rows)."""
    flush(conn)
    batch = _batch(conn)
    if batch is not None:
        batch.rows.clear()
        batch.locked.clear()


def lock_job(conn: Connection, job_id: str) -> JobRow | None:
    """The job row (a copy), locked until commit where the database has row locks."""
    batch = _batch(conn)
    if batch is not None:
        if job_id in batch.rows:
            return job_row(dict(batch.rows[job_id]))
        if job_id in batch.locked:
            return None  # read at the start of the batch: it did not exist
        row = _SELECT_JOB_FOR_UPDATE.first(conn, {"b_job_id": job_id})
    else:
        row = _SELECT_JOB.first(conn, {"b_job_id": job_id})
    return job_row(decode_row(row)) if row is not None else None


def insert_job(conn: Connection, row: JobRow) -> None:
    """Insert a new job row (at once: a concurrent insert of the same id fails here)."""
    _INSERT_JOB.execute(conn, _encoded(row)).close()
    batch = _batch(conn)
    if batch is not None:
        batch.rows[row["id"]] = dict(row)


def update_job(conn: Connection, job_id: str, changes: Row) -> None:
    """Change columns of a job row (Python values; JSON columns are encoded here)."""
    batch = _batch(conn)
    if batch is not None and job_id in batch.rows:
        batch.rows[job_id].update(changes)
        batch.dirty.setdefault(job_id, set()).update(changes)
        return
    _UPDATE_JOB.execute(conn, _encoded({"b_job_id": job_id, **changes})).close()


def insert_sample(conn: Connection, row: Row) -> None:
    """Insert one metric sample row and add it to its roll-ups (:mod:`rollups`)."""
    batch = _batch(conn)
    if batch is not None:
        batch.samples.append(row)
    else:
        _insert_rolled_up(conn, [row], _SAMPLES)


def insert_scalars(conn: Connection, rows: list[Row]) -> None:
    """Insert training-metric rows (``job_id, name, step, ts, value``) and add
    them to their roll-ups (:mod:`rollups`)."""
    batch = _batch(conn)
    if batch is not None:
        batch.scalars.extend(rows)
    else:
        _insert_rolled_up(conn, rows, _SCALARS)


def insert_alerts(conn: Connection, rows: list[Row]) -> None:
    """Insert alert rows (``job_id, seq, ts, level, title, text, source``)."""
    batch = _batch(conn)
    if batch is not None:
        batch.alerts.extend(rows)
    else:
        _INSERT_ALERT.execute_many(conn, rows)


def insert_logs(conn: Connection, rows: list[Row], lines: list[Row]) -> None:
    """Insert log line rows; set each matching wire line's ``id`` (at
    :func:`flush` in a batch, else at once; always before the commit)."""
    batch = _batch(conn)
    if batch is not None:
        batch.logs.extend(zip(rows, lines, strict=True))
        return
    for row, line in zip(rows, lines, strict=True):
        line["id"] = _INSERT_LOG.scalar(conn, row)


def applied_reply(conn: Connection, job_id: str, update_id: str) -> Row | None:
    """The reply stored for ``update_id`` of ``job_id`` (also one queued in this
    batch), or ``None`` when that update was not applied."""
    batch = _batch(conn)
    if batch is not None and (job_id, update_id) in batch.applied:
        reply: Row = batch.applied[(job_id, update_id)]["reply"]
        return reply
    row = _SELECT_APPLIED.first(conn, {"b_job_id": job_id, "b_update_id": update_id})
    return None if row is None else dict(orjson.loads(row["reply"]))


def remember_update(conn: Connection, row: Row, previous_seq: int) -> None:
    """Store an applied update's id and reply (``row``: job_id, update_id, seq,
    reply as a dict); when the job's ``seq`` crosses a multiple of
    :data:`FORGET_EVERY`, delete its ids older than ``UPDATE_IDS_KEPT`` events."""
    batch = _batch(conn)
    if batch is not None:
        batch.applied[(row["job_id"], row["update_id"])] = row
    else:
        _INSERT_APPLIED.execute(conn, _applied(row)).close()
    if row["seq"] // FORGET_EVERY != previous_seq // FORGET_EVERY:
        params = {"b_job_id": row["job_id"], "b_below": row["seq"] - UPDATE_IDS_KEPT}
        _FORGET_APPLIED.execute(conn, params).close()


def _applied(row: Row) -> Row:
    return {**row, "reply": encode_json(row["reply"])}


_PG_TYPES = {"FLOAT": "float8", "BIGINT": "int8", "INTEGER": "int4"}


def _unnest(table: Any, names: list[str]) -> str:
    """``unnest(%(a)s::type[], ...) AS v(a, ...)``: one array parameter per column,
    so a statement's text (and psycopg's parse of it) is the same for any row count."""
    arrays = ", ".join(
        f"%({n})s::{_PG_TYPES.get(str(table.c[n].type).split('(')[0], 'text')}[]" for n in names
    )
    return f"unnest({arrays}) AS v({', '.join(names)})"


_ROW_COLUMNS = [c.name for c in jobs.columns]
_LOCK_ROWS = (
    f"SELECT {', '.join(_ROW_COLUMNS)} FROM jobs WHERE id = ANY(%(ids)s::text[]) "
    "ORDER BY id FOR UPDATE"
)
"""A batch's job rows, locked in id order (so two processes never deadlock)."""
_UPDATE_ROWS = (
    "UPDATE jobs SET "
    + ", ".join(f"{name} = v.{name}" for name in _ROW_COLUMNS if name != "id")
    + f" FROM {_unnest(jobs, _ROW_COLUMNS)} WHERE jobs.id = v.id"
)
"""Every changed job row of a batch in one statement."""


def _columns(rows: list[Row], names: list[str]) -> Row:
    return {name: [row[name] for row in rows] for name in names}


def _run(conn: Connection, sql: str, params: Row) -> None:
    cursor: Any = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
    finally:
        cursor.close()


class _RawTable(NamedTuple):
    """A raw table with roll-ups: how to insert its rows and find them again."""

    rollups: Table
    one_by_one: Prepared
    arrays_sql: str
    """PostgreSQL: every row of a batch in one statement of arrays, returning the ids."""
    columns: list[str]
    max_id: str


def _raw_table(table: Table, rollup_table: Table, one_by_one: Prepared) -> _RawTable:
    columns = [c.name for c in table.columns if c.name != "id"]
    names = ", ".join(columns)
    return _RawTable(
        rollup_table,
        one_by_one,
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_unnest(table, columns)} "
        "RETURNING id",
        columns,
        f"SELECT coalesce(max(id), 0) FROM {table.name}",
    )


_SAMPLES = _raw_table(samples, rollups.sample_rollups, _INSERT_SAMPLE)
_SCALARS = _raw_table(scalars, rollups.scalar_rollups, _INSERT_SCALAR)


def _insert_rolled_up(conn: Connection, rows: list[Row], raw: _RawTable) -> None:
    """Insert ``rows`` into ``raw``'s table and add them to its roll-ups: on
    PostgreSQL one statement of arrays returning the new ids, on SQLite one
    ``executemany`` after reading the highest id; then one roll-up statement
    (:func:`rollups.add`)."""
    cursor: Any = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(raw.arrays_sql, _columns(rows, raw.columns))
            rollups.add(conn, raw.rollups, ids=[row[0] for row in cursor.fetchall()])
            return
        cursor.execute(raw.max_id)
        (since,) = cursor.fetchone()
    finally:
        cursor.close()
    raw.one_by_one.execute_many(conn, rows)
    rollups.add(conn, raw.rollups, since=since)


def _insert_logs(conn: Connection, logs: list[tuple[Row, Row]], postgres: bool) -> None:
    """Insert queued log rows and set each wire line's ``id``."""
    if postgres:
        # SQLAlchemy's "insertmanyvalues": one multi-row INSERT per 1,000 rows,
        # RETURNING in the order of the parameters.
        result = conn.execute(
            log_lines.insert().returning(log_lines.c.id, sort_by_parameter_order=True),
            [row for row, _ in logs],
        )
        for (_, line), log_id in zip(logs, result.scalars(), strict=True):
            line["id"] = log_id
        return
    # SQLite: one executemany. The batch holds the database's write lock, and SQLite
    # gives a row inserted without an id the highest id so far plus one
    # (https://sqlite.org/autoinc.html), so the lines' ids are the consecutive ones
    # ending at the highest id after the insert.
    cursor: Any = conn.connection.cursor()
    try:
        cursor.executemany(
            _INSERT_LOG_SQLITE, [[row[name] for name in _LOG_COLUMNS] for row, _ in logs]
        )
        cursor.execute(_MAX_LOG_ID)
        (last,) = cursor.fetchone()
    finally:
        cursor.close()
    for line_id, (_, line) in enumerate(logs, start=last - len(logs) + 1):
        line["id"] = line_id


_LOG_COLUMNS = [c.name for c in log_lines.columns if c.name != "id"]
_MAX_LOG_ID = "SELECT max(id) FROM log_lines"
_INSERT_LOG_SQLITE = f"INSERT INTO log_lines ({', '.join(_LOG_COLUMNS)}) VALUES ({', '.join('?' * len(_LOG_COLUMNS))})"


def _select_rows_sqlite(n: int) -> str:
    return f"SELECT {', '.join(_ROW_COLUMNS)} FROM jobs WHERE id IN ({', '.join('?' * n)})"


def _encoded(params: Mapping[str, Any]) -> Row:
    out = dict(params)
    for name in _JSON_FIELDS:
        if name in out:
            out[name] = encode_json(out[name])
    return out
