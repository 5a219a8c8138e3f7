"""Numbers for people: durations, money, memory. Shared by every front-end."""

from __future__ import annotations

import math

DASH = "\N{EN DASH}"
"""Shown for an unknown value."""


def format_duration(seconds: float | None) -> str:
    """``"45s"``, ``"3m 12s"``, ``"1h 02m"``, ``"2d 03h"``; a dash when unknown.

    Parameters
    ----------
    seconds:
        A duration in seconds (negative counts as 0), or ``None``.
    """
    if seconds is None or not math.isfinite(seconds):
        return DASH
    total = max(0, int(seconds + 0.5))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_cost(value: float | None, currency: str) -> str:
    """``"0.42 QUBIC"``: two decimals (four below 0.01); a dash when unknown."""
    if value is None or not math.isfinite(value):
        return DASH
    decimals = 4 if 0 < abs(value) < 0.01 else 2
    return f"{value:,.{decimals}f} {currency}"


def format_memory(mb: float | None) -> str:
    """Memory given in MB (MiB): ``"812 MB"`` or ``"17.6 GB"`` (GiB); a dash when unknown."""
    if mb is None or not math.isfinite(mb):
        return DASH
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"
