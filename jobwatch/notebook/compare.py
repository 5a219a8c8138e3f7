"""``jobwatch.compare``: one chart overlaying a metric across jobs (a sweep's runs).

A training metric (``loss``, ``val/accuracy``: anything ``log_metrics`` sent)
is drawn against its step; a sample metric, GPU or system (``gpuUtilization``,
``gpuMemoryUsed``, ``cpuUtilization``, ``processMemory``, ...), against the
seconds since each job started, so runs that started at different times line up. Each line is cut to
:data:`~jobwatch.notebook.charts.downsample.CHART_POINTS` points, min/max kept.
``by`` lines the jobs up by keys of their config (hyperparameters): ordered by
those values and labelled with them, as a sweep is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jobwatch.client.rest import Client
from jobwatch.contract.basics import parse_ts
from jobwatch.contract.metrics import METRIC_FIELDS
from jobwatch.contract.metrics import metric as table_entry
from jobwatch.notebook.charts.downsample import CHART_POINTS, min_max
from jobwatch.view.config import flat_config, format_value

SAMPLE_METRICS = METRIC_FIELDS
"""Names compared over time from ``/metrics`` rather than by step from ``/scalars``."""
MAX_JOBS = 50
"""Most jobs one chart overlays."""
HISTORY = 30 * 24 * 3600.0
"""Seconds of sample history read per job (the server's longest window)."""


def compare(
    job_ids: Sequence[str],
    metric: str = "loss",
    *,
    url: str | None = None,
    token: str | None = None,
    log_scale: bool = False,
    by: str | Sequence[str] | None = None,
) -> Any:
    """A bqplot figure with one line per job for ``metric``.

    Parameters
    ----------
    job_ids:
        1-50 job ids (a job without the metric is left out of the legend's lines).
    metric:
        A training-metric name (x: step) or one of :data:`SAMPLE_METRICS` (x: seconds
        since the job started; memory and disk in GiB).
    url, token:
        The server (default ``$JOBWATCH_URL``, else ``http://127.0.0.1:8765``).
    log_scale:
        A log y axis (for losses; values <= 0 are left out).
    by:
        Config keys (one or a list; nested keys joined by dots, ``"opt.lr"``)
        to line the jobs up by: the lines are ordered by those values (numbers
        before text, a job without the key last) and each label reads
        ``"<job id> lr=0.01 opt.name=adam"`` (``-`` for a missing key).

    Returns
    -------
    bqplot.Figure
        Display it in a notebook; ``.marks[0].labels`` are the job ids drawn.

    Raises
    ------
    ValueError
        No job ids, more than 50, an empty metric name, or ``by`` not config
        keys (non-empty strings).
    jobwatch.errors.JobNotFound
        One of the jobs does not exist (404).
    """
    ids = list(job_ids)
    if not ids or len(ids) > MAX_JOBS:
        raise ValueError(f"job_ids must hold 1-{MAX_JOBS} job ids, got {len(ids)}")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"metric must be a non-empty name, got {metric!r}")
    keys = _keys(by)
    with Client(url, token=token) as client:
        series = [_series(client, job_id, metric) for job_id in ids]
        labels = ids
        if keys:
            configs = [flat_config(client.get_job(job_id).get("config")) for job_id in ids]
            order = sorted(range(len(ids)), key=lambda i: [_order(configs[i], k) for k in keys])
            ids, series = [ids[i] for i in order], [series[i] for i in order]
            labels = [_label(ids[n], configs[i], keys) for n, i in enumerate(order)]
    drawn = [(label, x, y) for label, (x, y) in zip(labels, series, strict=True) if len(x)]
    figure = _figure(metric, drawn, log_scale)
    if keys:
        figure.title += f" by {', '.join(keys)}"
    return figure


def _keys(by: object) -> list[str]:
    keys = [by] if isinstance(by, str) else list(by) if isinstance(by, (list, tuple)) else by
    if keys is None:
        return []
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ValueError(f"by must be config keys (non-empty strings), got {by!r}")
    return keys


def _order(config: dict[str, Any], key: str) -> tuple[int, float, str]:
    """Sort key of one config value: numbers by value, then text, then missing."""
    if key not in config:
        return (2, 0.0, "")
    value = config[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, format_value(value))


def _label(job_id: str, config: dict[str, Any], keys: list[str]) -> str:
    shown = [f"{k}={format_value(config[k]) if k in config else '-'}" for k in keys]
    return " ".join([job_id, *shown])


def _series(client: Client, job_id: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if metric in SAMPLE_METRICS:
        started = parse_ts(client.get_job(job_id).get("startedAt"))
        rows: list[Mapping[str, Any]] = list(client.metrics(job_id, HISTORY, 2 * CHART_POINTS))
        scale = 1024 if table_entry(metric).unit == "MB" else 1
        points = [
            (ts - started, row[metric] / scale)
            for row in rows
            if row.get(metric) is not None
            and (ts := parse_ts(row["timestamp"])) is not None
            and started is not None
        ]
    else:
        got = client.scalars(job_id, names=[metric], max_points=2 * CHART_POINTS)
        points = [(p["step"], p["value"]) for p in got.get(metric, [])]
    if not points:
        return np.array([]), np.array([])
    x, y = (np.asarray(v, dtype=np.float64) for v in zip(*points, strict=True))
    return x, y


def _figure(metric: str, drawn: list[tuple[str, np.ndarray, np.ndarray]], log_scale: bool) -> Any:
    from bqplot import Axis, Figure, LinearScale, Lines, LogScale

    x_scale, y_scale = LinearScale(), LogScale() if log_scale else LinearScale()
    # one shared x: the union of every job's x, each line NaN where it has no value
    xs = np.unique(np.concatenate([x for _, x, _ in drawn])) if drawn else np.array([])
    ys = np.full((len(drawn), xs.size), np.nan)
    for row, (_, x, y) in enumerate(drawn):
        ys[row, np.searchsorted(xs, x)] = np.where(y > 0, y, np.nan) if log_scale else y
    xs, ys = min_max(xs, ys, CHART_POINTS)
    lines = Lines(
        x=xs,
        y=ys.astype(np.float32),
        labels=[job_id for job_id, _, _ in drawn],
        scales={"x": x_scale, "y": y_scale},
        display_legend=True,
        stroke_width=1.5,
    )
    timed = metric in SAMPLE_METRICS
    unit = {"MB": " (GiB)", "B/s": " (bytes/s)"}.get(table_entry(metric).unit, "") if timed else ""
    return Figure(
        title=f"{metric}{unit} across {len(drawn)} jobs",
        marks=[lines],
        axes=[
            Axis(scale=x_scale, label="seconds since start" if timed else "step"),
            Axis(scale=y_scale, orientation="vertical", label=metric),
        ],
        legend_location="top-right",
    )
