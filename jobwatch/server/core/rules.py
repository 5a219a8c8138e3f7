"""What one write does to a job, without I/O.

Each rule is a function of (the job's stored row, the validated request, the
server time ``now``) that returns what changes in the row, what is stored
beside it, what is published and what is answered. The store only reads the
row, calls the rule and applies its result in one transaction; nothing here
reads a clock or touches a database, a socket or Flask, so the rules are
tested directly (``tests/server/core/test_rules.py``, with property tests). The anchors
are python-websockets' ``protocol.py`` and flask's ``sansio/``: logic that
cannot do I/O, driven by thin I/O layers.

The rules, each documented in docs/api.md:

- *Writable*: a job bound to another worker answers 403, a finished job 409.
- *Late updates*: an update whose worker ``timestamp`` is older than the last
  applied one (by at most :data:`LATE_WINDOW` seconds) keeps its samples and
  log lines but does not change progress or operation. Older by more than
  that, the worker's clock was stepped back: the update is applied, so a
  clock step never freezes a job.
- *Rate and time remaining*: the seed's average rate from the first update
  with progress > 0, then tqdm's smoothed rate over progress made while the
  job was watched; a pause between two updates is left out of it. A worker
  that declared a resume (``resumedFrom``) gets no estimate until progress
  moves.
- *Retries*: an update whose ``updateId`` was already applied to the job is
  answered as the first time and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from jobwatch.contract.job_fields import JOB_FIELDS
from jobwatch.contract.metrics import METRICS, wire_fields
from jobwatch.contract.requests import (
    FINISHED_STATUSES,
    MAX_SCALAR_NAMES,
    CompleteRequest,
    JobSpec,
    ProgressUpdate,
    format_ts,
)
from jobwatch.errors import JobFinished, ValidationError, WorkerMismatch
from jobwatch.server.core import pricing, workers
from jobwatch.server.core.alerts import alert_rules, budgets, hangs
from jobwatch.server.core.alerts.alert_rules import Alert, AlertRule
from jobwatch.server.core.alerts.nccl_hang import NcclHangRule
from jobwatch.server.core.alerts.nccl_hang import check as nccl_hang_check
from jobwatch.server.core.job_row import JobChanges, JobRow, ListedJob, log_counts, with_changes
from jobwatch.server.core.serialize import Event
from jobwatch.server.core.workers import WorkerRow

Row = dict[str, Any]

DEFAULT_CURRENCY = "QUBIC"
"""A job's currency when none is given: QUBIC, the currency of the GPU marketplace
whose integration guide first specified this API (docs/api.md)."""

LATE_WINDOW = 60.0
"""Seconds: an update whose worker timestamp is older than the last applied one by
at most this much arrived late (a retry, a slow request) and does not move
progress; older by more, the worker's clock was stepped back (NTP) and the update
is applied. A step back of ``d`` <= 60 s holds a job's progress for ``d`` seconds."""

RANK_GRACE = 60.0
"""Seconds after a distributed job's ``completedAt`` during which its ranks may still
deliver their log lines, samples and own worker state: rank 0 completes the job as
soon as it is done, while the other ranks' last lines are still on their way (a
reporter sends at most once per ``interval``, retries for a while, and at exit gets
5 s). A minute covers that with room, and is short enough that a finished job does
not go on taking writes."""

EMA_SMOOTHING = 0.3
"""Weight of the newest rate observation; tqdm's default ``smoothing=0.3``
(tqdm/std.py, class ``EMA``)."""

PAUSE_FACTOR = 10.0
"""A gap between two updates longer than this many typical progress steps, during
which progress moved at less than 1/this of the typical rate, is a pause (a
suspended or restarted worker), left out of the rate as tqdm's ``unpause()``
leaves paused time out (tqdm/std.py)."""

MIN_REMAINING = 0.001
"""Seconds: the smallest time remaining shown for a running job below 100 %, so
that rounding never shows 0 before the job is done."""

UPDATE_IDS_KEPT = 4096
"""Events back (in ``seq``) for which a job remembers applied ``updateId`` values;
a retry arrives within seconds or minutes, far inside this."""


# -- rate and estimates --------------------------------------------------------


@dataclass(frozen=True)
class RateState:
    """Exponential moving averages of progress steps and their durations, as tqdm keeps them.

    ``ema_dp`` is in percent, ``ema_dt`` in seconds and ``calls`` counts the
    observations. The smoothed rate (% per second) is ``ema_dp / ema_dt``.
    """

    ema_dp: float = 0.0
    ema_dt: float = 0.0
    calls: int = 0

    @classmethod
    def of(cls, job: ListedJob) -> RateState:
        """The rate state stored in a job row."""
        return cls(job["ema_dp"], job["ema_dt"], job["ema_calls"])

    def step(self) -> tuple[float, float] | None:
        """The typical step: (% of progress, seconds), tqdm's bias-corrected
        averages; ``None`` before the first observation."""
        if self.calls == 0 or self.ema_dt <= 0 or self.ema_dp <= 0:
            return None
        # tqdm's bias correction: the averages start at 0, so divide by 1 - beta**calls.
        debias = 1 - (1 - EMA_SMOOTHING) ** self.calls
        return self.ema_dp / debias, self.ema_dt / debias

    def rate(self, since_change: float = 0.0) -> float | None:
        """Smoothed progress rate in % per second, or ``None`` with no observation.

        ``since_change`` (s) is the time since progress last moved: once it is
        longer than a typical step (``ema_dt``), the rate is taken as at most
        one typical step in that time, so a stalled job's estimate grows
        instead of counting down to a false zero.
        """
        step = self.step()
        if step is None:
            return None
        step_dp, step_dt = step
        return step_dp / max(step_dt, since_change)


def update_rate(state: RateState, dp: float, dt: float) -> RateState:
    """Fold one observation (``dp`` % of progress in ``dt`` seconds) into ``state``.

    Only forward progress over positive time counts; anything else returns
    ``state`` unchanged. The averages follow tqdm's ``EMA`` with its default
    ``smoothing=0.3`` (tqdm/std.py): ``ema = 0.3 * x + 0.7 * ema``.
    """
    if dp <= 0 or dt <= 0 or not math.isfinite(dp) or not math.isfinite(dt):
        return state
    beta = 1 - EMA_SMOOTHING
    return RateState(
        ema_dp=beta * state.ema_dp + (1 - beta) * dp,
        ema_dt=beta * state.ema_dt + (1 - beta) * dt,
        calls=state.calls + 1,
    )


def is_pause(state: RateState, gap: float, moved: float) -> bool:
    """Whether ``gap`` seconds without an update, in which progress moved by
    ``moved`` %, was a pause rather than slow work.

    A pause is longer than :data:`PAUSE_FACTOR` typical steps and progress
    moved at less than 1/:data:`PAUSE_FACTOR` of the typical rate during it. A
    worker that kept working through a network outage reports the progress it
    made, so its gap is not a pause. No typical step yet: never a pause.
    """
    step = state.step()
    if step is None or gap <= 0:
        return False
    step_dp, step_dt = step
    return gap > PAUSE_FACTOR * step_dt and moved / gap < step_dp / step_dt / PAUSE_FACTOR


@dataclass(frozen=True)
class Estimates:
    """Derived figures of a job at one moment.

    ``elapsed`` (s), ``time_remaining`` (s), ``cost_so_far`` and
    ``estimated_total_cost`` (currency); each ``None`` when unknown, never
    negative, never NaN or infinite.
    """

    elapsed: float | None
    time_remaining: float | None
    cost_so_far: float | None
    estimated_total_cost: float | None


def estimate(
    *,
    status: str,
    progress: float,
    started_at: float | None,
    completed_at: float | None,
    progress_at: float | None,
    price_per_hour: float | None,
    rate: RateState,
    now: float,
    resumed_from: float | None = None,
    price_cost: float = 0.0,
    price_from: float | None = None,
) -> Estimates:
    """Elapsed time, time remaining and cost of a job (docs/api.md "Estimates").

    Parameters
    ----------
    status, progress:
        The job's status and progress (%).
    started_at, completed_at, progress_at:
        Server times (s since the epoch) of the first update, of completion and
        of the last progress change (moved forward past pauses); ``None`` when
        not yet.
    price_per_hour:
        The job's current price in its currency per hour, or ``None``.
    rate:
        The job's smoothed progress rate (:func:`update_rate`).
    now:
        The server's current time (s since the epoch).
    resumed_from:
        The progress (%) a worker declared it resumed from (``resumedFrom`` >
        0), or ``None`` for a run that started from scratch.
    price_cost, price_from:
        What the job cost at its earlier prices, and the server time from
        which ``price_per_hour`` applies (``None``: from ``started_at``), as
        :func:`jobwatch.server.core.pricing.price_change` keeps them.

    Returns
    -------
    Estimates
        ``elapsed = (completed_at or now) - started_at`` (>= 0);
        ``cost_so_far = price_cost + (end - max(started_at, price_from)) / 3600 *
        price_per_hour``: the price integrated over the run, which is
        ``elapsed / 3600 * price_per_hour`` for a price that never changed;
        ``time_remaining``: 0 once finished or at 100 %; ``None`` at progress
        0; once progress has moved while the job was watched,
        ``(100 - progress) / rate`` with tqdm's smoothed rate
        (:meth:`RateState.rate`); before that, ``None`` for a declared resume
        (its progress before the first update was not made in ``elapsed``,
        tqdm's ``initial``), else the seed's average
        ``elapsed * (100 - progress) / progress``; a number is at least
        :data:`MIN_REMAINING`;
        ``estimated_total_cost = cost_so_far + time_remaining / 3600 * price_per_hour``
        (the rest at the current price).
    """
    if started_at is None:
        return Estimates(None, None, None, None)
    end = completed_at if completed_at is not None else now
    elapsed = max(0.0, end - started_at)
    current_from = started_at if price_from is None else max(started_at, price_from)
    cost = (
        None
        if price_per_hour is None
        else price_cost + max(0.0, end - current_from) / 3600.0 * price_per_hour
    )

    remaining: float | None
    smoothed = rate.rate(max(0.0, now - progress_at) if progress_at is not None else 0.0)
    if status in FINISHED_STATUSES or progress >= 100:
        remaining = 0.0
    elif progress <= 0:
        remaining = None
    elif smoothed is not None:
        remaining = max(MIN_REMAINING, (100.0 - progress) / smoothed)
    elif resumed_from is not None:
        remaining = None
    else:  # the seed's troubleshooting: a number once started with progress > 0
        remaining = max(MIN_REMAINING, elapsed * (100.0 - progress) / progress)

    total = (
        None
        if cost is None or price_per_hour is None or remaining is None
        else cost + remaining / 3600.0 * price_per_hour
    )
    return Estimates(
        elapsed=_finite(elapsed),
        time_remaining=_finite(remaining),
        cost_so_far=_finite(cost),
        estimated_total_cost=_finite(total),
    )


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


def job_estimates(job: ListedJob, now: float) -> Estimates:
    """Elapsed time, time remaining and cost of a stored job row at server time ``now``.

    A distributed job whose nodes report their own price costs what its nodes
    accrued (:mod:`jobwatch.server.core.workers`), plus, while it runs, the
    running nodes' summed price since the job's latest update; its estimated
    total adds that summed price over the time remaining.
    """
    figures = estimate(
        status=job["status"],
        progress=job["progress"],
        started_at=job["started_at"],
        completed_at=job["completed_at"],
        progress_at=job["progress_at"],
        price_per_hour=job["price_per_hour"],
        rate=RateState.of(job),
        now=now,
        resumed_from=job["resumed_from"],
        price_cost=job["price_cost"] or 0.0,
        price_from=job["price_from"],
    )
    node_rate = job["node_rate"]
    if node_rate is None:
        return figures
    cost = job["node_cost"] or 0.0
    if job["status"] == "running":
        cost += node_rate * max(0.0, now - job["updated_at"]) / 3600.0
    total = None
    if figures.time_remaining is not None:
        total = cost + node_rate * figures.time_remaining / 3600.0
    return Estimates(
        elapsed=figures.elapsed,
        time_remaining=figures.time_remaining,
        cost_so_far=_finite(cost),
        estimated_total_cost=_finite(total),
    )


# -- jobs ------------------------------------------------------------------------


def new_job(job_id: str, spec: JobSpec, now: float, currency: str = DEFAULT_CURRENCY) -> JobRow:
    """The row of a job created at ``now`` from ``spec``: pending, progress 0, ``seq`` 0,
    in ``currency`` unless the spec names one (the server's ``--default-currency``).

    Columns the spec and the clock do not set take their table's
    :attr:`~jobwatch.contract.job_fields.JobField.initial` value.
    """
    return cast(
        JobRow,
        {
            **_INITIAL_ROW,
            "id": job_id,
            "name": spec.name,
            "status": "pending",
            "progress": 0.0,
            "worker_id": None if spec.world_size is not None else spec.worker_id,
            "world_size": spec.world_size,
            "n_workers": int(spec.world_size is None and spec.worker_id is not None),
            "n_nodes": int(spec.world_size is None and spec.worker_id is not None),
            "price_per_hour": spec.price_per_hour,
            "currency": spec.currency or currency,
            "budget": spec.budget,
            "provider_id": spec.provider_id,
            "config": spec.config,
            "created_at": now,
            "updated_at": now,
        },
    )


_INITIAL_ROW: dict[str, Any] = {f.column: f.initial for f in JOB_FIELDS}


def spec_changes(job: JobRow, spec: JobSpec, now: float) -> JobChanges:
    """What ``PUT /api/jobs/{id}`` changes in an existing job: the fields ``spec``
    gives with a value other than the stored one (``updated_at`` too when any);
    empty when nothing changes, whoever sends it (a PUT is idempotent).

    Who may change what, and when (docs/api.md "Who may change a job"): an
    unbound job takes changes from anyone, and a ``workerId`` binds it; a
    bound job only from a PUT naming its worker; a finished job from no one,
    since its cost is computed from its price and currency.

    Raises
    ------
    WorkerMismatch
        ``spec.workerId`` differs from the worker the job is bound to, or the
        spec would change a bound job without naming its worker (403).
    JobFinished
        The spec would change a completed, failed or cancelled job (409).
    """
    distributed = spec.world_size is not None or job["world_size"] is not None
    changes: JobChanges = {
        column: value
        for column, value in (
            ("name", spec.name),
            ("worker_id", None if distributed else spec.worker_id),  # rank 0 binds (workers.py)
            ("world_size", spec.world_size),
            ("price_per_hour", spec.price_per_hour),
            ("currency", spec.currency),
            ("provider_id", spec.provider_id),
            ("budget", spec.budget),
            ("config", spec.config),
        )
        if value is not None and value != job[column]  # type: ignore[literal-required]
    }
    world_only = set(changes) <= {"world_size"}
    if spec.worker_id is not None and not (
        distributed and (job["worker_id"] is None or world_only)
    ):
        # Any rank of a distributed job may declare its world (ranks start in any
        # order, some after rank 0 reported); its other fields are rank 0's.
        check_bound(job, spec.worker_id)
    if not changes:
        return {}
    if "worker_id" in changes:
        changes.update(n_workers=1, n_nodes=1)
    if "budget" in changes:
        changes["budget_alerts"] = 0  # another budget: its alerts are given afresh
    bound = job["worker_id"]
    if world_only and job["status"] not in FINISHED_STATUSES:
        changes["updated_at"] = now  # any worker of the job may declare or resize its world
        return changes
    if bound is not None and spec.worker_id is None:
        raise WorkerMismatch(
            f"job {job['id']!r} is bound to worker {bound!r}; "
            f'a PUT that changes it must give "workerId": {bound!r}'
        )
    if job["status"] in FINISHED_STATUSES:
        raise JobFinished(
            f"job {job['id']!r} is {job['status']}; its name, price, currency, "
            "provider and config are settled"
        )
    if "price_per_hour" in changes:  # a new price: cost integrates the old one up to now
        changes.update(pricing.price_change(job, changes["price_per_hour"], now))
    changes["updated_at"] = now
    return changes


def check_bound(job: JobRow, worker_id: str) -> None:
    """Refuse ``worker_id`` when ``job`` is bound to another worker.

    Raises
    ------
    WorkerMismatch
        The job is bound to another worker (403).
    """
    bound = job["worker_id"]
    if bound is not None and bound != worker_id:
        raise WorkerMismatch(
            f"job {job['id']!r} is bound to worker {bound!r}; "
            f"worker {worker_id!r} may not write to it"
        )


def check_writable(job: JobRow, worker_id: str) -> None:
    """Refuse a write by ``worker_id`` to ``job``.

    Raises
    ------
    WorkerMismatch
        The job is bound to another worker (403).
    JobFinished
        The job is completed, failed or cancelled (409).
    """
    check_bound(job, worker_id)
    check_open(job)


def check_open(job: JobRow) -> None:
    """Refuse a write to a finished job.

    Raises
    ------
    JobFinished
        The job is completed, failed or cancelled (409).
    """
    if job["status"] in FINISHED_STATUSES:
        raise JobFinished(f"job {job['id']!r} is {job['status']}; it takes no more updates")


# -- progress ------------------------------------------------------------------


@dataclass
class ProgressOutcome:
    """What one progress update does, for the store to apply.

    Attributes
    ----------
    changes:
        Columns of the job row to write (empty for a repeated ``updateId``).
    job:
        The row as it is after the update.
    sample:
        A ``samples`` row to insert, or ``None`` without metrics.
    log_rows:
        ``log_lines`` rows to insert, in order.
    log_lines:
        Their wire form, in the same order; the store sets each ``id`` from
        the database before the commit (the ``JOB_LOGS`` event holds these
        same objects).
    scalar_rows:
        ``scalars`` rows (training metrics) to insert.
    alert_rows:
        ``alerts`` rows to insert (from the worker and from the ``--alert`` rules).
    worker:
        The ``workers`` row to write for a rank of a distributed job, or ``None``.
    recount:
        Whether the job's worker and node counts must be recounted (a rank
        joined, was taken over or moved node).
    applied_update:
        An ``applied_updates`` row remembering the ``updateId`` and its
        reply, or ``None``.
    events:
        To publish after the commit, in ``seq`` order.
    reply:
        The answer body of ``POST /progress``.
    """

    changes: JobChanges
    job: JobRow
    reply: Row
    sample: Row | None = None
    log_rows: list[Row] = field(default_factory=list)
    log_lines: list[Row] = field(default_factory=list)
    scalar_rows: list[Row] = field(default_factory=list)
    alert_rows: list[Row] = field(default_factory=list)
    applied_update: Row | None = None
    events: list[Event] = field(default_factory=list)
    worker: WorkerRow | None = None
    recount: bool = False


def apply_progress(
    job: JobRow,
    update: ProgressUpdate,
    now: float,
    *,
    applied_reply: Row | None = None,
    alert_on: tuple[AlertRule, ...] = (),
    nccl_hang: NcclHangRule | None = None,
    worker: WorkerRow | None = None,
) -> ProgressOutcome:
    """Apply ``POST /api/jobs/{id}/progress`` to ``job`` at server time ``now``.

    Parameters
    ----------
    job:
        The job's stored row.
    update:
        The validated request body.
    now:
        Server time, seconds since the epoch.
    applied_reply:
        The reply stored for ``update.updateId`` when that id was already
        applied to this job: the outcome then answers it again and changes
        nothing.
    alert_on:
        The server's ``--alert`` rules, checked on the update's sample.
    nccl_hang:
        The NCCL-hang signature's thresholds (:mod:`jobwatch.server.core.alerts.nccl_hang`),
        checked on the update's sample; ``None``: off.
    worker:
        The stored row of ``update.rank`` in a distributed job (``None``: none
        yet, or no rank): see :mod:`jobwatch.server.core.workers`.

    Returns
    -------
    ProgressOutcome
        The first update binds an unbound job to the worker, sets
        ``startedAt`` and status ``running``. A late update (see
        :data:`LATE_WINDOW`) keeps its sample, log lines and training metrics
        only. Publishes ``JOB_PROGRESS`` (with the update's training metrics
        as ``scalars``), with log lines ``JOB_LOGS``, for a job that was
        stalled ``JOB_RESUMED``, and ``JOB_ALERT`` per alert (the worker's,
        then the rules').

    Raises
    ------
    WorkerMismatch, JobFinished
        403, 409 (from :func:`check_writable`); nothing changes.
    ValidationError
        The update's training metrics would give the job more than
        :data:`~jobwatch.contract.requests.MAX_SCALAR_NAMES` names (400); nothing changes.
    """
    distributed = update.world_size is not None or job["world_size"] is not None
    if applied_reply is not None:
        # A retry is answered as the first time, even once the job has finished,
        # but only to the worker the job is bound to (the one that sent it).
        if distributed:
            workers.check_distributed(job, update)
        else:
            check_bound(job, update.worker_id)
        return ProgressOutcome(changes={}, job=job, reply=applied_reply)
    if distributed and job["status"] in FINISHED_STATUSES:
        return _after_finish(job, update, now, worker)
    changes: JobChanges = {"updated_at": now}
    if distributed:
        changes.update(workers.check_distributed(job, update))
        check_open(job)
    else:
        check_writable(job, update.worker_id)
    _check_scalar_names(job, update)
    interval = alert_rules.next_update_interval(job, now)
    if interval is not None:
        changes["update_interval"] = interval
    if job["worker_id"] is None and not distributed:
        changes.update(worker_id=update.worker_id, n_workers=1, n_nodes=1)
    if job["started_at"] is None:  # a late update's start is placed by its age
        changes["started_at"] = now - update.age()
    if job["status"] == "pending":
        changes["status"] = "running"
    leader = not distributed or update.rank == 0  # rank 0 speaks for a distributed job
    worker_outcome = None
    if distributed:
        worker_outcome = workers.worker_update(job, worker, update, now)
        changes.update(worker_outcome.job_changes)
        if "node_rate" in changes:  # the job's rate is now its nodes' prices summed
            changes.update(pricing.price_change(job, changes["node_rate"], now))
    worker_ts = update.worker_ts(now)
    hang_ended: Alert | None = None
    alive = False  # the training code moved progress or called with this update
    if leader and not _is_late(job["worker_ts"], worker_ts):
        changes.update(_progress_changes(job, update, now, worker_ts))
        called, called_ts = update.call_at(now), update.call_ts()
        changes.update(hangs.call_changes(job, called, called_ts, update.expect_silence_for))
        moved = changes.get("progress", job["progress"]) != job["progress"]
        alive = moved or "last_call_at" in changes
        if job["hung"] and alive:
            hang_ended = hangs.moving_alert(job, now)
            changes.update(hangs.end_hang(job, changes.get("last_call_at", now)))
    merged = with_changes(job, changes)
    estimates = job_estimates(merged, now)

    outcome = ProgressOutcome(changes=changes, job=merged, reply={})
    if worker_outcome is not None:
        outcome.worker, outcome.recount = worker_outcome.row, worker_outcome.recount
    seq = job["seq"] + 1
    metrics = _sample(job["id"], update, now, outcome)
    progress_data = {
        "jobId": job["id"],
        "status": merged["status"],
        "progress": merged["progress"],
        "currentOperation": merged["current_operation"],
        "metrics": metrics,
        "timeRemaining": estimates.time_remaining,
        "costSoFar": estimates.cost_so_far,
        "estimatedTotalCost": estimates.estimated_total_cost,
        "elapsed": estimates.elapsed,
        "currency": merged["currency"],
        "timestamp": format_ts(now),
    }
    if update.scalars is not None:
        progress_data["scalars"] = _scalars(job, update, now, outcome, estimates.cost_so_far)
    outcome.events.append(Event(job["id"], seq, "JOB_PROGRESS", progress_data))
    changes["progress_seq"] = seq
    changes["progress_event"] = progress_data
    if update.log_lines:
        seq += 1
        _logs(job, update, now, seq, outcome)
    if job["stalled"]:
        seq += 1
        changes.update(hangs.end_stall(job, now))
        changes["stalled"] = 0
        outcome.events.append(alert_rules.resume_event(job, now, seq))
    alerts = [Alert(a.level, a.title, a.text, "worker") for a in update.alerts or []]
    if hang_ended is not None:
        alerts.append(hang_ended)
    if worker_outcome is not None:
        alerts += worker_outcome.alerts
    spent_changes, spent_alerts = budgets.budget_alerts(
        merged, estimates.cost_so_far, estimates.estimated_total_cost
    )
    changes.update(spent_changes)
    alerts += spent_alerts
    if metrics is not None and (alert_on or nccl_hang is not None):
        state, fired = alert_rules.check_rules(alert_on, job, metrics, now)
        alerts += fired
        if nccl_hang is not None:
            source = "" if update.rank is None else str(update.rank)
            state, hang_changes, hang_alerts = nccl_hang_check(
                nccl_hang, with_changes(job, changes), state, metrics, source, now, alive=alive
            )
            changes.update(hang_changes)
            alerts += hang_alerts
        changes["alert_state"] = state
    if alerts:
        rows, events, counts = alert_rules.alert_changes(job, alerts, now, seq)
        outcome.alert_rows, seq = rows, counts["seq"]
        outcome.events += events
        changes["n_alerts"] = counts["n_alerts"]
    changes["seq"] = seq
    _answer(outcome, merged, estimates, seq, update)
    outcome.job = with_changes(merged, changes)
    return outcome


def _answer(
    outcome: ProgressOutcome,
    job: JobRow,
    estimates: Estimates,
    seq: int,
    update: ProgressUpdate,
    **extra: Any,
) -> None:
    """Set ``outcome``'s reply (the seed's fields, then ``extra`` and the budget's) and,
    for an update with an ``updateId``, the row that answers a retry of it alike."""
    outcome.reply = {
        "success": True,
        "jobId": job["id"],
        "status": job["status"],
        **extra,
        "progress": job["progress"],
        "timeRemaining": estimates.time_remaining,
        "costSoFar": estimates.cost_so_far,
        "estimatedTotalCost": estimates.estimated_total_cost,
        "currency": job["currency"],
        "seq": seq,
        **budgets.budget_reply(job, estimates.cost_so_far),
    }
    if update.update_id is not None:
        outcome.applied_update = {
            "job_id": job["id"],
            "update_id": update.update_id,
            "seq": seq,
            "reply": outcome.reply,
        }


def _after_finish(
    job: JobRow, update: ProgressUpdate, now: float, worker: WorkerRow | None
) -> ProgressOutcome:
    """An update of a finished distributed job: a rank of the job (its stored
    worker) within :data:`RANK_GRACE` seconds of ``completedAt`` delivers its log
    lines, sample and own progress; the job's status, progress, cost and
    ``completedAt`` stay. The reply says ``finished: true``.

    Raises
    ------
    WorkerMismatch
        The update names no rank (403).
    JobFinished
        Past the grace period, or not a rank of the job (409); nothing changes.
    """
    workers.check_distributed(job, update)
    completed_at = job["completed_at"]
    registered = worker is not None and worker["worker_id"] == update.worker_id
    if not registered or completed_at is None or now - completed_at > RANK_GRACE:
        check_open(job)
    assert worker is not None  # registered
    outcome = ProgressOutcome(changes={}, job=job, reply={})
    row = workers.worker_update(job, worker, update, now).row
    # its own state only: the job's metering ended with it
    row["status"], row["cost"] = worker["status"], worker["cost"]
    row["price_per_hour"] = worker["price_per_hour"]
    outcome.worker = row
    _sample(job["id"], update, now, outcome)
    seq = job["seq"]
    if update.log_lines:
        seq += 1
        _logs(job, update, now, seq, outcome)
    outcome.changes["seq"] = seq
    _answer(outcome, job, job_estimates(job, now), seq, update, finished=True)
    outcome.job = with_changes(job, outcome.changes)
    return outcome


def _is_late(last: float | None, worker_ts: float | None) -> bool:
    """Whether an update stamped ``worker_ts`` arrived after a newer one (``last``)."""
    if worker_ts is None or last is None:
        return False
    return 0 < last - worker_ts <= LATE_WINDOW


def _progress_changes(
    job: JobRow, update: ProgressUpdate, now: float, worker_ts: float | None
) -> JobChanges:
    """Progress, operation, ordering and rate columns of an update that is not late."""
    changes: JobChanges = {}
    if worker_ts is not None:
        changes["worker_ts"] = worker_ts
    if update.current_operation is not None:
        changes["current_operation"] = update.current_operation
    if update.resumed_from and update.resumed_from != job["resumed_from"]:
        changes["resumed_from"] = update.resumed_from  # 0 is a start from scratch
    progress_at = job["progress_at"]
    if progress_at is None:  # the first value: the baseline the rate counts from
        changes.update(progress=update.progress, progress_at=now)
        return changes
    state = RateState.of(job)
    gap = now - job["updated_at"]
    if job["pause_streak"] == 0 and is_pause(state, gap, update.progress - job["progress"]):
        # tqdm's unpause(): the paused time is not part of the current step
        progress_at = min(now, progress_at + gap)
        changes.update(progress_at=progress_at, pause_streak=1)
    elif job["pause_streak"]:
        changes["pause_streak"] = 0
    if update.progress != job["progress"]:
        state = update_rate(state, update.progress - job["progress"], now - progress_at)
        changes.update(
            progress=update.progress,
            progress_at=now,
            ema_dp=state.ema_dp,
            ema_dt=state.ema_dt,
            ema_calls=state.calls,
        )
    return changes


def _sample(
    job_id: str, update: ProgressUpdate, now: float, outcome: ProgressOutcome
) -> Row | None:
    """The update's metrics as the wire sample (``None`` without); queues its row."""
    if update.metrics is None:
        return None
    flat = update.metrics.flat()
    metrics: Row = {"timestamp": format_ts(now), **wire_fields(flat)}
    gpus = [g.model_dump(by_alias=True) for g in update.metrics.gpus or []] or None
    if gpus and update.rank is not None:  # a GPU of a distributed job is its node's
        node = update.node or update.worker_id
        for gpu in gpus:
            gpu["node"] = node
    if gpus:
        metrics["gpus"] = gpus
    outcome.sample = {
        "job_id": job_id,
        "ts": now,
        **{m.column: flat[m.wire] for m in METRICS},
        "gpus": gpus,
    }
    return metrics


def _check_scalar_names(job: JobRow, update: ProgressUpdate) -> None:
    """Refuse training metrics that would give the job too many names."""
    points = update.scalar_points()
    if not points:
        return
    known = job["latest_scalars"] or {}
    new = sorted({name for p in points for name in p.values} - known.keys())
    if len(known) + len(new) > MAX_SCALAR_NAMES:
        raise ValidationError(
            f"job {job['id']!r} would have {len(known) + len(new)} training-metric names; "
            f"at most {MAX_SCALAR_NAMES} per job",
            details=[
                {
                    "field": "scalars",
                    "message": f"new names {', '.join(new[:5])}{' ...' if len(new) > 5 else ''} "
                    f"exceed the limit of {MAX_SCALAR_NAMES} names per job "
                    f"({len(known)} in use)",
                }
            ],
        )


def _scalars(
    job: JobRow, update: ProgressUpdate, now: float, outcome: ProgressOutcome, cost: float | None
) -> list[Row]:
    """Queue the update's training-metric rows and newest values; their wire form
    ``[{step, timestamp, values, cost}]`` for ``JOB_PROGRESS``, ``cost`` being the
    job's cost so far now. A name's newest value is the one with the highest step (a
    late update never takes it back)."""
    stamp = format_ts(now)
    latest = dict(job["latest_scalars"] or {})
    wire = []
    for point in update.scalar_points():
        for name, value in point.values.items():
            outcome.scalar_rows.append(
                {"job_id": job["id"], "name": name, "step": point.step, "ts": now, "value": value}
            )
            if name not in latest or point.step >= latest[name]["step"]:
                latest[name] = {
                    "step": point.step,
                    "timestamp": stamp,
                    "value": value,
                    "cost": cost,
                }
        wire.append(
            {"step": point.step, "timestamp": stamp, "values": dict(point.values), "cost": cost}
        )
    outcome.changes["latest_scalars"] = latest
    return wire


def _logs(
    job: JobRow, update: ProgressUpdate, now: float, seq: int, outcome: ProgressOutcome
) -> None:
    """Queue the update's log lines as rows, wire lines, a ``JOB_LOGS`` event and counts."""
    node = (update.node or update.worker_id) if update.rank is not None else None
    for line in update.log_lines or []:
        at = line.time_at(now)
        outcome.log_rows.append(
            {
                "job_id": job["id"],
                "seq": seq,
                "ts": at,
                "level": line.level,
                "message": line.message,
                "rank": update.rank,
                "node": node,
            }
        )
        wire: dict[str, Any] = {
            "id": None,
            "level": line.level,
            "timestamp": format_ts(at),
            "message": line.message,
        }
        if update.rank is not None:
            wire["rank"] = update.rank
            wire["node"] = node
        outcome.log_lines.append(wire)
    outcome.events.append(
        Event(job["id"], seq, "JOB_LOGS", {"jobId": job["id"], "logs": outcome.log_lines})
    )
    for level, before in log_counts(job).items():
        n = sum(1 for row in outcome.log_rows if row["level"] == level)
        if n:
            outcome.changes[f"n_{level}"] = before + n


# -- completion ----------------------------------------------------------------


def complete_job(
    job: JobRow,
    request: CompleteRequest,
    now: float,
    receipt_of: Callable[[JobRow], dict[str, Any]] | None = None,
) -> tuple[JobChanges, list[Event], list[Row]]:
    """Apply ``POST /api/jobs/{id}/complete`` to ``job`` at server time ``now``.

    Parameters
    ----------
    receipt_of:
        Given the finished row, its receipt (:mod:`jobwatch.server.core.alerts.receipt`),
        which ``JOB_COMPLETED`` then carries as ``receipt``; ``None``: none.

    Returns
    -------
    (changes to the row, events, alert rows to store)
        ``JOB_COMPLETED``, the last event of the job; a failed job gets an
        alert (``JOB_ALERT``) just before it. ``completed`` sets progress to
        100. A stall or hang in progress ends now: its time and cost join the
        job's totals. A job priced by its nodes accrues their summed rate from
        its latest update to its end, as its live cost does (:func:`job_estimates`).

    Raises
    ------
    WorkerMismatch, JobFinished
        403, 409 (from :func:`check_writable`); nothing changes.
    """
    check_writable(job, request.worker_id)
    alert_rows: list[Row] = []
    alert_events: list[Event] = []
    changes: JobChanges = {}
    seq = job["seq"]
    if request.status == "failed":  # its alert first: JOB_COMPLETED ends every stream
        failed = Alert("error", "job failed", request.error or "no error message", "failed")
        alert_rows, alert_events, counts = alert_rules.alert_changes(job, [failed], now, seq)
        changes["n_alerts"], seq = counts["n_alerts"], counts["seq"]
    seq += 1
    changes.update(hangs.end_stall(job, now))
    changes.update(hangs.end_hang(job, now))
    ended = now - request.age()  # a completion sent late ended that long ago
    if job["started_at"] is not None:
        ended = max(ended, job["started_at"])
    if job["node_rate"] is not None:  # the nodes are paid up to the end, silent tail too
        tail = max(0.0, ended - job["updated_at"])
        changes["node_cost"] = (job["node_cost"] or 0.0) + job["node_rate"] * tail / 3600.0
    changes.update(
        status=request.status,
        completed_at=ended,
        updated_at=now,
        result=request.result,
        error=request.error,
        seq=seq,
        completed_seq=seq,
        stalled=0,
    )
    if job["worker_id"] is None:
        changes.update(worker_id=request.worker_id, n_workers=1, n_nodes=1)
    if request.status == "completed":
        changes["progress"] = 100.0
    finished = with_changes(job, changes)
    completed = completed_event(finished, now)
    if receipt_of is not None:
        completed.data["receipt"] = receipt_of(finished)
    return changes, [*alert_events, completed], alert_rows


def completed_event(job: JobRow, now: float) -> Event:
    """The ``JOB_COMPLETED`` event of a finished job row.

    Raises
    ------
    ValueError
        The job has not completed (no ``completed_seq``).
    """
    seq = job["completed_seq"]
    if seq is None:
        raise ValueError(f"job {job['id']!r} has not completed")
    return Event(
        job["id"],
        seq,
        "JOB_COMPLETED",
        {
            "jobId": job["id"],
            "status": job["status"],
            "result": job["result"],
            "error": job["error"],
            "completedAt": format_ts(job["completed_at"]),
            "costSoFar": job_estimates(job, now).cost_so_far,
            "currency": job["currency"],
        },
    )
