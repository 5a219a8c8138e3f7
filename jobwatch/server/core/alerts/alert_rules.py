"""Alerts and stalls, without I/O: when a job needs a person's attention.

- *Stalls*: a running job with no update for longer than its stall threshold
  (``--stall-after`` seconds, default 120, or ten times the job's usual
  interval between updates if that is longer) is stalled; its next update
  resumes it.
- *Rules* from ``jobwatch serve --alert "gpuTemperature>85 for 60s"``: a
  condition on one metric of the samples (a GPU or a system metric) that has
  held for a duration, checked on each sample. An idle GPU that keeps costing
  money is ``"gpuUtilization<10 for 300s"``; an idle machine without one
  ``"cpuUtilization<5 for 300s"``.
- *Alerts* a job gets: from its training code (``Reporter.alert``), from a
  rule, when it fails and when it stalls.

Like :mod:`jobwatch.server.core.rules`, every function here is a function of the
stored row, the request and ``now``; the store applies what they return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jobwatch.contract.metrics import METRICS
from jobwatch.contract.requests import format_ts
from jobwatch.errors import ValidationError
from jobwatch.server.core.job_row import JobChanges, JobRow, ListedJob
from jobwatch.server.core.serialize import Event

Row = dict[str, Any]

DEFAULT_STALL_AFTER = 120.0
"""Seconds without an update after which a running job is stalled (``--stall-after``)."""
STALL_FACTOR = 10.0
"""A job whose usual interval between updates is longer than a tenth of the
threshold is stalled only after this many of its intervals."""
INTERVAL_SMOOTHING = 0.3
"""Weight of the newest gap in a job's usual update interval (an EMA, as tqdm smooths rates)."""
METRIC_NAMES = tuple(m.wire for m in METRICS if m.alert)
"""The sample fields a rule may test, GPU and system metrics (not ``gpuMemoryTotal``,
``memoryTotal`` or ``diskTotal``, which do not change)."""

_RULE = re.compile(
    r"\s*(?P<metric>[A-Za-z]+)\s*(?P<op>>=|<=|>|<)\s*(?P<threshold>-?\d+(?:\.\d+)?)"
    r"\s+for\s+(?P<duration>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h)\s*",
    re.ASCII,  # \d: ASCII digits only, not U+FF17 (a full-width 7), which float() would read
)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


# -- stalls --------------------------------------------------------------------


def next_update_interval(job: JobRow, now: float) -> float | None:
    """The job's usual interval between updates (s) after one more update at ``now``:
    an EMA of the gaps (:data:`INTERVAL_SMOOTHING`); ``None`` before a second update."""
    if job["started_at"] is None:
        return None
    gap = max(0.0, now - float(job["updated_at"]))
    usual = job["update_interval"]
    if usual is None:
        return gap
    return INTERVAL_SMOOTHING * gap + (1 - INTERVAL_SMOOTHING) * float(usual)


def stall_threshold(job: ListedJob, stall_after: float) -> float:
    """Seconds without an update after which ``job`` is stalled: ``stall_after``, or
    :data:`STALL_FACTOR` times its usual update interval if that is longer."""
    usual = job["update_interval"]
    return stall_after if usual is None else max(stall_after, STALL_FACTOR * float(usual))


def is_stalled(job: ListedJob, now: float, stall_after: float) -> bool:
    """Whether a running job has had no update for longer than its threshold."""
    silent = now - float(job["updated_at"])
    return job["status"] == "running" and silent > stall_threshold(job, stall_after)


@dataclass(frozen=True)
class Alert:
    """One alert: ``level`` (info, warning or error), ``title``, ``text`` (or
    ``None``) and its ``source`` (``worker``, ``rule``, ``failed``, ``stalled``)."""

    level: str
    title: str
    text: str | None
    source: str


def stall(
    job: JobRow, now: float, stall_after: float
) -> tuple[JobChanges, list[Event], Alert] | None:
    """Mark a stalled job: the row changes, ``JOB_STALLED`` and the alert to store
    (its own ``JOB_ALERT`` comes from :func:`alert_changes`); ``None`` if the job
    is not stalled or already marked (so only one process ever emits it)."""
    if job["stalled"] or not is_stalled(job, now, stall_after):
        return None
    silent = now - job["updated_at"]
    seq = job["seq"] + 1
    data = {
        "jobId": job["id"],
        "stalled": True,
        "lastUpdateAt": format_ts(job["updated_at"]),
        "silentFor": round(silent, 3),
        "timestamp": format_ts(now),
    }
    alert = Alert(
        "warning",
        "job stalled",
        f"no update for {silent:.0f} s (threshold {stall_threshold(job, stall_after):.0f} s); "
        "the worker may have died",
        "stalled",
    )
    return {"stalled": 1, "seq": seq}, [Event(job["id"], seq, "JOB_STALLED", data)], alert


def resume_event(job: JobRow, now: float, seq: int) -> Event:
    """``JOB_RESUMED``: a stalled job got an update at ``now``."""
    data = {
        "jobId": job["id"],
        "stalled": False,
        "silentFor": round(max(0.0, now - job["updated_at"]), 3),
        "timestamp": format_ts(now),
    }
    return Event(job["id"], seq, "JOB_RESUMED", data)


# -- rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    """``metric op threshold for duration``: e.g. ``gpuTemperature > 85 for 60 s``."""

    metric: str
    op: str
    threshold: float
    duration: float
    text: str

    def holds(self, value: float | None) -> bool:
        """Whether a sample value meets the condition (``None``: unknown, never)."""
        if value is None:
            return False
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
        }[self.op]


def parse_rule(text: str) -> AlertRule:
    """Parse ``"gpuTemperature>85 for 60s"`` (units ``s``, ``m``, ``h``).

    Raises
    ------
    ValidationError
        The text is not ``METRIC OP NUMBER for DURATION``, names an unknown metric
        or a zero duration; the message says what is allowed.
    """
    match = _RULE.fullmatch(text)
    allowed = (
        f'rules read "METRIC OP NUMBER for DURATION", e.g. "gpuTemperature>85 for 60s"; '
        f"METRIC is one of {', '.join(METRIC_NAMES)}; OP one of > >= < <=; "
        "DURATION in s, m or h"
    )
    if match is None:
        raise ValidationError(f"alert rule {text!r} not understood: {allowed}")
    if match["metric"] not in METRIC_NAMES:
        raise ValidationError(f"alert rule {text!r}: unknown metric {match['metric']!r}; {allowed}")
    duration = float(match["duration"]) * _UNITS[match["unit"]]
    if duration <= 0:
        raise ValidationError(f"alert rule {text!r}: the duration must be more than 0")
    return AlertRule(
        match["metric"], match["op"], float(match["threshold"]), duration, " ".join(text.split())
    )


def check_rules(
    rules: tuple[AlertRule, ...], job: JobRow, sample: Row, now: float
) -> tuple[dict[str, Any], list[Alert]]:
    """Advance each rule's state on one sample of ``job`` (flat field values by
    wire name); returns the new ``alert_state`` and the alerts that fire now.

    A rule fires once when its condition has held since a sample at least
    ``duration`` seconds ago, and may fire again after it stopped holding. A
    sample without the rule's metric at all (the system metrics of a rank that
    samples only its GPU) leaves the rule as it was; one with the metric
    ``None`` stops it holding.
    """
    state: dict[str, Any] = dict(job["alert_state"] or {})
    fired: list[Alert] = []
    for rule in rules:
        if rule.metric not in sample:
            continue
        value = sample[rule.metric]
        entry = state.get(rule.text)
        if not rule.holds(value):
            state.pop(rule.text, None)
            continue
        if entry is None:
            entry = {"since": now, "fired": False}
        if not entry["fired"] and now - entry["since"] >= rule.duration:
            entry = {**entry, "fired": True}
            fired.append(
                Alert(
                    "warning",
                    f"{rule.metric} {rule.op} {rule.threshold:g} for {rule.duration:g} s",
                    f"{rule.metric} is {value:g} (rule {rule.text!r})",
                    "rule",
                )
            )
        state[rule.text] = entry
    return state, fired


def alert_changes(
    job: JobRow, alerts: list[Alert], now: float, seq: int
) -> tuple[list[Row], list[Event], Row]:
    """Rows to store, ``JOB_ALERT`` events (from ``seq + 1``) and row changes for ``alerts``."""
    rows, events = [], []
    for alert in alerts:
        seq += 1
        row = {
            "job_id": job["id"],
            "seq": seq,
            "ts": now,
            "level": alert.level,
            "title": alert.title,
            "text": alert.text,
            "source": alert.source,
        }
        rows.append(row)
        data = {"jobId": job["id"], "alert": alert_to_wire(row)}
        events.append(Event(job["id"], seq, "JOB_ALERT", data))
    return rows, events, {"n_alerts": job["n_alerts"] + len(alerts), "seq": seq}


def alert_to_wire(row: Row) -> Row:
    """A stored alert as ``{seq, timestamp, level, title, text, source}``; ``seq`` is
    the number of its ``JOB_ALERT`` event, unique within the job."""
    return {
        "seq": row["seq"],
        "timestamp": format_ts(row["ts"]),
        "level": row["level"],
        "title": row["title"],
        "text": row["text"],
        "source": row["source"],
    }
