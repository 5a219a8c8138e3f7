"""Text for people: durations, money, memory, GPU metrics and log lines.

Shared by every front-end (``jobwatch watch``, the notebook monitor and its
text fallback), so a job reads the same wherever it is watched. Pure
functions; an unknown value is shown as :data:`DASH`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobwatch.protocol import parse_ts
from jobwatch.terminal import clean

DASH = "-"
"""Shown for an unknown value (plain ASCII, so it survives any terminal)."""

_COLORS = {"warning": "\x1b[33m", "error": "\x1b[31m"}  # yellow, red; info keeps the default
_RESET = "\x1b[0m"


def format_duration(seconds: float | None) -> str:
    """``"45s"``, ``"3m 12s"``, ``"1h 02m"``, ``"2d 03h"``; a dash when unknown.

    Parameters
    ----------
    seconds:
        A duration in seconds (negative counts as 0), or ``None``.
    """
    if seconds is None or not math.isfinite(seconds):
        return DASH
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_cost(value: float | None, currency: str | None) -> str:
    """``"0.42 QUBIC"``, ``"1,234.50 QUBIC"``; a dash when unknown.

    Two decimals, four below 0.01 (so a young job's cost is not ``0.00``) and
    ``"<0.0001"`` below that.

    Parameters
    ----------
    value:
        An amount in ``currency``, or ``None`` (the job has no price).
    currency:
        Appended after a space; ``None`` or ``""`` for the bare number.
    """
    if value is None or not math.isfinite(value):
        return DASH
    if 0 < abs(value) < 0.01:
        text = f"{value:.4f}" if abs(value) >= 0.0001 else "<0.0001"
    else:
        text = f"{value:,.2f}"
    return f"{text} {currency}" if currency else text


def format_memory(used: float | None, total: float | None) -> str:
    """``"17.6/23.4 GiB"`` or ``"300/800 MB"``; a dash for each unknown part.

    Parameters
    ----------
    used, total:
        GPU memory in MB (MiB, as on the wire), or ``None``. Shown in GiB with
        one decimal once the total (else the used amount) reaches 1 GiB.
    """
    if used is None and total is None:
        return DASH
    if (total if total is not None else used or 0) >= 1024:
        scale, digits, unit = 1024.0, 1, "GiB"
    else:
        scale, digits, unit = 1.0, 0, "MB"

    def part(value: float | None) -> str:
        return DASH if value is None else f"{value / scale:.{digits}f}"

    return f"{part(used)}/{part(total)} {unit}"


def format_metric(value: float | None, unit: str) -> str:
    """``"87%"``, ``"72°C"``, ``"350 W"``: ``value`` rounded to a whole number, then ``unit``.

    Parameters
    ----------
    value:
        The reading, or ``None`` (the GPU does not report it): a dash.
    unit:
        Appended as given, with its leading space if it wants one.
    """
    return DASH if value is None else f"{value:.0f}{unit}"


def format_metrics(metrics: Mapping[str, Any] | None) -> str:
    """``"GPU 87%  mem 17.6/23.4 GiB  temp 72°C  power 350 W"``; a dash for each missing field.

    Parameters
    ----------
    metrics:
        One sample with the wire names: ``gpuUtilization`` (%), ``gpuMemoryUsed``
        and ``gpuMemoryTotal`` (MiB), ``gpuTemperature`` (°C), ``powerUsage`` (W);
        ``None`` before the first sample.
    """
    m = metrics or {}
    return (
        f"GPU {format_metric(m.get('gpuUtilization'), '%')}  "
        f"mem {format_memory(m.get('gpuMemoryUsed'), m.get('gpuMemoryTotal'))}  "
        f"temp {format_metric(m.get('gpuTemperature'), '°C')}  "
        f"power {format_metric(m.get('powerUsage'), ' W')}"
    )


def format_bar(percent: float, width: int = 20) -> str:
    """``"[#########-----------]"``: ``width`` cells filled in proportion to ``percent``.

    Parameters
    ----------
    percent:
        Progress in percent, clamped to 0-100 (not finite: empty).
    width:
        Cells between the brackets.

    Raises
    ------
    ValueError
        ``width`` is below 1.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width!r}")
    fraction = min(max(percent, 0.0), 100.0) / 100 if math.isfinite(percent) else 0.0
    filled = min(width, int(fraction * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def format_log_line(line: Mapping[str, Any], *, color: bool = False) -> str:
    """``"10:31:02 warning loss is nan"``: local time, level, cleaned message.

    Parameters
    ----------
    line:
        A wire log line (``timestamp``, ``level``, ``message``); an unknown
        time shows as ``--:--:--``.
    color:
        Colour warnings yellow and errors red with ANSI codes.
    """
    when = parse_ts(line.get("timestamp"))
    clock = "--:--:--" if when is None else datetime.fromtimestamp(when).strftime("%H:%M:%S")
    level = clean(line.get("level", "info"), single_line=True)
    label = f"{level:<7}"
    if color and level in _COLORS:
        label = _COLORS[level] + label + _RESET
    return f"{clock} {label} {clean(line.get('message', ''))}"
