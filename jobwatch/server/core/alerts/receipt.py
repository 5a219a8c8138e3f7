"""A receipt at the end, without I/O: what a finished job cost and what it got.

When a job completes, fails or is cancelled its receipt rides on the live
``JOB_COMPLETED`` event (``receipt``), is posted to the webhook shaped as an
alert (``source`` ``receipt``, :func:`receipt_alert`) and is served at
``GET /api/jobs/{jobId}/receipt``. It is no stored alert and no event of its
own: ``JOB_COMPLETED`` stays the event right after the job's last one, as the
seed's clients expect, and a finished job does not count an alert for it.
Every figure is the stored job's: the same elapsed time and cost as
``/monitor`` answers for the finished job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobwatch.contract.requests import format_ts
from jobwatch.server.core.alerts.alert_rules import Alert
from jobwatch.server.core.alerts.hangs import duration_text
from jobwatch.server.core.job_row import ListedJob
from jobwatch.server.core.rules import job_estimates

__all__ = ["gpu_count", "receipt", "receipt_alert"]


def gpu_count(sample: Mapping[str, Any] | None) -> int:
    """GPUs a sample row shows: its per-GPU list's length, 1 for flat metrics
    alone, 0 without a sample or any value."""
    if sample is None:
        return 0
    gpus = sample.get("gpus")
    if gpus:
        return len(gpus)
    values = ("gpu_utilization", "gpu_memory_used", "gpu_temperature", "power_usage")
    return int(any(sample.get(column) is not None for column in values))


def receipt(
    job: ListedJob,
    now: float,
    ranges: Mapping[str, tuple[float, float]],
    gpus: int,
) -> dict[str, Any]:
    """The receipt of ``job`` (finished, or as it stands at ``now``).

    Parameters
    ----------
    job:
        The stored row.
    now:
        Server time (s since the epoch); a finished job's figures end at its ``completedAt``.
    ranges:
        ``{name: (least, greatest)}`` of each training metric's values.
    gpus:
        GPUs of the job's newest sample (:func:`gpu_count`).

    Returns
    -------
    dict
        ``{jobId, status, startedAt, completedAt, duration (s), cost, currency,
        budget, gpus, gpuHours, metrics: {name: {final, step, min, max}},
        hungSeconds, hungCost, stalledSeconds, stalledCost, error}``;
        ``gpuHours`` is ``duration / 3600 * gpus``; ``cost`` is ``None``
        without a price.
    """
    figures = job_estimates(job, now)
    duration = figures.elapsed or 0.0
    latest = job["latest_scalars"] or {}
    metrics = {
        name: {
            "final": entry["value"],
            "step": entry["step"],
            "min": ranges[name][0] if name in ranges else entry["value"],
            "max": ranges[name][1] if name in ranges else entry["value"],
        }
        for name, entry in sorted(latest.items())
    }
    return {
        "jobId": job["id"],
        "status": job["status"],
        "startedAt": None if job["started_at"] is None else format_ts(job["started_at"]),
        "completedAt": None if job["completed_at"] is None else format_ts(job["completed_at"]),
        "duration": round(duration, 3),
        "cost": figures.cost_so_far,
        "currency": job["currency"],
        "budget": job["budget"],
        "gpus": gpus,
        "gpuHours": round(duration / 3600.0 * gpus, 6),
        "metrics": metrics,
        "hungSeconds": round(job["hung_seconds"], 3),
        "hungCost": round(job["hung_cost"], 6),
        "stalledSeconds": round(job["stalled_seconds"], 3),
        "stalledCost": round(job["stalled_cost"], 6),
        "error": job["error"],
    }


def receipt_alert(summary: Mapping[str, Any]) -> Alert:
    """The receipt as one alert (``source`` ``receipt``): ``"completed in 2 h 05 min;
    cost 12.30 of 50.00 QUBIC; 1.04 GPU hours; loss 0.2100 (min 0.2000); hung 42 min
    (4.20 QUBIC)"``."""
    parts = [f"{summary['status']} in {duration_text(summary['duration'])}"]
    currency = summary["currency"]
    if summary["cost"] is not None:
        budget = summary["budget"]
        of = "" if budget is None else f" of {budget:.2f}"
        parts.append(f"cost {summary['cost']:.2f}{of} {currency}")
    if summary["gpus"]:
        parts.append(f"{summary['gpuHours']:.2f} GPU hours")
    for name, figures in summary["metrics"].items():
        parts.append(
            f"{name} {figures['final']:.4g} (min {figures['min']:.4g}, max {figures['max']:.4g})"
        )
    for what in ("hung", "stalled"):
        seconds = summary[f"{what}Seconds"]
        if seconds > 0:
            parts.append(
                f"{what} {duration_text(seconds)} ({summary[f'{what}Cost']:.2f} {currency})"
            )
    return Alert("info", f"receipt: job {summary['status']}", "; ".join(parts)[:4096], "receipt")
