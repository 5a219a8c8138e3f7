"""Hangs, without I/O: reports arrive, but the training code has stopped.

A job is *moving* while its training code calls the reporter; *stalled*
(:func:`jobwatch.server.core.alerts.alert_rules.stall`) when no report arrives at all
(the process died or lost its network); *hung* when reports keep arriving (the
reporter's thread sends GPU samples) but the training code has made no call
(``update``, ``log``, ``log_metrics``, ``track``), moved no progress and logged
no training metric for longer than its hang threshold. That is a process alive
and billed but doing nothing: an NCCL collective one rank never joined, a data
loader deadlocked.

- Only a job whose worker says when the training code last called it
  (``lastCallAt``) is ever judged hung; the seed's workers never are.
- The threshold is the longest of: the server's floor (``--hang-after``,
  :data:`DEFAULT_HANG_AFTER`), :data:`HANG_FACTOR` times the job's usual
  interval between calls (an EMA, as its usual update interval is kept for
  stalls), and what the training code said it may take (``expectSilenceFor``,
  a long evaluation or checkpoint).
- A stalled job is not hung: silence of the whole process is the stall's.
- A hang ends with the next call or progress; its time and cost are summed
  for the job's receipt, as are its stalls'.

Like :mod:`jobwatch.server.core.rules`, each function here is a function of
the stored row and ``now``; the store applies what it returns.
"""

from __future__ import annotations

from jobwatch.server.core.alerts.alert_rules import INTERVAL_SMOOTHING, Alert
from jobwatch.server.core.job_row import JobChanges, JobRow, ListedJob

__all__ = [
    "DEFAULT_HANG_AFTER",
    "HANG_FACTOR",
    "activity_at",
    "call_changes",
    "end_hang",
    "end_stall",
    "hang",
    "hang_threshold",
    "hourly_rate",
    "is_hung",
    "spent_text",
]

DEFAULT_HANG_AFTER = 300.0
"""Seconds: the least time without a call from the training code after which a
job that still reports is hung (``--hang-after``). Above the stall threshold
(a slow step is common, a dead process is not) and below PyTorch's default
collective timeout for NCCL (10 minutes, ``torch.distributed``'s
``default_pg_nccl_timeout``), so a hung collective is reported before or as
the watchdog of a job that kept the default acts, and long before the hours
jobs often set instead."""
HANG_FACTOR = 10.0
"""A job whose training code usually calls every ``t`` seconds is hung only after
``HANG_FACTOR * t`` (the factor stalls use, :data:`~jobwatch.server.core.alerts.alert_rules.STALL_FACTOR`)."""


def hourly_rate(job: ListedJob) -> float | None:
    """What the job costs per hour now: its nodes' prices summed, else its price."""
    return job["node_rate"] if job["node_rate"] is not None else job["price_per_hour"]


def activity_at(job: ListedJob) -> float | None:
    """Server time of the training code's last sign of life: its last call or the
    last progress change, whichever is later; ``None`` for a worker that never
    said when it was called (never judged hung)."""
    called = job["last_call_at"]
    if called is None:
        return None
    moved = job["progress_at"]
    return called if moved is None else max(called, moved)


def hang_threshold(job: ListedJob, hang_after: float) -> float:
    """Seconds without a sign of life after which ``job`` is hung: ``hang_after``,
    :data:`HANG_FACTOR` times its usual interval between calls, or its
    ``expectSilenceFor``, whichever is longest."""
    usual = job["call_interval"]
    threshold = hang_after if usual is None else max(hang_after, HANG_FACTOR * usual)
    return max(threshold, job["expect_silence"] or 0.0)


def is_hung(job: ListedJob, now: float, hang_after: float) -> bool:
    """Whether a running, not stalled job's training code has been quiet past its
    threshold while its reports still arrive: the latest came at least half the
    threshold after the last sign of life. A process that died stops both at once;
    it is not hung but, once its reports stay away, stalled."""
    since = activity_at(job)
    if since is None or job["status"] != "running" or job["stalled"]:
        return False
    threshold = hang_threshold(job, hang_after)
    reported = job["updated_at"] - since >= threshold / 2
    return reported and now - since > threshold


def spent_text(job: ListedJob, seconds: float) -> str:
    """``"12.30 QUBIC spent since"``-style words for ``seconds`` at the job's rate, or
    ``"no price set"``."""
    rate = hourly_rate(job)
    if rate is None:
        return "no price set"
    return f"{rate * seconds / 3600.0:.2f} {job['currency']} spent since"


def duration_text(seconds: float) -> str:
    """``"42 s"``, ``"42 min"`` or ``"3 h 05 min"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def hang(job: JobRow, now: float, hang_after: float) -> tuple[JobChanges, Alert] | None:
    """Mark a hung job: the row changes and its alert (``source`` ``hung``); ``None``
    if the job is not hung or already marked (so only one process ever alerts)."""
    if job["hung"] or not is_hung(job, now, hang_after):
        return None
    since = activity_at(job)
    assert since is not None  # is_hung
    quiet = now - since
    alert = Alert(
        "warning",
        "job hung",
        f"no progress for {duration_text(quiet)}; {spent_text(job, quiet)} "
        f"(threshold {hang_threshold(job, hang_after):.0f} s; reports still arrive, "
        "so the process lives: a collective or data loader may wait forever)",
        "hung",
    )
    return {"hung": 1, "hung_at": since}, alert


def end_hang(job: JobRow, end: float) -> JobChanges:
    """Clear a hung job's mark at server time ``end``, adding the hang's time and
    cost to its totals (each price for its part of the hang: see
    :func:`jobwatch.server.core.pricing.price_change`); empty when the job is not hung."""
    if not job["hung"] or job["hung_at"] is None:
        return {}
    lost = max(0.0, end - job["hung_at"])
    # A price change during the hang added the part before it to hung_cost already
    # (pricing.price_change): the current price counts from the change on.
    priced_from = max(job["hung_at"], job["price_from"] or job["hung_at"])
    return {
        "hung": 0,
        "hung_at": None,
        "hung_seconds": job["hung_seconds"] + lost,
        "hung_cost": job["hung_cost"]
        + (hourly_rate(job) or 0.0) * max(0.0, end - priced_from) / 3600.0,
    }


def moving_alert(job: JobRow, now: float) -> Alert:
    """The info alert (``source`` ``hung``) of a hung job whose training code spoke again."""
    lost = max(0.0, now - (job["hung_at"] or now))
    return Alert(
        "info",
        "job moving again",
        f"hung for {duration_text(lost)}; {spent_text(job, lost).replace(' since', '')} while hung",
        "hung",
    )


def end_stall(job: JobRow, end: float) -> JobChanges:
    """Add a stalled job's silence (from its last update to ``end``) and its cost to
    its totals; empty when the job is not stalled."""
    if not job["stalled"]:
        return {}
    lost = max(0.0, end - job["updated_at"])
    return {
        "stalled_seconds": job["stalled_seconds"] + lost,
        "stalled_cost": job["stalled_cost"] + (hourly_rate(job) or 0.0) * lost / 3600.0,
    }


def call_changes(
    job: JobRow, called: float | None, called_ts: float | None, expect_silence: float | None
) -> JobChanges:
    """What an update of the job's leading worker says about its training code.

    Parameters
    ----------
    job:
        The stored row.
    called:
        Server time of the training code's last call (``lastCallAt``,
        :meth:`~jobwatch.contract.requests.ProgressUpdate.call_at`), or ``None``.
    called_ts:
        The same call on the worker's clock
        (:meth:`~jobwatch.contract.requests.ProgressUpdate.call_ts`): only a later
        value is a new call. Comparing server times instead would take a resent
        or queued update's network delay for a call.
    expect_silence:
        The update's ``expectSilenceFor`` (s), or ``None``.

    Returns
    -------
    JobChanges
        For a new call: ``last_call_at``, ``last_call_ts`` and ``call_interval``
        (an EMA of the gaps between calls, weight
        :data:`~jobwatch.server.core.alerts.alert_rules.INTERVAL_SMOOTHING`, leaving
        out a gap the training code declared with ``expectSilenceFor``); always
        ``expect_silence`` as the update says; empty without ``called``. A hung
        job's mark is cleared by the caller (:func:`end_hang`) on a new call or
        progress.
    """
    if called is None or called_ts is None:
        return {}
    changes: JobChanges = {"expect_silence": expect_silence}
    last_ts = job["last_call_ts"]
    if last_ts is None or called_ts > last_ts:
        last = job["last_call_at"]
        called = called if last is None else max(called, last)  # never back
        changes.update(last_call_at=called, last_call_ts=called_ts)
        if last is not None and job["expect_silence"] is None:  # a declared quiet spell is
            gap = called - last  # not the job's cadence
            usual = job["call_interval"]
            changes["call_interval"] = (
                gap
                if usual is None
                else INTERVAL_SMOOTHING * gap + (1 - INTERVAL_SMOOTHING) * usual
            )
    return changes
