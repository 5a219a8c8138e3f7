"""The workers of a distributed job, without I/O: binding by rank, per-node cost,
silent workers and stragglers.

A job reported to with a ``worldSize`` accepts that many workers, one per rank
(``0 <= rank < worldSize``); a job without one keeps the seed's binding to one
worker. Rank 0 sets the job's progress and operation; every rank's own
progress, operation, last update and rate are kept in its :class:`WorkerRow`.
A rank whose worker id changes (an elastic restart: a node left, another took
its ranks) continues the same job: the new worker takes the rank over.

Cost when nodes report their own price (``nodePricePerHour``, sent by one
worker per node): each such worker accrues its price times the time between
its consecutive updates, so a node's cost is its reported time times its price
(integrated over price changes); the job's cost so far is the sum over nodes
(docs/api.md "Distributed jobs").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, TypedDict

from jobwatch.contract.basics import FINISHED_STATUSES, format_ts
from jobwatch.contract.requests import ProgressUpdate
from jobwatch.errors import WorkerMismatch
from jobwatch.server.core.alerts.alert_rules import Alert
from jobwatch.server.core.job_row import JobChanges, JobRow

__all__ = [
    "RATE_SMOOTHING",
    "STRAGGLER_CLEAR",
    "STRAGGLER_RATIO",
    "WorkerOutcome",
    "WorkerRow",
    "check_distributed",
    "silent",
    "single_worker",
    "stragglers",
    "worker_to_wire",
    "worker_update",
]

RATE_SMOOTHING = 0.3
"""Weight of the newest step in a worker's smoothed progress rate (tqdm's default
``smoothing``, as the job's own rate)."""

STRAGGLER_RATIO = 0.5
"""A worker is a straggler while its smoothed progress rate is below this share of
the median rate of the job's running workers (at least three with a rate). The
rule compares each rank with its peers as Megatron-LM's ``StragglerDetector``
does (``megatron/core/utils.py``: the slowest rank's throughput relative to the
others); the threshold of one half is ours: a rank at half its peers' speed
holds a synchronous job back by a factor of two."""

STRAGGLER_CLEAR = 0.75
"""A straggler is cleared once its rate is back above this share of the median
(hysteresis, so a rank near the threshold does not flap)."""


class WorkerRow(TypedDict):
    """One row of ``schema.workers``: one rank of a distributed job."""

    job_id: str
    rank: int
    worker_id: str
    node: str
    local_rank: int | None
    status: str  # running, silent, left or finished
    first_at: float  # server time of its first update (s since the epoch)
    last_at: float  # server time of its latest update
    progress: float  # its own progress, percent
    current_operation: str | None
    price_per_hour: float | None  # its node's price, when it meters the node
    cost: float  # what its node accrued while it metered
    rate: float | None  # smoothed progress rate, percent per second
    straggler: int  # 1 while flagged


@dataclass
class WorkerOutcome:
    """What one update of a rank changes: its row, the job's columns, alerts."""

    row: WorkerRow
    job_changes: JobChanges = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    recount: bool = False  # a rank joined, left or moved node: recount workers and nodes


def check_distributed(job: JobRow, update: ProgressUpdate) -> JobChanges:
    """Whether ``update`` may write to ``job`` as one rank of a distributed job;
    the job's changes when it becomes (or resizes as) one.

    Raises
    ------
    WorkerMismatch
        The job is distributed and the update names no rank (403), or the job is
        bound to one worker (the seed's binding) and another worker sends a rank.
    """
    if update.world_size is None:
        if job["world_size"] is not None:
            raise WorkerMismatch(
                f"job {job['id']!r} is a distributed job of {job['world_size']} ranks: "
                'an update must give its "rank" and "worldSize"'
            )
        return {}
    bound = job["worker_id"]
    if job["world_size"] is None and bound is not None and bound != update.worker_id:
        raise WorkerMismatch(
            f"job {job['id']!r} is bound to worker {bound!r} (one worker, no worldSize); "
            f"worker {update.worker_id!r} may not write to it"
        )
    changes: JobChanges = {}
    if update.world_size != job["world_size"]:
        changes["world_size"] = update.world_size  # first, or an elastic resize
    if update.rank == 0 and bound != update.worker_id:
        changes["worker_id"] = update.worker_id  # rank 0 speaks for the job
    return changes


def worker_update(
    job: JobRow, worker: WorkerRow | None, update: ProgressUpdate, now: float
) -> WorkerOutcome:
    """Apply an update of rank ``update.rank`` to its row (``None``: its first).

    Returns
    -------
    WorkerOutcome
        The worker's new row; the job's ``node_cost`` and ``node_rate`` when the
        worker meters its node; an ``info`` alert (source ``worker_silent``) when a
        silent worker reports again; ``recount`` when a rank joins or changes
        worker or node.
    """
    assert update.rank is not None  # the caller checked (check_distributed)
    node = update.node or update.worker_id
    outcome = WorkerOutcome(row=_new_row(job, update, node, now))
    row = outcome.row
    if worker is None or worker["worker_id"] != update.worker_id:
        outcome.recount = True
        replaced = _counted_price(worker)
        if replaced:  # the replaced worker's node stops metering
            outcome.job_changes["node_rate"] = max(0.0, (job["node_rate"] or 0.0) - replaced)
        worker = None
    else:
        row["first_at"] = worker["first_at"]
        row["cost"] = worker["cost"]
        row["straggler"] = worker["straggler"]
        row["rate"] = _rate(worker, update.progress, now)
        if worker["node"] != node:
            outcome.recount = True
        if worker["status"] == "silent":
            outcome.alerts.append(
                Alert(
                    "info",
                    f"worker {update.worker_id} reports again",
                    f"rank {update.rank} on node {node} was silent for "
                    f"{now - worker['last_at']:.0f} s",
                    "worker_silent",
                )
            )
    _meter(job, worker, row, update, now, outcome)
    return outcome


def _new_row(job: JobRow, update: ProgressUpdate, node: str, now: float) -> WorkerRow:
    assert update.rank is not None
    return {
        "job_id": job["id"],
        "rank": update.rank,
        "worker_id": update.worker_id,
        "node": node,
        "local_rank": update.local_rank,
        "status": "running",
        "first_at": now,
        "last_at": now,
        "progress": update.progress,
        "current_operation": update.current_operation,
        "price_per_hour": update.node_price_per_hour,
        "cost": 0.0,
        "rate": None,
        "straggler": 0,
    }


def _rate(worker: WorkerRow, progress: float, now: float) -> float | None:
    """The worker's smoothed progress rate after moving to ``progress`` at ``now``."""
    dt = now - worker["last_at"]
    if dt <= 0 or progress < worker["progress"]:
        return worker["rate"]
    step = (progress - worker["progress"]) / dt
    if worker["rate"] is None:
        return step
    return RATE_SMOOTHING * step + (1 - RATE_SMOOTHING) * worker["rate"]


def _meter(
    job: JobRow,
    worker: WorkerRow | None,
    row: WorkerRow,
    update: ProgressUpdate,
    now: float,
    outcome: WorkerOutcome,
) -> None:
    """Accrue the node's cost since the worker's last update, at its previous
    price, and keep ``node_rate`` the sum of the running meters' prices."""
    after = update.node_price_per_hour
    counted = _counted_price(worker)
    if worker is not None and counted:
        accrued = counted * max(0.0, now - worker["last_at"]) / 3600.0
        row["cost"] = worker["cost"] + accrued
        outcome.job_changes["node_cost"] = (job["node_cost"] or 0.0) + accrued
    if after is None and counted is None:
        return
    rate = outcome.job_changes.get("node_rate", job["node_rate"]) or 0.0
    outcome.job_changes["node_rate"] = max(0.0, rate - (counted or 0.0) + (after or 0.0))
    outcome.job_changes.setdefault("node_cost", job["node_cost"] or 0.0)


def _counted_price(worker: WorkerRow | None) -> float | None:
    """The price ``worker`` adds to the job's ``node_rate`` now (only while running)."""
    if worker is None or worker["status"] != "running":
        return None
    return worker["price_per_hour"]


def silent(
    job: JobRow, workers: list[WorkerRow], now: float, silent_after: float
) -> list[tuple[WorkerRow, Alert]]:
    """Workers of a running job that went silent while another kept reporting.

    A worker is silent once ``silent_after`` seconds passed since its last update
    while some other worker of the job updated within that time (when every
    worker is quiet the whole job is stalled instead: :func:`~jobwatch.server.core.alerts.alert_rules.stall`).

    Returns
    -------
    list of (row, alert)
        Each newly silent worker's row with status ``silent`` and its
        ``warning`` alert (source ``worker_silent``).
    """
    if job["status"] != "running":
        return []
    running = [w for w in workers if w["status"] in ("running", "silent")]
    if not any(now - w["last_at"] < silent_after for w in running):
        return []
    found = []
    for worker in running:
        quiet = now - worker["last_at"]
        if worker["status"] == "running" and quiet >= silent_after:
            others = sum(
                1 for w in running if w is not worker and now - w["last_at"] < silent_after
            )
            alert = Alert(
                "warning",
                f"worker {worker['worker_id']} is silent",
                f"rank {worker['rank']} on node {worker['node']}: no update for {quiet:.0f} s "
                f"while {others} other worker(s) report; its process may have died or its "
                "node may have been taken",
                "worker_silent",
            )
            found.append((_with(worker, status="silent"), alert))
    return found


def stragglers(workers: list[WorkerRow]) -> list[tuple[WorkerRow, Alert]]:
    """Workers whose straggler flag changes (:data:`STRAGGLER_RATIO`, :data:`STRAGGLER_CLEAR`).

    Returns
    -------
    list of (row, alert)
        The changed rows, with a ``warning`` alert when a worker becomes a
        straggler and an ``info`` one when it catches up (source ``straggler``).
    """
    rated = [w for w in workers if w["status"] == "running" and w["rate"] is not None]
    if len(rated) < 3:
        return []
    median = statistics.median(w["rate"] for w in rated if w["rate"] is not None)
    if median <= 0:
        return []
    changed = []
    for worker in rated:
        share = (worker["rate"] or 0.0) / median
        if not worker["straggler"] and share < STRAGGLER_RATIO:
            alert = Alert(
                "warning",
                f"worker {worker['worker_id']} is a straggler",
                f"rank {worker['rank']} on node {worker['node']} moves at {share:.0%} of the "
                f"median rate of {len(rated)} workers",
                "straggler",
            )
            changed.append((_with(worker, straggler=1), alert))
        elif worker["straggler"] and share >= STRAGGLER_CLEAR:
            alert = Alert(
                "info",
                f"worker {worker['worker_id']} caught up",
                f"rank {worker['rank']} on node {worker['node']} moves at {share:.0%} of the median",
                "straggler",
            )
            changed.append((_with(worker, straggler=0), alert))
    return changed


def _with(worker: WorkerRow, **changes: Any) -> WorkerRow:
    """A copy of ``worker`` with ``changes``."""
    row = worker.copy()
    row.update(changes)  # type: ignore[typeddict-item]
    return row


def single_worker(job: JobRow) -> dict[str, Any]:
    """The one worker of a job without a world size, in :func:`worker_to_wire`'s shape."""
    return {
        "workerId": job["worker_id"],
        "node": job["worker_id"],
        "rank": None,
        "localRank": None,
        "status": "finished" if job["status"] in FINISHED_STATUSES else "running",
        "firstUpdateAt": format_ts(job["started_at"]),
        "lastUpdateAt": format_ts(job["updated_at"]),
        "progress": job["progress"],
        "currentOperation": job["current_operation"],
        "rate": None,
        "straggler": False,
        "pricePerHour": job["price_per_hour"],
        "cost": None,
    }


def worker_to_wire(row: WorkerRow) -> dict[str, Any]:
    """A stored worker as the wire's worker object (``GET /api/jobs/{id}/workers``)."""
    return {
        "workerId": row["worker_id"],
        "node": row["node"],
        "rank": row["rank"],
        "localRank": row["local_rank"],
        "status": row["status"],
        "firstUpdateAt": format_ts(row["first_at"]),
        "lastUpdateAt": format_ts(row["last_at"]),
        "progress": row["progress"],
        "currentOperation": row["current_operation"],
        "rate": row["rate"],
        "straggler": bool(row["straggler"]),
        "pricePerHour": row["price_per_hour"],
        "cost": row["cost"],
    }
