"""The ``price_segments`` table: the closed price segments of jobs whose price changed
while they ran (:mod:`jobwatch.server.core.pricing`).

Rows are written inside the store's transactions (the job's row lock is held),
straight through the connection: a price changes rarely, so a segment gains
nothing from the batch's queues.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, select

from jobwatch.server.core.job_row import ListedJob
from jobwatch.server.core.pricing import PriceTimeline
from jobwatch.server.storage.schema import price_segments
from jobwatch.server.storage.sqlexec import Prepared

__all__ = ["delete_jobs", "insert", "of_job", "of_jobs", "timeline"]

_INSERT = Prepared(price_segments.insert())
_CHUNK = 500
"""Job ids per ``IN (...)`` of :func:`of_jobs` (far below SQLite's parameter limit)."""


def insert(conn: Connection, row: dict[str, Any]) -> None:
    """Store one closed segment (``job_id, start_at, end_at, price_per_hour``)."""
    _INSERT.execute(conn, row).close()


def of_job(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    """The closed segments of ``job_id``, oldest first."""
    query = (
        select(price_segments)
        .where(price_segments.c.job_id == job_id)
        .order_by(price_segments.c.start_at)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def of_jobs(conn: Connection, job_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The closed segments of each of ``job_ids`` that has any, oldest first."""
    ids = list(job_ids)
    found: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(ids), _CHUNK):
        query = (
            select(price_segments)
            .where(price_segments.c.job_id.in_(ids[i : i + _CHUNK]))
            .order_by(price_segments.c.job_id, price_segments.c.start_at)
        )
        for row in conn.execute(query).mappings():
            found.setdefault(row["job_id"], []).append(dict(row))
    return found


def timeline(conn: Connection, job: ListedJob, now: float) -> PriceTimeline:
    """The job's prices over its run, its current segment ending at ``now``."""
    closed = of_job(conn, job["id"]) if job["price_from"] is not None else []
    return PriceTimeline(job, closed, now)


def delete_jobs(conn: Connection, job_ids: Any) -> None:
    """Delete the segments of ``job_ids`` (a list or a ``SELECT`` of ids)."""
    conn.execute(delete(price_segments).where(price_segments.c.job_id.in_(job_ids)))
