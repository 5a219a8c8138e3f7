"""The ``workers`` table: one row per rank of a distributed job.

Rows are read and written inside the store's transactions (the job's row lock
is held), straight through the connection: a rank's row is written at most
once per update, so it gains nothing from the batch's queues.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, bindparam, func, select

from jobwatch.server.core.workers import WorkerRow
from jobwatch.server.storage.schema import workers
from jobwatch.server.storage.sqlexec import Prepared

__all__ = ["counts", "finish", "job_workers", "leave_beyond", "read", "write"]

_SELECT = Prepared(
    select(workers).where(
        (workers.c.job_id == bindparam("b_job_id")) & (workers.c.rank == bindparam("b_rank"))
    )
)
_INSERT = Prepared(workers.insert())
_UPDATE = Prepared(
    workers.update().where(
        (workers.c.job_id == bindparam("b_job_id")) & (workers.c.rank == bindparam("b_rank"))
    )
)
_COLUMNS = [c.name for c in workers.columns]


def read(conn: Connection, job_id: str, rank: int) -> WorkerRow | None:
    """The row of ``rank`` in ``job_id``, or ``None``."""
    row = _SELECT.first(conn, {"b_job_id": job_id, "b_rank": rank})
    return None if row is None else cast(WorkerRow, dict(row))


def job_workers(conn: Connection, job_id: str) -> list[WorkerRow]:
    """Every row of ``job_id``, by rank."""
    query = select(workers).where(workers.c.job_id == job_id).order_by(workers.c.rank)
    return [cast(WorkerRow, dict(r)) for r in conn.execute(query).mappings()]


def write(conn: Connection, row: WorkerRow, *, exists: bool) -> None:
    """Insert ``row`` (``exists=False``) or replace the stored row of its rank."""
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}  # type: ignore[literal-required]
    if exists:
        params = {k: v for k, v in values.items() if k not in ("job_id", "rank")}
        _UPDATE.execute(conn, {**params, "b_job_id": row["job_id"], "b_rank": row["rank"]})
    else:
        _INSERT.execute(conn, values)


def counts(conn: Connection, job_id: str) -> tuple[int, int]:
    """(workers that have not left, their distinct nodes) of ``job_id``."""
    query = select(func.count(), func.count(workers.c.node.distinct())).where(
        (workers.c.job_id == job_id) & (workers.c.status != "left")
    )
    n_workers, n_nodes = conn.execute(query).one()
    return int(n_workers), int(n_nodes)


def finish(conn: Connection, job_id: str) -> None:
    """Mark the workers of a job that has just finished ``finished`` (those that left stay so)."""
    conn.execute(
        workers.update()
        .where((workers.c.job_id == job_id) & workers.c.status.in_(("running", "silent")))
        .values(status="finished")
    )


def leave_beyond(conn: Connection, job_id: str, world_size: int) -> bool:
    """Mark the ranks at or above ``world_size`` ``left`` (an elastic restart with fewer
    ranks); returns whether any was still counted."""
    result = conn.execute(
        workers.update()
        .where(
            (workers.c.job_id == job_id)
            & (workers.c.rank >= world_size)
            & (workers.c.status != "left")
        )
        .values(status="left")
    )
    return bool(result.rowcount)
