"""The GPU charts of a monitor: bqplot figures fed from :class:`MonitorState`.

Three figures: utilization (%) with temperature (Celsius, dashed, right
axis); memory used against total (GiB, total dashed); power (W). One line
per GPU when the job reports several (up to :data:`MAX_GPU_LINES`). Times are sent as UTC ``datetime64``;
bqplot's ``DateScale`` draws them in the viewer's local time zone. Missing
values are NaN, which bqplot draws as gaps.

Each redraw sends every line cut to :data:`~jobwatch.notebook.charts.downsample.CHART_POINTS`
points (min/max kept) as float32, whatever the history held: with 8 GPUs a
redraw stays under 64 KB over the comm.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, DateScale, Figure, LinearScale, Lines

from jobwatch.notebook.charts.columns import GpuColumns
from jobwatch.notebook.charts.downsample import CHART_POINTS, min_max
from jobwatch.view.state import MonitorState

METRICS = ("gpuUtilization", "gpuTemperature", "gpuMemoryUsed", "gpuMemoryTotal", "powerUsage")
"""The metrics drawn, in the order of :meth:`Charts.marks`."""

MAX_GPU_LINES = 16
"""Most GPUs drawn as lines of their own; a job with more (several nodes) is drawn as one
``"all GPUs"`` line, and the workers panel's heat strip shows each GPU (as the job page)."""

FIGURE_LAYOUT = {"width": "33%", "min_width": "260px", "height": "240px"}
MARGIN = {"top": 40, "bottom": 35, "left": 50, "right": 50}


def _lines(x_scale: DateScale, y_scale: LinearScale, style: str = "solid") -> Lines:
    return Lines(
        x=np.array([], dtype="datetime64[ms]"),
        y=np.array([]),
        scales={"x": x_scale, "y": y_scale},
        line_style=style,
        stroke_width=1.5,
    )


def _figure(title: str, marks: list[Lines], axes: list[Axis]) -> Figure:
    return Figure(
        title=title,
        marks=marks,
        axes=axes,
        fig_margin=MARGIN,
        layout=widgets.Layout(**FIGURE_LAYOUT),
        title_style={"font-size": "13px"},
        legend_location="bottom-right",  # lines start at 0 and mostly run high
    )


class Charts:
    """The three GPU figures side by side (:attr:`widget`)."""

    def __init__(self) -> None:
        x_util, x_mem, x_power = DateScale(), DateScale(), DateScale()
        percent = LinearScale(min=0.0, max=100.0)
        celsius = LinearScale(min=0.0)
        gibibytes = LinearScale(min=0.0)
        watts = LinearScale(min=0.0)
        self.utilization = _lines(x_util, percent)
        self.temperature = _lines(x_util, celsius, "dashed")
        self.memory_used = _lines(x_mem, gibibytes)
        self.memory_total = _lines(x_mem, gibibytes, "dashed")
        self.power = _lines(x_power, watts)
        self.figures = [
            _figure(
                "GPU utilization (%) and temperature (°C, dashed)",
                [self.utilization, self.temperature],
                [
                    Axis(scale=x_util, tick_format="%H:%M:%S", num_ticks=4),
                    Axis(scale=percent, side="left", label="%"),
                    Axis(scale=celsius, side="right", label="°C"),
                ],
            ),
            _figure(
                "Memory used and total (GiB, dashed)",
                [self.memory_used, self.memory_total],
                [
                    Axis(scale=x_mem, tick_format="%H:%M:%S", num_ticks=4),
                    Axis(scale=gibibytes, side="left", label="GiB"),
                ],
            ),
            _figure(
                "Power (W)",
                [self.power],
                [
                    Axis(scale=x_power, tick_format="%H:%M:%S", num_ticks=4),
                    Axis(scale=watts, side="left", label="W"),
                ],
            ),
        ]
        for figure, name in zip(self.figures, ("util", "memory", "power"), strict=True):
            figure.add_class(f"jobwatch-chart-{name}")
        self.widget = widgets.HBox(self.figures, layout=widgets.Layout(width="100%"))
        self.widget.add_class("jobwatch-charts")
        self._columns = GpuColumns(METRICS)

    def marks(self) -> list[Lines]:
        """Every mark, for batching their updates."""
        return [self.utilization, self.temperature, self.memory_used, self.memory_total, self.power]

    def update(self, state: MonitorState, window: float | None) -> None:
        """Redraw every line from ``state`` over the last ``window`` seconds (``None``: all)."""
        x, labels, values = self._columns.table(state, window, MAX_GPU_LINES)
        x, values = min_max(x, values.reshape(-1, x.shape[0]), CHART_POINTS)  # every line at once
        values = values.reshape(len(METRICS), len(labels), -1)
        times = (x * 1000).astype("datetime64[ms]")
        # One legend, in the first figure: each GPU keeps its colour in every figure.
        _set(self.utilization, times, labels, values[0], legend=True)
        _set(self.temperature, times, labels, values[1])
        _set(self.memory_used, times, labels, values[2], scale=1 / 1024)
        _set(self.memory_total, times, labels, values[3], scale=1 / 1024)
        _set(self.power, times, labels, values[4])

    def close(self) -> None:
        """Close the figures and their marks."""
        close_row(self.marks(), self.figures, self.widget)


def close_row(marks: list[Lines], figures: list[Figure], row: widgets.Widget) -> None:
    """Close a row of figures: its marks, its figures, then the row's box."""
    for mark in marks:
        mark.close()
    for figure in figures:
        figure.close()
    row.close()


def _set(
    mark: Lines, x: Any, labels: list[str], ys: Any, scale: float = 1.0, legend: bool = False
) -> None:
    """Draw lines ``ys`` (shape ``(lines, n)``) at times ``x`` (``datetime64[ms]``)."""
    y = (ys * scale).astype(np.float32)  # 4 bytes a value: a chart shows 3 digits at most
    if len(labels) == 1:
        y = y[0]
    with mark.hold_sync():
        mark.x = x
        mark.y = y
        mark.labels = labels
        mark.display_legend = legend and len(labels) > 1
