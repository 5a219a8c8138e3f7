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
    ends = np.append(starts[1:], n)  # one past each span's last sample
    # Each line's lowest and highest value per span, then the first sample
    # holding each (as argmin/argmax would), all spans at once with reduceat.
    low_at = _first_index_of(np.minimum, np.where(np.isnan(ys), np.inf, ys), starts, ends)
    high_at = _first_index_of(np.maximum, np.where(np.isnan(ys), -np.inf, ys), starts, ends)
    small = (ends - starts) <= 2  # kept as they are: the first and the last sample
    earlier = np.where(small, starts, np.minimum(low_at, high_at))
    later = np.where(small, ends - 1, np.maximum(low_at, high_at))
    # Two points per span (its first and last sample time), one for a span of one sample.
    keep = np.stack([np.ones_like(small), ends - starts > 1], axis=1).ravel()
    columns = np.stack([starts, ends - 1], axis=1).ravel()[keep]
    picked = np.stack([earlier, later], axis=2).reshape(ys.shape[0], -1)[:, keep]
    return x[columns], np.take_along_axis(ys, picked, axis=1)


def _first_index_of(reduce: Any, values: Any, starts: Any, ends: Any) -> Any:
    """Per line and span ``[starts[k], ends[k])`` of ``values`` (lines, n), the
    first sample index holding the span's ``reduce`` (``np.minimum`` or
    ``np.maximum``) value; shape ``(lines, spans)``."""
    extreme = reduce.reduceat(values, starts, axis=1)
    lengths = ends - starts
    hit = values == np.repeat(extreme, lengths, axis=1)
    index = np.where(hit, np.arange(values.shape[1]), values.shape[1])
    return np.minimum.reduceat(index, starts, axis=1)
