"""Text for people: durations, money, memory, GPU and system metrics and log lines.

Shared by every front-end (``jobwatch watch``, the notebook monitor and its
text fallback), so a job reads the same wherever it is watched. Pure
functions; an unknown value is shown as :data:`DASH`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobwatch.contract.basics import parse_ts
from jobwatch.contract.metrics import SYSTEM_FIELDS
from jobwatch.view import ansi
from jobwatch.view.terminal_safe import clean, visible_controls

DASH = "-"
"""Shown for an unknown value (plain ASCII, so it survives any terminal)."""

_COLORS = {"warning": "\x1b[33m", "error": "\x1b[31m"}  # yellow, red; info keeps the default
_RESET = "\x1b[0m"


def format_duration(seconds: float | None) -> str:
    """``"45s"``, ``"3m 12s"``, ``"1h 02m"``, ``"2d 03h"``; ``"<1s"`` above 0 and
    below 1 s; a dash when unknown.

    Parameters
    ----------
    seconds:
        A duration in seconds (negative counts as 0), or ``None``.
    """
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if 0 < seconds < 1:  # a running job's time remaining never reads 0 before its end
        return "<1s"
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


COST_DIGITS = 3
"""Significant digits of a cost: enough to see a young job's cost move."""
COST_DECIMALS = (2, 8)
"""Fewest and most decimals of a cost (cents at least; below 1e-8, ``"<0.00000001"``)."""


def format_number(value: float | None) -> str:
    """A training-metric value for people: 4 significant digits (``"0.2313"``,
    ``"98.5"``, ``"1.2e-05"``, ``"1.235e+04"``); a dash when unknown or not finite."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.4g}"


def format_cost(value: float | None, currency: str | None) -> str:
    """``"0.000694 QUBIC"``, ``"0.420 QUBIC"``, ``"1,234.50 QUBIC"``; a dash when unknown.

    One format everywhere: :data:`COST_DIGITS` significant digits with at
    least two decimals (so a cost shows moving from the first second on,
    ``"0.0100"`` never turns into ``"0.01"``), thousands separated; below the
    last of :data:`COST_DECIMALS` decimals, ``"<0.00000001"``; 0 is ``"0.00"``.

    Parameters
    ----------
    value:
        An amount in ``currency``, or ``None`` (the job has no price).
    currency:
        Appended after a space; ``None`` or ``""`` for the bare number.
    """
    if value is None or not math.isfinite(value):
        return DASH
    fewest, most = COST_DECIMALS
    decimals = fewest
    if value != 0:
        rounded = float(f"{abs(value):.{COST_DIGITS - 1}e}")  # the digits that will show
        decimals = min(most, max(fewest, COST_DIGITS - 1 - math.floor(math.log10(rounded))))
    text = f"{value:,.{decimals}f}"
    if value != 0 and float(text.replace(",", "")) == 0:
        text = f"<{10.0**-most:.{most}f}"
    return f"{text} {currency}" if currency else text


def format_memory(used: float | None, total: float | None) -> str:
    """``"17.6/23.4 GiB"``, ``"0.29/0.78 GiB"``; a dash for each unknown part.

    Parameters
    ----------
    used, total:
        GPU memory in MiB (the wire's ``MB``: NVML's bytes / 2**20), or
        ``None``. Always shown in GiB (2**30 bytes, as NVML counts): one
        decimal from 1 GiB (of the total, else the used amount), two below.
    """
    if used is None and total is None:
        return DASH
    digits = 1 if (total if total is not None else used or 0) >= 1024 else 2

    def part(value: float | None) -> str:
        return DASH if value is None else f"{value / 1024:.{digits}f}"

    return f"{part(used)}/{part(total)} GiB"


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


_RATE_UNITS = ("B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s")


def format_rate(value: float | None) -> str:
    """``"512 B/s"``, ``"1.5 KiB/s"``, ``"12.3 MiB/s"``: bytes per second in binary
    units (steps of 1024, as the memory figures), one decimal from KiB/s; a dash
    when unknown."""
    if value is None:
        return DASH
    unit = 0
    while abs(value) >= 1024 and unit < len(_RATE_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.0f} B/s" if unit == 0 else f"{value:.1f} {_RATE_UNITS[unit]}"


def format_size(value: float | None) -> str:
    """``"2.3 GiB"``, ``"0.45 GiB"`` from MiB (the wire's ``MB``): one decimal from
    1 GiB, two below; a dash when unknown."""
    if value is None:
        return DASH
    return f"{value / 1024:.{1 if value >= 1024 else 2}f} GiB"


def has_system(metrics: Mapping[str, Any] | None) -> bool:
    """Whether a sample (wire names) has a value of a system metric."""
    return metrics is not None and any(metrics.get(name) is not None for name in SYSTEM_FIELDS)


def format_system(metrics: Mapping[str, Any] | None) -> str:
    """``"CPU 45%  mem 12.1/31.2 GiB  process 2.3 GiB  disk 120.4/500.0 GiB  read 1.5 MiB/s
    write 0 B/s  net in 2.0 KiB/s out 512 B/s"``; a dash for each missing field.

    Parameters
    ----------
    metrics:
        One sample with the wire names: ``cpuUtilization`` (%), ``memoryUsed``,
        ``memoryTotal``, ``processMemory``, ``diskUsed``, ``diskTotal`` (MiB),
        ``diskRead``, ``diskWrite``, ``networkIn``, ``networkOut`` (bytes/s);
        ``None`` before the first sample.
    """
    m = metrics or {}
    return (
        f"CPU {format_metric(m.get('cpuUtilization'), '%')}  "
        f"mem {format_memory(m.get('memoryUsed'), m.get('memoryTotal'))}  "
        f"process {format_size(m.get('processMemory'))}  "
        f"disk {format_memory(m.get('diskUsed'), m.get('diskTotal'))}  "
        f"read {format_rate(m.get('diskRead'))} write {format_rate(m.get('diskWrite'))}  "
        f"net in {format_rate(m.get('networkIn'))} out {format_rate(m.get('networkOut'))}"
    )


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


def format_percent(progress: float, width: int = 0) -> str:
    """``"99.9%"``: ``progress`` (%) cut, not rounded, to one decimal, so a job at
    99.96 % never reads 100.0 % before it reaches 100 (tqdm cuts the same way).

    Parameters
    ----------
    progress:
        Percent done; clamped to 0-100 (not finite: 0).
    width:
        The number is right-aligned to this many characters (0: no padding).
    """
    value = min(max(progress, 0.0), 100.0) if math.isfinite(progress) else 0.0
    tenths = math.floor(value * 10 + 1e-9)  # the epsilon keeps 29.3 (292.999... tenths) at 29.3
    return f"{tenths / 10:{width}.1f}%"


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
    """``"10:31:02 warning loss is nan"``: local time, level, message as a terminal shows it.

    Parameters
    ----------
    line:
        A wire log line (``timestamp``, ``level``, ``message``); an unknown
        time shows as ``--:--:--``.
    color:
        Colour warnings yellow and errors red with ANSI codes, and keep the
        message's own colours (SGR only, :func:`jobwatch.view.ansi.for_terminal`);
        without, the message as plain text (:func:`jobwatch.view.ansi.plain`).
        Bidi controls and zero-width characters show as escapes
        (:func:`jobwatch.view.terminal_safe.visible_controls`).
    """
    when = parse_ts(line.get("timestamp"))
    clock = "--:--:--" if when is None else datetime.fromtimestamp(when).strftime("%H:%M:%S")
    level = clean(line.get("level", "info"), single_line=True)
    label = f"{level:<7}"
    if color and level in _COLORS:
        label = _COLORS[level] + label + _RESET
    message = str(line.get("message", ""))
    # As a terminal shows it: the last \r frame, no escapes but (on a colour terminal) SGR.
    shown = ansi.for_terminal(message) if color else ansi.plain(message)
    return f"{clock} {label} {visible_controls(shown)}"
