"""One job as the server stores it: :class:`JobRow`, a row of ``schema.jobs``.

The rules (:mod:`jobwatch.server.core.rules`) build and change job rows, the store
writes them, the queries read them back and the wire encoding
(:func:`jobwatch.server.core.serialize.job_to_wire`) turns them into the contract's job
object. Times are server seconds since the Unix epoch; JSON columns are
decoded. A change to a job is a ``dict`` of some of these keys
(:data:`JobChanges`), merged with :func:`with_changes`.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

__all__ = [
    "JobChanges",
    "JobRow",
    "ListedJob",
    "job_row",
    "listed_job",
    "log_counts",
    "with_changes",
]


class ListedJob(TypedDict):
    """A job row as a listing reads it: every column of ``jobs`` but ``progress_event``."""

    id: str
    name: str | None
    status: str  # pending, running, completed, failed or cancelled
    progress: float  # percent, 0-100
    current_operation: str | None
    worker_id: str | None  # the worker the job is bound to (by its first update)
    price_per_hour: float | None  # in `currency`
    currency: str
    provider_id: str | None
    created_at: float  # s since the epoch (server clock), as are all *_at
    started_at: float | None  # first progress update
    updated_at: float
    completed_at: float | None
    progress_at: float | None  # last change of `progress`
    worker_ts: float | None  # worker clock of the last applied update
    result: Any  # JSON sent with /complete
    error: str | None
    seq: int  # number of the job's latest event
    ema_dp: float  # smoothed progress step (percent) of the rate estimate
    ema_dt: float  # smoothed time step (s) of the rate estimate
    ema_calls: int  # steps the rate estimate has seen
    pause_streak: int  # 1 right after a gap counted as a pause, else 0
    resumed_from: float | None  # percent a worker declared it resumed from, None: from scratch
    latest_scalars: dict[str, Any] | None  # {name: {step, timestamp, value}}
    update_interval: float | None  # usual s between updates (EMA), for stalls
    stalled: int  # 1 while stalled
    n_alerts: int
    alert_state: dict[str, Any] | None  # {rule: {since, fired}} of the --alert rules
    progress_seq: int | None  # seq of the newest JOB_PROGRESS event
    completed_seq: int | None  # seq of the JOB_COMPLETED event
    n_info: int  # log lines by level
    n_warning: int
    n_error: int
    log_bytes: int  # UTF-8 bytes of the job's log messages
    data_bytes: int  # bytes of its per-GPU sample JSON and training-metric points
    world_size: int | None  # ranks of a distributed job; None: one worker (the seed's binding)
    n_workers: int  # workers of a distributed job that have not left
    n_nodes: int  # their distinct nodes
    node_cost: float | None  # cost accrued by nodes that report their own price
    node_rate: float | None  # the reporting nodes' prices per hour, summed; None: none report
    budget: float | None  # most the job should cost, in `currency`
    budget_alerts: int  # budget alerts given (bits: 1 projected over, 2 80 % spent, 4 spent)
    last_call_at: float | None  # the training code's last call (server time); None: never said
    last_call_ts: float | None  # the worker's clock of that call (a later value is a new call)
    call_interval: float | None  # usual s between the training code's calls (EMA), for hangs
    expect_silence: float | None  # s the training code said it may be quiet after its last call
    hung: int  # 1 while hung
    hung_at: float | None  # while hung: the training code's last sign of life
    hung_seconds: float  # summed over past hangs
    hung_cost: float  # in `currency`
    stalled_seconds: float  # summed over past stalls
    stalled_cost: float  # in `currency`
    tenant: str | None  # the tenant it belongs to (core.tenancy); None: the operator's
    config: dict[str, Any] | None  # the run's hyperparameters, a JSON object (<= 64 KiB)
    price_cost: float  # cost at earlier prices, up to price_from (core.pricing)
    price_from: float | None  # server time the current price applies from; None: startedAt


class JobRow(ListedJob):
    """One row of the ``jobs`` table (``tests/server/core/test_job_row.py`` keeps the two equal)."""

    progress_event: dict[str, Any] | None  # the newest JOB_PROGRESS event, for `since` replay


JobChanges = dict[str, Any]
"""Some of a :class:`JobRow`'s keys with new values (what ``UPDATE jobs`` sets)."""


def log_counts(job: ListedJob) -> dict[str, int]:
    """The job's stored log lines by level: ``{"info": n, "warning": n, "error": n}``."""
    return {"info": job["n_info"], "warning": job["n_warning"], "error": job["n_error"]}


def job_row(row: dict[str, Any]) -> JobRow:
    """A decoded ``jobs`` row (every column present) as a :class:`JobRow` (not copied)."""
    return cast(JobRow, row)


def listed_job(row: dict[str, Any]) -> ListedJob:
    """A decoded ``jobs`` row read by a listing as a :class:`ListedJob` (not copied)."""
    return cast(ListedJob, row)


def with_changes(job: JobRow, changes: JobChanges) -> JobRow:
    """A copy of ``job`` with ``changes`` applied (``job`` is left as it was)."""
    return cast(JobRow, {**job, **changes})
