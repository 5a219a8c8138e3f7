"""The storage schema, in SQLAlchemy Core, shared by the SQLite and PostgreSQL stores.

Times are stored as seconds since the Unix epoch (UTC, double precision) so
that windows and estimates are plain arithmetic on every backend. JSON values
are stored as text and decoded by :func:`decode_row`, the same on every
backend and on the driver-level write path (:mod:`sqlexec`).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from jobwatch.contract.job_fields import JOB_FIELDS, JobField
from jobwatch.contract.metrics import METRICS

metadata = MetaData()

_SQL_TYPES: dict[str, Any] = {
    "text": Text,
    "float": Float,
    "integer": Integer,
    "bigint": BigInteger,
    "json": Text,
}
"""SQLAlchemy type of each :data:`~jobwatch.contract.job_fields.SqlType`."""


def _job_column(field: JobField) -> Column[Any]:
    """The ``jobs`` column of one :class:`~jobwatch.contract.job_fields.JobField`."""
    kind = String(field.length) if field.sql == "text" and field.length else _SQL_TYPES[field.sql]
    return Column(
        field.column,
        kind,
        primary_key=field.primary_key,
        nullable=field.nullable,
        server_default=field.server_default,
        doc=field.description,
    )


jobs = Table("jobs", metadata, *(_job_column(f) for f in JOB_FIELDS))
Index("ix_jobs_created", jobs.c.created_at)
Index("ix_jobs_tenant_created", jobs.c.tenant, jobs.c.created_at)
Index("ix_jobs_status_created", jobs.c.status, jobs.c.created_at)

samples = Table(
    "samples",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("job_id", String(128), nullable=False),
    Column("ts", Float, nullable=False),
    *(Column(m.column, Float, doc=m.unit) for m in METRICS),
    Column("gpus", Text, doc="JSON list of per-GPU samples"),
)
Index("ix_samples_job_ts", samples.c.job_id, samples.c.ts)

log_lines = Table(
    "log_lines",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("job_id", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", Float, nullable=False),
    Column("level", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("rank", Integer, doc="the rank that logged it (distributed jobs)"),
    Column("node", Text, doc="the node that logged it (distributed jobs)"),
)
Index("ix_log_lines_job_id", log_lines.c.job_id, log_lines.c.id)
Index("ix_log_lines_job_level_id", log_lines.c.job_id, log_lines.c.level, log_lines.c.id)
Index("ix_log_lines_job_seq", log_lines.c.job_id, log_lines.c.seq)

scalars = Table(
    "scalars",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("job_id", String(128), nullable=False),
    Column("name", String(64), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("ts", Float, nullable=False),
    Column("value", Float, nullable=False),
)
Index("ix_scalars_job_name_ts", scalars.c.job_id, scalars.c.name, scalars.c.ts)

alerts = Table(
    "alerts",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("seq", BigInteger, primary_key=True, doc="its JOB_ALERT event's seq"),
    Column("ts", Float, nullable=False),
    Column("level", String(8), nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text),
    Column("source", String(16), nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("worker_id", Text, nullable=False),
    Column("node", Text, nullable=False),
    Column("local_rank", Integer),
    Column("status", String(16), nullable=False, doc="running, silent, left or finished"),
    Column("first_at", Float, nullable=False),
    Column("last_at", Float, nullable=False),
    Column("progress", Float, nullable=False),
    Column("current_operation", Text),
    Column("price_per_hour", Float, doc="its node's price, if it meters the node"),
    Column("cost", Float, nullable=False, server_default="0", doc="cost its node accrued"),
    Column("rate", Float, doc="smoothed progress rate, percent per second"),
    Column("straggler", Integer, nullable=False, server_default="0", doc="1 while flagged"),
)

price_segments = Table(
    "price_segments",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("start_at", Float, primary_key=True, doc="server time its price took effect"),
    Column("end_at", Float, nullable=False, doc="server time the next price took over"),
    Column("price_per_hour", Float, nullable=False, doc="in the job's currency"),
)

applied_updates = Table(
    "applied_updates",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("update_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False, doc="the job's seq after the update"),
    Column("reply", Text, nullable=False, doc="JSON: the answer, repeated to a retry"),
)
Index("ix_applied_updates_job_seq", applied_updates.c.job_id, applied_updates.c.seq)

tenants = Table(
    "tenants",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("max_jobs", BigInteger, nullable=False, doc="0: no limit"),
    Column("max_bytes", BigInteger, nullable=False, doc="0: no limit"),
    Column("max_connections", Integer, nullable=False, doc="per server process; 0: no limit"),
    Column("created_at", Float, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True, doc="public: what lists show, revoking names"),
    Column("hash", String(64), nullable=False, doc="hex SHA-256 of the token (core.tokens)"),
    Column("kind", String(8), nullable=False, doc="write, read, worker or share"),
    Column("tenant", String(32), doc="NULL: a worker or share token of an operator's job"),
    Column("job_id", String(128), doc="the one job of a worker or share token"),
    Column("label", Text),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, doc="NULL: never"),
    Column("revoked_at", Float, doc="NULL: in force"),
)
Index("ix_tokens_tenant", tokens.c.tenant)

server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False, doc="made once by the first process, shared by all"),
)

SAMPLE_FIELDS = {m.wire: samples.c[m.column] for m in METRICS}
"""Wire name -> column of the flat metric fields, in wire order."""

JSON_COLUMNS = (
    *(f.column for f in JOB_FIELDS if f.sql == "json"),
    "gpus",
    "reply",
)
"""Columns holding JSON text."""


def encode_json(value: Any) -> str | None:
    """JSON text for a JSON column (``None`` stays SQL NULL)."""
    return None if value is None else orjson.dumps(value).decode()


def decode_row(row: Any) -> dict[str, Any]:
    """A stored row as a dict, with its JSON columns decoded."""
    out = dict(row)
    for name in JSON_COLUMNS:
        text = out.get(name)
        if text is not None:
            out[name] = orjson.loads(text)
    return out


def add_missing_columns(conn: Any) -> list[str]:
    """Add the columns a database made by an earlier version lacks (``ALTER TABLE
    ... ADD COLUMN`` with each column's server default); returns their names.

    ``metadata.create_all`` creates missing tables but never changes existing
    ones, and every column added since the first release is nullable or has a
    server default, so this is all an upgrade needs (no migration tool).
    """
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateColumn

    inspector = inspect(conn)
    added = []
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                spec = CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {spec}")
                added.append(f"{table.name}.{column.name}")
    return added
