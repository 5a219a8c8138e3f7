"""Small inline SVG line charts (sparklines) for the monitor's static snapshot.

A sparkline is a word-sized chart without axes (Tufte's term): here a
``<svg>`` with one ``<polyline>``, drawn from the values alone, so that the
snapshot needs no JavaScript and no chart library to show a trend. Missing
values (``None``, NaN) break the line rather than being drawn as zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

__all__ = ["MAX_POINTS", "sparkline"]

MAX_POINTS = 120
"""Most points one sparkline draws (the newest): about one per pixel of its width."""


def sparkline(
    values: Sequence[float | None],
    *,
    label: str,
    width: int = 120,
    height: int = 28,
    colour: str = "var(--jp-brand-color1, #2563eb)",
) -> Markup:
    """An inline SVG line chart of ``values``, oldest first.

    Parameters
    ----------
    values:
        The series; only the newest :data:`MAX_POINTS` are drawn. ``None`` and
        NaN are gaps.
    label:
        What the chart shows, for screen readers (``aria-label``; escaped).
    width, height:
        Size of the chart in CSS pixels.
    colour:
        The line's CSS colour (a trusted constant, not job text).

    Returns
    -------
    markupsafe.Markup
        The ``<svg>`` element; an empty chart (no line) when fewer than one
        value is known. A flat series is drawn in the middle.
    """
    newest = list(values)[-MAX_POINTS:]
    known = [v for v in newest if v is not None and math.isfinite(v)]
    lines: list[list[str]] = [[]]
    if known:
        low, high = min(known), max(known)
        span = high - low
        step = (width - 2) / max(1, len(newest) - 1)
        for index, value in enumerate(newest):
            if value is None or not math.isfinite(value):
                if lines[-1]:
                    lines.append([])
                continue
            share = 0.5 if span == 0 else (value - low) / span
            x = 1 + index * step
            y = (height - 2) - share * (height - 4)
            lines[-1].append(f"{x:.1f},{y:.1f}")
    polylines = Markup("").join(
        Markup(
            '<polyline points="{}" style="fill:none;stroke:{};stroke-width:1.5;'
            'stroke-linejoin:round" />'
        ).format(" ".join(points) if len(points) > 1 else _dot(points), Markup(colour))
        for points in lines
        if points
    )
    return Markup(
        '<svg class="jobwatch-sparkline" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" style="vertical-align:middle">{}</svg>'
    ).format(label, width, height, width, height, polylines)


def _dot(points: list[str]) -> str:
    """One point drawn as a short tick, so a lone value still shows."""
    x, y = (float(part) for part in points[0].split(","))
    return f"{x:.1f},{y:.1f} {x + 2:.1f},{y:.1f}"
