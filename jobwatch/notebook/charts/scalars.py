"""The monitor's "Training metrics" chart: one line per metric the job logs
(:meth:`jobwatch.Reporter.log_metrics`), against the step, the time since the
job started or the money it had cost when each value was logged (loss per unit
of currency), on a linear or a log scale (for losses).

Each redraw sends every line cut to :data:`~jobwatch.notebook.charts.downsample.CHART_POINTS`
points (min/max kept) as float32, as the GPU charts do.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Figure, LinearScale, Lines, LogScale

from jobwatch.contract.basics import parse_ts
from jobwatch.notebook.charts.downsample import CHART_POINTS, min_max
from jobwatch.view.formatting import format_number
from jobwatch.view.state import SCALAR_AXES, MonitorState

X_AXES = SCALAR_AXES
"""The x-axis choices: the metric's step, seconds since the job started, or the job's
cost when the value was logged (its price integrated up to then, docs/api.md)."""
Y_SCALES = ("linear", "log")
"""The y-axis choices; ``log`` draws values <= 0 as gaps."""
LATEST_SHOWN = 6
"""Most metrics named in the header line of latest values."""


class ScalarChart:
    """The training-metrics figure with its two toggles (:attr:`widget`), which
    also keeps a header line of the latest values up to date.

    Parameters
    ----------
    latest:
        The ``ipywidgets.HTML`` of that header line (the monitor's, made before
        the chart so the header needs no bqplot); not closed with the chart.
    x_axis:
        The x-axis shown first, one of :data:`X_AXES` (the toggle changes it).

    Raises
    ------
    ValueError
        ``x_axis`` is not one of :data:`X_AXES`.
    """

    def __init__(self, latest: Any, x_axis: str = "step") -> None:
        if x_axis not in X_AXES:
            raise ValueError(f"x_axis must be one of {', '.join(X_AXES)}, got {x_axis!r}")
        self._x = LinearScale()
        self._y_linear = LinearScale()
        self._y_log = LogScale()
        self.lines = Lines(
            x=np.array([], dtype=np.float64),
            y=np.array([], dtype=np.float32),
            scales={"x": self._x, "y": self._y_linear},
            stroke_width=1.5,
            display_legend=True,
        )
        self._x_axis = Axis(scale=self._x, label=x_axis, num_ticks=5)
        self._y_axis = Axis(scale=self._y_linear, side="left", orientation="vertical")
        self.figure = Figure(
            title="Training metrics",
            marks=[self.lines],
            axes=[self._x_axis, self._y_axis],
            fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 20},
            layout=widgets.Layout(width="100%", height="260px"),
            title_style={"font-size": "13px"},
            legend_location="top-right",
        )
        self.figure.add_class("jobwatch-chart-scalars")
        self.x_axis = widgets.ToggleButtons(options=list(X_AXES), value=x_axis)
        self.y_scale = widgets.ToggleButtons(options=list(Y_SCALES), value="linear")
        for toggle, css in ((self.x_axis, "x"), (self.y_scale, "y")):
            toggle.style.button_width = "56px"
            toggle.add_class(f"jobwatch-scalars-{css}")
        self.latest = latest
        controls = widgets.HBox([self.x_axis, self.y_scale])
        self.widget = widgets.VBox([controls, self.figure])
        self.widget.add_class("jobwatch-scalars")
        self._shown: tuple[int, str, str] | None = None

    def marks(self) -> list[Any]:
        """Every widget a render may change, for batching their updates."""
        return [self.lines, self._x_axis, self._y_axis]

    def update(self, state: MonitorState) -> None:
        """Redraw from ``state`` if its metrics or the toggles changed since the last call."""
        key = (state.scalars_version, self.x_axis.value, self.y_scale.value)
        if key == self._shown:
            return
        self._shown = key
        self.latest.value = latest_line(state)
        by = self.x_axis.value
        series = state.scalar_series(by)
        labels = list(series.lines)
        x = np.asarray(series.x, dtype=np.float64)
        if by == "time" and x.size:
            started = parse_ts(state.job.get("startedAt"))
            x = x - (started if started is not None else x[0])
        ys = np.asarray([series.lines[n] for n in labels], dtype=np.float64).reshape(
            len(labels), -1
        )
        log = self.y_scale.value == "log"
        if log:
            ys = np.where(ys > 0, ys, np.nan)
        x, ys = min_max(x, ys, CHART_POINTS)
        y_scale = self._y_log if log else self._y_linear
        y = ys.astype(np.float32)
        if len(labels) == 1:  # one line as 1-d: bqplot would squeeze (1, 1) to a scalar
            y = y[0]
        with self.lines.hold_sync():
            self.lines.scales = {"x": self._x, "y": y_scale}
            self.lines.x = x
            self.lines.y = y
            self.lines.labels = labels
        self._y_axis.scale = y_scale
        self._x_axis.label = {
            "step": "step",
            "time": "seconds since start",
            "cost": f"cost ({state.currency})",
        }[by]

    def close(self) -> None:
        """Close the figure, its marks and controls."""
        for part in (
            self.lines,
            self._x_axis,
            self._y_axis,
            self.figure,
            self.x_axis,
            self.y_scale,
            self.widget,
        ):
            part.close()


def latest_line(state: MonitorState) -> str:
    """``"loss <b>0.231</b> · accuracy <b>0.978</b> (step 120)"``: the newest value
    of the first :data:`LATEST_SHOWN` metrics (HTML, names escaped)."""
    shown, hidden, step = state.newest_scalars(LATEST_SHOWN)
    if not shown:
        return ""
    parts = [f"{html.escape(n)} <b>{format_number(value)}</b>" for n, value in shown]
    more = f" · +{hidden} more" if hidden else ""
    return " · ".join(parts) + more + f" (step {step})"
