"""The system charts of a monitor: bqplot figures of the system metrics, fed from :class:`MonitorState`.

One figure per ``chart`` of the metrics table
(:data:`~jobwatch.contract.metrics.SYSTEM_METRICS`): CPU utilization (%);
memory (GiB: the machine's used and total, dashed, and the process's with its
children); disk and network rates (MiB/s). One line per metric, labelled as
the table labels it; a metric that bounds another (a total) is dashed. A
metric added to the table with a ``chart`` is drawn without a change here.
Times and gaps as in :mod:`jobwatch.notebook.charts.gpu`; each line is cut to
:data:`~jobwatch.notebook.charts.downsample.CHART_POINTS` points (min/max kept).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, DateScale, Figure, LinearScale, Lines

from jobwatch.contract.metrics import METRICS, SYSTEM_METRICS, Metric
from jobwatch.notebook.charts.columns import GpuColumns
from jobwatch.notebook.charts.downsample import CHART_POINTS, min_max
from jobwatch.notebook.charts.gpu import FIGURE_LAYOUT, MARGIN, close_row
from jobwatch.view.state import MonitorState

__all__ = ["TITLES", "UNITS", "SystemCharts"]

TITLES = {
    "cpu": "CPU utilization (%)",
    "memory": "Memory: machine used, total (dashed), process (GiB)",
    "io": "Disk and network (MiB/s)",
}
"""A figure's title by its ``chart`` name (another name is its own title)."""
UNITS = {"%": (1.0, "%"), "MB": (1 / 1024, "GiB"), "B/s": (1 / 1024**2, "MiB/s")}
"""Wire unit -> (factor to the unit drawn, its label); another unit is drawn as it is."""
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1")
"""Line colours (Tableau 10, as the job page's charts)."""


class _Figure:
    """One system figure: its metrics, a solid and a dashed mark, and the bqplot figure."""

    def __init__(self, name: str, metrics: list[Metric]) -> None:
        bounds = {m.at_most for m in METRICS if m.at_most}
        self.metrics = metrics
        self.factor, label = UNITS.get(metrics[0].unit, (1.0, metrics[0].unit))
        x_scale = DateScale()
        y_scale = (
            LinearScale(min=0.0, max=100.0) if metrics[0].unit == "%" else LinearScale(min=0.0)
        )
        self.marks: list[tuple[Lines, list[int]]] = []
        """(mark, the rows of ``metrics`` it draws): the solid lines, then the dashed totals."""
        for style in ("solid", "dashed"):
            rows = [i for i, m in enumerate(metrics) if (m.wire in bounds) == (style == "dashed")]
            if rows:
                mark = Lines(
                    x=np.array([], dtype="datetime64[ms]"),
                    y=np.array([]),
                    scales={"x": x_scale, "y": y_scale},
                    line_style=style,
                    stroke_width=1.5,
                    colors=[PALETTE[i % len(PALETTE)] for i in rows],
                    labels=[metrics[i].label for i in rows],
                    display_legend=len(metrics) > 1,
                )
                self.marks.append((mark, rows))
        self.figure = Figure(
            title=TITLES.get(name, name),
            marks=[mark for mark, _ in self.marks],
            axes=[
                Axis(scale=x_scale, tick_format="%H:%M:%S", num_ticks=4),
                Axis(scale=y_scale, side="left", label=label),
            ],
            fig_margin=MARGIN,
            layout=widgets.Layout(**FIGURE_LAYOUT),
            title_style={"font-size": "13px"},
            legend_location="top-left",
        )
        self.figure.add_class(f"jobwatch-chart-system-{name}")

    def set(self, times: Any, values: Any) -> None:
        """Draw ``values`` (shape ``(len(metrics), n)``, wire unit) at ``times``."""
        y = (values * self.factor).astype(np.float32)  # 4 bytes a value, as the GPU charts
        for mark, rows in self.marks:
            shown = y[rows] if len(rows) > 1 else y[rows[0]]
            if not np.isfinite(shown).any():
                # nothing to draw yet (a rate needs two samples): bqplot draws an axis of
                # only NaN with an undefined transform, an error in the browser's console
                times_shown, shown = times[:0], shown[..., :0]
            else:
                times_shown = times
            with mark.hold_sync():
                mark.x = times_shown
                mark.y = shown


class SystemCharts:
    """The system figures side by side (:attr:`widget`)."""

    def __init__(self) -> None:
        groups: dict[str, list[Metric]] = {}
        for m in SYSTEM_METRICS:
            if m.chart is not None:
                groups.setdefault(m.chart, []).append(m)
        self._figures = [_Figure(name, metrics) for name, metrics in groups.items()]
        self.figures = [f.figure for f in self._figures]
        self.widget = widgets.HBox(self.figures, layout=widgets.Layout(width="100%"))
        self.widget.add_class("jobwatch-system-charts")
        self.metrics = [m.wire for f in self._figures for m in f.metrics]
        self._columns = GpuColumns(self.metrics, per_gpu=False)

    def marks(self) -> list[Lines]:
        """Every mark, for batching their updates."""
        return [mark for f in self._figures for mark, _ in f.marks]

    def update(self, state: MonitorState, window: float | None) -> None:
        """Redraw every line from ``state`` over the last ``window`` seconds (``None``: all)."""
        x, _, values = self._columns.table(state, window)  # (metrics, 1, n): the flat fields
        x, values = min_max(x, values.reshape(len(self.metrics), -1), CHART_POINTS)
        times = (x * 1000).astype("datetime64[ms]")
        start = 0
        for figure in self._figures:
            figure.set(times, values[start : start + len(figure.metrics)])
            start += len(figure.metrics)

    def close(self) -> None:
        """Close the figures and their marks."""
        close_row(self.marks(), self.figures, self.widget)
