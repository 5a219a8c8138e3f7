"""The monitor's static snapshot: the job as HTML and text that need no kernel and no JavaScript.

A widget lives only as long as its kernel: a notebook reopened later, shown on
GitHub or nbviewer, or converted by nbconvert, has no live monitor. Beside the
widget, :class:`~jobwatch.notebook.monitor.JobMonitor` shows this snapshot (a
display it updates by ``display_id``, never appends to): name, status,
progress, elapsed, time remaining, cost, the latest GPU and system sample, a
distributed job's workers and every node's GPUs
(:mod:`jobwatch.notebook.snapshot_workers`), sparklines of GPU, system and training
metrics, the job's end and the last log lines. Where the
widget is live the page hides the snapshot (see
:mod:`jobwatch.notebook.snapshot_switch`); elsewhere it is what shows.

Every value from a job or a server is escaped (markupsafe), as in the live
view. Colours come from JupyterLab's theme variables (``--jp-ui-font-color0``,
``--jp-layout-color0``, ...) with light fallbacks, so the snapshot is
readable in the light and dark themes and in a page without them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from jobwatch.notebook.charts.sparkline import sparkline
from jobwatch.notebook.snapshot_workers import workers_html, workers_text
from jobwatch.notebook.view import (
    CONNECTION_STYLE,
    _latest_gpu,
    _latest_system,
    _title,
    cost_html,
)
from jobwatch.view.budget import budget_suffix
from jobwatch.view.formatting import (
    format_cost,
    format_duration,
    format_log_line,
    format_metric,
    format_number,
    format_percent,
    format_rate,
    format_size,
    format_system,
    has_system,
)
from jobwatch.view.gpu_heat import GpuHeat, HeatNode
from jobwatch.view.state import MonitorState

__all__ = ["SNAPSHOT_CLASS", "snapshot_bundle", "snapshot_html", "snapshot_text"]

SNAPSHOT_CLASS = "jobwatch-snapshot"
"""CSS class of every snapshot's outer element."""
LOG_LINES = 10
"""Newest log lines a snapshot shows."""
SCALAR_CHARTS = 6
"""Most training metrics a snapshot draws (the first by name)."""
GPU_CHARTS = {
    "gpuUtilization": ("GPU", "%"),
    "gpuMemoryUsed": ("memory", " MiB"),
    "gpuTemperature": ("temperature", "°C"),
    "powerUsage": ("power", " W"),
}
"""GPU metric drawn (a flat field of a sample) -> (its label, its unit)."""
SYSTEM_CHARTS = {
    "cpuUtilization": ("CPU", "%"),
    "memoryUsed": ("memory", "MB"),
    "processMemory": ("process", "MB"),
    "diskRead": ("disk read", "B/s"),
    "diskWrite": ("disk write", "B/s"),
    "networkIn": ("net in", "B/s"),
    "networkOut": ("net out", "B/s"),
}
"""System metric drawn -> (its label, its wire unit), each drawn where a sample has it."""
BADGE_COLOURS = {
    "waiting": "#4b5563",
    "pending": "#4b5563",
    "running": "#1d4ed8",
    "completed": "#15803d",
    "failed": "#b91c1c",
    "cancelled": "#b45309",
}
"""status -> badge background; each gives white text at least 4.5:1 (WCAG 2.1 AA)."""

_TEXT = "var(--jp-ui-font-color0, #111827)"
_MUTED = "var(--jp-ui-font-color1, #374151)"
_BACKGROUND = "var(--jp-layout-color0, #ffffff)"
_BORDER = "var(--jp-border-color2, #d1d5db)"
_TRACK = "var(--jp-layout-color3, #e5e7eb)"
_FONT = "var(--jp-ui-font-family, system-ui, -apple-system, 'Segoe UI', sans-serif)"
_MONO = "var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, monospace)"


def snapshot_bundle(
    state: MonitorState,
    connection: str,
    *,
    marker: str,
    now: float | None = None,
    heat: Sequence[HeatNode] | None = None,
) -> dict[str, str]:
    """The snapshot as a display's mime bundle: ``text/html`` and ``text/plain``.

    Parameters
    ----------
    state:
        What the monitor knows of the job.
    connection:
        The monitor's connection state (``"live"``, ``"closed"``, ``"ended"``, ...).
    marker:
        An extra CSS class for this monitor's snapshot, by which its live
        widget hides it (letters, digits, ``-`` and ``_`` only).
    now:
        Seconds since the epoch the snapshot is of (default: the clock).
    heat:
        A distributed job's GPUs by node as the live view last drew them
        (:class:`~jobwatch.view.gpu_heat.GpuHeat`); default: read from the state.
    """
    return {
        "text/html": snapshot_html(state, connection, marker=marker, now=now, heat=heat),
        "text/plain": snapshot_text(state, connection, now=now),
    }


def snapshot_html(
    state: MonitorState,
    connection: str,
    *,
    marker: str = "",
    now: float | None = None,
    heat: Sequence[HeatNode] | None = None,
) -> str:
    """The snapshot as one self-contained HTML fragment (inline styles and SVG, no script).

    Parameters are those of :func:`snapshot_bundle`.

    Raises
    ------
    ValueError
        ``marker`` has a character outside letters, digits, ``-`` and ``_``.
    """
    if not marker.replace("-", "").replace("_", "").isalnum() and marker:
        raise ValueError(f"marker must be letters, digits, '-' and '_', got {marker!r}")
    job = state.job
    status = _status(state, connection)
    progress = float(job.get("progress") or 0.0)
    parts = [
        _html(
            '<div style="display:flex;flex-wrap:wrap;gap:4px 10px;align-items:center">'
            "<span>{}</span>{}"
            '<span style="color:{}">{}</span></div>',
            Markup(_title(job)),
            _badge(status),
            Markup(_MUTED),
            _as_of(connection, now),
        ),
        _progress_bar(progress),
    ]
    if job.get("currentOperation"):
        parts.append(_html("<div>{}</div>", job["currentOperation"]))
    parts.append(
        _html(
            '<div style="display:flex;flex-wrap:wrap;gap:2px 14px">'
            "<span>elapsed <b>{}</b></span><span>time remaining <b>{}</b></span>"
            "<span>{}</span></div>",
            format_duration(state.elapsed),
            format_duration(state.time_remaining),
            Markup(cost_html(state)),
        )
    )
    parts.append(
        _html("<div>{}</div>{}", Markup(_latest_gpu(state)), Markup(_latest_system(state)))
    )
    world_size = state.job.get("worldSize")
    if isinstance(world_size, int):
        nodes = GpuHeat().nodes(state) if heat is None else heat
        parts.append(workers_html(world_size, state.workers, nodes))
    charts = _gpu_charts(state) + _system_charts(state) + _scalar_charts(state)
    if charts:
        parts.append(
            _html(
                '<div style="display:flex;flex-wrap:wrap;gap:4px 16px;margin-top:4px">{}</div>',
                Markup("").join(charts),
            )
        )
    if state.finished:
        parts.append(_end(job))
    parts.append(_logs(state))
    classes = f"{SNAPSHOT_CLASS} {marker}".strip()
    return _html(
        '<div class="{}" style="font-family:{};font-size:13px;line-height:1.5;color:{};'
        "background:{};border:1px solid {};border-radius:6px;padding:8px 12px;"
        'box-sizing:border-box;max-width:100%;overflow-wrap:anywhere">{}</div>',
        classes,
        Markup(_FONT),
        Markup(_TEXT),
        Markup(_BACKGROUND),
        Markup(_BORDER),
        Markup("").join(parts),
    )


def snapshot_text(state: MonitorState, connection: str, *, now: float | None = None) -> str:
    """The snapshot as plain text: a header line, the figures, the last log lines.

    Parameters are those of :func:`snapshot_bundle` (without ``marker``).
    """
    job = state.job
    name = job.get("name") or job.get("id", "")
    title = name if name == job.get("id") else f"{name} ({job.get('id', '')})"
    lines = [
        f"{title} · {_status(state, connection)} · "
        f"{format_percent(float(job.get('progress') or 0.0))} · {_as_of(connection, now)}",
        f"elapsed {format_duration(state.elapsed)} · time remaining "
        f"{format_duration(state.time_remaining)} · cost "
        f"{format_cost(state.cost_so_far, state.currency)} of est. "
        f"{format_cost(state.estimated_total_cost, state.currency)}" + budget_suffix(state),
    ]
    if job.get("currentOperation"):
        lines.insert(1, str(job["currentOperation"]))
    if state.samples and has_system(state.samples[-1].flat):
        lines.append(format_system(state.samples[-1].flat))
    if isinstance(job.get("worldSize"), int):
        lines.append(workers_text(job["worldSize"], state.workers))
    if state.finished:
        lines.append(_end_text(job))
    lines += [format_log_line(line) for line in list(state.logs)[-LOG_LINES:]]
    return "\n".join(lines)


def _html(template: str, *values: Any) -> Markup:
    return Markup(template).format(*values)


def _status(state: MonitorState, connection: str) -> str:
    return "waiting" if connection == "waiting" else str(state.job.get("status") or "pending")


def _as_of(connection: str, now: float | None) -> str:
    """``"snapshot 14:03:07 UTC · live"``: when this view was taken and how it followed the job."""
    moment = time.gmtime(time.time() if now is None else now)
    words = CONNECTION_STYLE.get(connection, ("", connection))[1]
    return f"snapshot {time.strftime('%Y-%m-%d %H:%M:%S', moment)} UTC · {words}"


def _badge(status: str) -> Markup:
    return _html(
        '<span class="jobwatch-snapshot-status" style="background:{};color:#ffffff;'
        'padding:0 8px;border-radius:9px;font-size:12px">{}</span>',
        BADGE_COLOURS.get(status, "#4b5563"),
        status,
    )


def _progress_bar(progress: float) -> Markup:
    share = min(100.0, max(0.0, progress))
    return _html(
        '<div style="display:flex;align-items:center;gap:8px">'
        '<div style="flex:1;max-width:420px;height:8px;border-radius:4px;background:{}">'
        '<div style="width:{:.1f}%;height:8px;border-radius:4px;'
        'background:var(--jp-brand-color1, #1d4ed8)"></div></div><b>{}</b></div>',
        Markup(_TRACK),
        share,
        format_percent(progress),
    )


def _chart(label: str, values: list[float | None], latest: str) -> Markup:
    return _html(
        '<span style="display:inline-flex;align-items:center;gap:6px">'
        '<span style="color:{}">{}</span>{}<b>{}</b></span>',
        Markup(_MUTED),
        label,
        sparkline(values, label=label),
        latest,
    )


def _gpu_charts(state: MonitorState) -> list[Markup]:
    samples = list(state.samples)
    if not samples:
        return []
    charts = []
    for field, (label, unit) in GPU_CHARTS.items():
        values = [sample.flat.get(field) for sample in samples]
        if any(value is not None for value in values):
            charts.append(_chart(label, values, format_metric(values[-1], unit)))
    return charts


def _system_charts(state: MonitorState) -> list[Markup]:
    if not state.has_system:
        return []
    samples = list(state.samples)
    shown = {"%": lambda v: format_metric(v, "%"), "MB": format_size, "B/s": format_rate}
    charts = []
    for field, (label, unit) in SYSTEM_CHARTS.items():
        values = [sample.flat.get(field) for sample in samples]
        if any(value is not None for value in values):
            charts.append(_chart(label, values, shown[unit](values[-1])))
    return charts


def _scalar_charts(state: MonitorState) -> list[Markup]:
    charts = []
    for name in sorted(state.scalars)[:SCALAR_CHARTS]:
        points = list(state.scalars[name])
        if points:
            charts.append(_chart(name, [p.value for p in points], format_number(points[-1].value)))
    return charts


def _end(job: dict[str, Any]) -> Markup:
    status = str(job.get("status"))
    if status == "completed":
        result = job.get("result")
        shown = "" if result is None else json.dumps(result)[:500]
        return _html(
            '<div class="jobwatch-snapshot-end">✔ <b>completed</b>{}</div>',
            _html(" — result: <code>{}</code>", shown) if shown else "",
        )
    return _html(
        '<div class="jobwatch-snapshot-end">✘ <b>{}</b>: <code>{}</code></div>',
        status,
        job.get("error") or "no error message",
    )


def _end_text(job: dict[str, Any]) -> str:
    status = str(job.get("status"))
    if status == "completed":
        result = job.get("result")
        return "✔ completed" + ("" if result is None else f" — result: {json.dumps(result)[:500]}")
    return f"✘ {status}: {job.get('error') or 'no error message'}"


def _logs(state: MonitorState) -> Markup:
    lines = list(state.logs)[-LOG_LINES:]
    if not lines:
        return _html('<div style="color:{}">no log lines</div>', Markup(_MUTED))
    total = max(state.log_total, len(lines))
    return _html(
        '<div style="color:{};margin-top:4px">last {} of {} log lines</div>'
        '<pre class="jobwatch-snapshot-logs" style="margin:2px 0 0;padding:4px 6px;'
        "font-family:{};font-size:12px;white-space:pre-wrap;color:{};"
        'background:var(--jp-layout-color2, #f3f4f6);border-radius:4px">{}</pre>',
        Markup(_MUTED),
        len(lines),
        total,
        Markup(_MONO),
        Markup(_TEXT),
        "\n".join(format_log_line(line) for line in lines),
    )
