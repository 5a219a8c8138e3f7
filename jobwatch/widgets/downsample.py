"""A point budget for chart lines: at most about one point per pixel, spikes kept.

A chart a few hundred pixels wide cannot show more points than it has pixel
columns; sending more only costs bytes over the comm at every redraw.
:func:`min_max` cuts a series to a budget the way monitoring dashboards do
(min/max decimation, as in Grafana's and uPlot's): time is split into equal
buckets and each keeps the lowest and the highest value of every line, in the
order they came, so a spike one sample wide stays visible. Any chart with
lines sharing one time axis can use it (GPU metrics now, training metrics
later).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["CHART_POINTS", "min_max"]

CHART_POINTS = 256
"""Points per line a chart of the monitor draws: about its plot area's width
in pixels (a third of a notebook's width less the axes)."""


def min_max(x: Any, ys: Any, budget: int = CHART_POINTS) -> tuple[Any, Any]:
    """``x`` and ``ys`` cut to at most ``budget`` points per line.

    Parameters
    ----------
    x:
        Times, shape ``(n,)``, ascending (any unit; numbers or ``datetime64``).
    ys:
        Values, shape ``(lines, n)``; NaN is a missing value.
    budget:
        Most points per line (>= 2); a series that fits is returned as given.

    Returns
    -------
    tuple of numpy arrays
        ``(x, ys)`` with shapes ``(m,)`` and ``(lines, m)``, ``m <= budget``. Each
        of ``budget // 2`` equal spans of time keeps two points, at its first
        and last sample time: each line's lowest and highest value there, in
        the order they occurred (a span of one or two samples keeps them as
        they are). A value missing over a whole span stays NaN (a gap).

    Raises
    ------
    ValueError
        ``budget`` is below 2, or the shapes do not match.
    """
    if budget < 2:
        raise ValueError(f"budget must be at least 2 points, got {budget!r}")
    x = np.asarray(x)
    ys = np.asarray(ys, dtype=float)
    if x.ndim != 1 or ys.ndim != 2 or ys.shape[1] != x.shape[0]:
        raise ValueError(f"x must be (n,) and ys (lines, n); got {x.shape} and {ys.shape}")
    n = x.shape[0]
    if n <= budget:
        return x, ys
    position = (x - x[0]).astype(float)
    edges = np.linspace(0.0, position[-1], budget // 2 + 1)[:-1]
    starts = np.unique(np.searchsorted(position, edges, side="left"))
    bounds = [*starts.tolist(), n]
    columns: list[int] = []  # sample index each kept x comes from
    values: list[Any] = []  # one (lines,) column per kept point
    rows = np.arange(ys.shape[0])
    for lo, hi in itertools.pairwise(bounds):
        if hi - lo <= 2:
            columns.extend(range(lo, hi))
            values.extend(ys[:, i] for i in range(lo, hi))
            continue
        span = ys[:, lo:hi]
        missing = np.isnan(span)
        lowest = np.where(missing, np.inf, span).argmin(axis=1)
        highest = np.where(missing, -np.inf, span).argmax(axis=1)
        earlier, later = np.minimum(lowest, highest), np.maximum(lowest, highest)
        columns.extend((lo, hi - 1))
        values.extend((span[rows, earlier], span[rows, later]))
    return x[columns], np.stack(values, axis=1)
