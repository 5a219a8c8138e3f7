"""The widgets of a job monitor and what they show; no threads, no network.

:class:`MonitorView` lays out the header (name, id, status, connection,
progress, time, cost, latest GPU and system sample), the GPU or system charts
(a toggle picks when the job reports both), the log view and the job's end,
and :meth:`MonitorView.render` sets them from a
:class:`~jobwatch.view.state.MonitorState`: traitlets sync only the values that
changed, and the log view sends only new lines. The header's parts that change
with nearly every update (operation, elapsed, time remaining, cost, latest GPU
sample) are one HTML widget, :attr:`MonitorView.live`, so that a render costs
the kernel one comm message for them rather than five.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from jobwatch.view.budget import BUDGET_COLOURS, OVER, PROJECTED_OVER, budget_state, budget_words
from jobwatch.view.config import config_rows
from jobwatch.view.formatting import (
    format_cost,
    format_duration,
    format_memory,
    format_metric,
    format_percent,
    format_system,
)
from jobwatch.view.gpu_heat import node_order
from jobwatch.view.state import MonitorState, Sample

if TYPE_CHECKING:
    from jobwatch.notebook.charts.gpu import Charts
    from jobwatch.notebook.charts.scalars import ScalarChart
    from jobwatch.notebook.charts.system import SystemCharts
    from jobwatch.notebook.workers import WorkersView

TIME_RANGES: dict[str, float | None] = {"1 min": 60.0, "5 min": 300.0, "1 h": 3600.0, "all": None}
"""The time-range control's choices, in seconds (``None``: all kept samples)."""
STATUS_STYLE = {
    "waiting": ("#6b7280", ""),
    "pending": ("#6b7280", ""),
    "running": ("#2563eb", "info"),
    "completed": ("#16a34a", "success"),
    "failed": ("#dc2626", "danger"),
    "cancelled": ("#d97706", "warning"),
}
"""status -> (badge colour, progress bar style)."""
CONNECTION_STYLE = {
    "waiting": ("#6b7280", "waiting for the job"),
    "connecting": ("#6b7280", "connecting"),
    "live": ("#16a34a", "live"),
    "reconnecting": ("#d97706", "disconnected, reconnecting"),
    "offline": ("#dc2626", "disconnected"),
    "closed": ("#6b7280", "not live (closed)"),
    "ended": ("#6b7280", "not live (the job ended)"),
}
"""connection state -> (dot colour, words)."""
DISCONNECTED = ("reconnecting", "offline")
"""Connection states in which the header adds the time of the last update."""
NO_GPU = "no GPU metrics reported"
"""Shown in the header until the first GPU sample arrives."""
FIRST_RANK = 0
"""The rank whose log lines a distributed job's log view shows first: rank 0, the job's
voice (what W&B and trackio log by default); the person picks another rank, a node or
all ranks (every rank's lines: 2,500 a second from 512 ranks logging 5 a second)."""
CHART_INTERVAL = 1.0
"""Seconds between redraws of the GPU or system charts for new samples (a redraw with 8 GPUs
is about 50 KB; the header and logs follow the monitor's ``refresh``)."""
CHART_KINDS = ("GPU", "system")
"""The chart toggle's choices, shown when a job reports both."""


class MonitorView:
    """The ipywidgets layout of a monitor; knows nothing of threads or the network.

    Parameters
    ----------
    on_range:
        Called with the new time-range label when the user picks one.
    on_load_older:
        Called with the oldest log line id shown (``None`` if none) when the user asks for older lines.
    time_range:
        The range picked at first (a key of :data:`TIME_RANGES`).
    on_redraw:
        Called when a control changes only how the state is drawn (the
        training-metrics axes), so the owner renders again soon.
    snapshot_marker:
        The marker class of the monitor's static snapshot, hidden while this
        view is on a page (:class:`~jobwatch.notebook.snapshot_switch.SnapshotSwitch`);
        ``None``: no snapshot to hide.
    x_axis:
        What the training-metrics chart draws values against at first: ``"step"``,
        ``"time"`` or ``"cost"`` (:data:`~jobwatch.view.state.SCALAR_AXES`).
    """

    def __init__(
        self,
        on_range: Callable[[str], None],
        on_load_older: Callable[[int | None], None],
        time_range: str,
        on_redraw: Callable[[], None] | None = None,
        snapshot_marker: str | None = None,
        x_axis: str = "step",
    ) -> None:
        import ipywidgets as widgets

        self.x_axis = x_axis

        from jobwatch.notebook.logview import LogView

        def html_widget(css: str) -> Any:
            item = widgets.HTML()
            item.add_class(css)
            return item

        self.title = html_widget("jobwatch-title")
        self.status = html_widget("jobwatch-status")
        self.connection = html_widget("jobwatch-connection")
        self.progress = widgets.FloatProgress(
            min=0.0, max=100.0, layout=widgets.Layout(width="60%")
        )
        self.progress.add_class("jobwatch-progress")
        self.percent = html_widget("jobwatch-percent")
        # What changes with nearly every update (operation, times, cost, latest GPU
        # sample) is one widget: one comm message a render instead of five (each costs the kernel about 0.1 ms).
        self.operation, self.elapsed, self.eta, self.cost, self.gpu = (_Text() for _ in range(5))
        self.live = html_widget("jobwatch-live")
        self.final = html_widget("jobwatch-final")
        self.banner = html_widget("jobwatch-alert")
        self.range = widgets.ToggleButtons(options=list(TIME_RANGES), value=time_range)
        self.range.style.button_width = "64px"
        self.range.add_class("jobwatch-range")
        self.range.observe(lambda change: on_range(change["new"]), names="value")
        self.scalar_latest = html_widget("jobwatch-scalars-latest")
        self.config = html_widget("jobwatch-config")
        self._on_redraw = on_redraw
        # The charts (bqplot: its import in the kernel, its JavaScript in the page)
        # are made by the render after the first one that needs them, so the
        # header's first values never wait for them.
        self.charts: Charts | None = None
        self.system_charts: SystemCharts | None = None
        self.scalars: ScalarChart | None = None
        # GPU or system charts, when the job reports both: GPU until the person picks.
        self.kind = widgets.ToggleButtons(options=list(CHART_KINDS), value="GPU")
        self.kind.style.button_width = "64px"
        self.kind.add_class("jobwatch-chart-kind")
        if on_redraw is not None:
            redraw = on_redraw
            self.kind.observe(lambda _change: redraw(), names="value")
        self.logs = LogView()
        self.logs.on_load_older(on_load_older)
        # A distributed job's GPUs and ranks, made with its first render that knows the
        # job has them: a job of one worker keeps the monitor as it was.
        self.workers: WorkersView | None = None
        row = widgets.Layout(align_items="center", grid_gap="12px")
        self._header = [
            self.banner,
            widgets.HBox([self.title, self.status, self.connection], layout=row),
            widgets.HBox([self.progress, self.percent], layout=row),
            self.live,
            self.scalar_latest,
            self.config,
        ]
        self.switch: Any = None
        if snapshot_marker is not None:
            from jobwatch.notebook.snapshot_switch import SnapshotSwitch

            self.switch = SnapshotSwitch(snapshot_marker)
            self._header.append(self.switch)
        # No empty charts: the charts and their time range join the page with the first
        # GPU sample (bqplot cannot lay out a figure drawn while hidden).
        self.widget = widgets.VBox([*self._header, self.logs, self.final])
        self.widget.add_class("jobwatch-monitor")
        self._samples_shown = -1
        self._range_shown: str | None = None
        self._kind_shown: str | None = None
        self._charts_drawn_at = -float("inf")
        self._charts_due = False
        self._workers_offered = -1

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.logs.shown()
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            # One line instead of the container's repr of every child widget: what a
            # page without the widget manager (nbconvert, a reader) shows of it.
            bundle["text/plain"] = "jobwatch monitor (live widget; a snapshot is shown beside it)"
        return bundle

    def parts(self) -> list[Any]:
        """Every widget whose traits a render may change (to hold their syncs together)."""
        return [
            self.title, self.status, self.connection, self.progress, self.percent,
            self.live, self.final, self.banner, self.scalar_latest, self.config, self.logs,
            self.widget,
            *([self.workers] if self.workers is not None else []),
            *(self.charts.marks() if self.charts is not None else []),
            *(self.system_charts.marks() if self.system_charts is not None else []),
            *(self.scalars.marks() if self.scalars is not None else []),
        ]  # fmt: skip

    def render(self, state: MonitorState, connection: str) -> None:
        """Show ``state``; only changed traits are synced to the browser."""
        job = state.job
        status = "waiting" if connection == "waiting" else job.get("status") or "pending"
        colour, bar = STATUS_STYLE.get(status, ("#6b7280", ""))
        self.title.value = _title(job)
        self.status.value = _badge(status, colour) + (
            " " + _badge("stalled", STATUS_STYLE["cancelled"][0]) if state.stalled else ""
        )
        self.banner.value = _banner(state)
        c_colour, c_text = CONNECTION_STYLE.get(connection, ("#6b7280", connection))
        self.connection.value = _html(
            '<span style="color:{}">● {}</span>', c_colour, c_text + last_update(state, connection)
        )
        if self.switch is not None:
            watching = connection not in ("closed", "ended") and not state.finished
            self.switch.keep_beating(watching, time.monotonic())
        progress = float(job.get("progress") or 0.0)
        self.progress.value = progress
        self.progress.bar_style = bar
        self.percent.value = _html("<b>{}</b>", format_percent(progress))
        if connection == "waiting":
            self.operation.value = _html(
                "waiting for job <code>{}</code>: it shows here as soon as it is created",
                job.get("id", ""),
            )
        else:
            self.operation.value = _html("{}", job.get("currentOperation") or "")
        self.elapsed.value = _html("elapsed <b>{}</b>", format_duration(state.elapsed))
        self.eta.value = _html("time remaining <b>{}</b>", format_duration(state.time_remaining))
        self.cost.value = cost_html(state)
        self.gpu.value = _latest_gpu(state)
        self.live.value = _html(
            '<div class="jobwatch-operation">{}</div>'
            '<div style="display:flex;gap:12px;align-items:center">'
            '<span class="jobwatch-elapsed">{}</span><span class="jobwatch-eta">{}</span>'
            '<span class="jobwatch-cost">{}</span></div>'
            '<div class="jobwatch-gpu">{}</div>{}',
            *(
                Markup(part.value)
                for part in (self.operation, self.elapsed, self.eta, self.cost, self.gpu)
            ),
            Markup(_latest_system(state)),
        )
        self.config.value = _config(job.get("config"))
        self.final.value = _final(job) if state.finished else ""
        if state.distributed:
            if self.workers is None:
                from jobwatch.notebook.workers import WorkersView

                self.workers = WorkersView()
            self.workers.show(state)
            self._logs_where(state)
        self._render_charts(state)
        fresh = state.take_new_logs()
        if fresh:
            self.logs.append(fresh)  # only the lines of its rank and node, when filtered
        if not self.logs.counts_itself:
            self.logs.total = max(self.logs.total, state.log_total)

    def _logs_where(self, state: MonitorState) -> None:
        """Offer the log view's rank and node filter the job's ranks and nodes; the
        first time, show rank 0's lines (:data:`FIRST_RANK`)."""
        if state.workers_version == self._workers_offered:
            return
        first = self._workers_offered == -1
        self._workers_offered = state.workers_version
        self.logs.world_size = state.job.get("worldSize")
        nodes = {str(worker.get("node")) for worker in state.workers if worker.get("node")}
        self.logs.nodes = sorted(nodes, key=node_order)
        if first and self.logs.rank_filter is None and self.logs.node_filter is None:
            self.logs.rank_filter = FIRST_RANK

    @property
    def charts_shown(self) -> bool:
        """Whether the GPU charts are on the page (from the first GPU sample on)."""
        return self.charts is not None and self.charts.widget in self.widget.children

    @property
    def system_charts_shown(self) -> bool:
        """Whether the system charts are on the page (a job without GPU samples, or the
        toggle's pick)."""
        return self.system_charts is not None and self.system_charts.widget in self.widget.children

    def _chart_kind(self, state: MonitorState) -> str | None:
        """``"GPU"``, ``"system"`` or ``None``: which charts the state has values for
        and, with both, which the toggle picks (GPU until the person picks)."""
        if state.has_gpu and state.has_system:
            return str(self.kind.value)
        return "GPU" if state.has_gpu else "system" if state.has_system else None

    @property
    def scalars_shown(self) -> bool:
        """Whether the training-metrics chart is on the page (from the first value on)."""
        return self.scalars is not None and self.scalars.widget in self.widget.children

    def _render_charts(self, state: MonitorState) -> None:
        kind, metrics = self._chart_kind(state), bool(state.scalars)
        gpu, system = kind == "GPU", kind == "system"
        missing = (gpu and self.charts is None) or (system and self.system_charts is None)
        if missing or (metrics and self.scalars is None):
            if not self._charts_due:
                # The first render that needs a chart sends the header alone; the
                # next one (asked for now) makes the charts.
                self._charts_due = True
                if self._on_redraw is not None:
                    self._on_redraw()
                return
            self._make_charts(gpu, system, metrics)
        chart = self.charts if gpu else self.system_charts if system else None
        both = state.has_gpu and state.has_system
        # No empty charts: each joins the page with its first value (bqplot cannot
        # lay out a figure drawn while hidden).
        children = (
            *self._header,
            *([self.workers] if self.workers is not None else []),
            *([self.range] if chart is not None else []),
            *([self.kind] if chart is not None and both else []),
            *([chart.widget] if chart is not None else []),
            *([self.scalars.widget] if self.scalars and metrics else []),
            self.logs,
            self.final,
        )
        if children != tuple(self.widget.children):
            self.widget.children = children
        if self.scalars is not None and metrics:
            self.scalars.update(state)
        if chart is None:
            return
        now = time.monotonic()
        new_samples = state.samples_version != self._samples_shown
        # New samples redraw the charts at most every CHART_INTERVAL (the header and
        # logs keep the monitor's refresh); a new window, kind or the job's end at once.
        due = now - self._charts_drawn_at >= CHART_INTERVAL or state.finished
        picked = (self.range.value, kind) != (self._range_shown, self._kind_shown)
        if (new_samples and due) or picked:
            chart.update(state, TIME_RANGES[self.range.value])
            self._samples_shown, self._range_shown = state.samples_version, self.range.value
            self._kind_shown = kind
            self._charts_drawn_at = now

    def _make_charts(self, gpu: bool, system: bool, metrics: bool) -> None:
        """Make the charts the state needs (this imports bqplot, the first time)."""
        if gpu and self.charts is None:
            from jobwatch.notebook.charts.gpu import Charts

            self.charts = Charts()
        if system and self.system_charts is None:
            from jobwatch.notebook.charts.system import SystemCharts

            self.system_charts = SystemCharts()
        if metrics and self.scalars is None:
            from jobwatch.notebook.charts.scalars import ScalarChart

            self.scalars = ScalarChart(self.scalar_latest, self.x_axis)
            if self._on_redraw is not None:
                redraw = self._on_redraw
                for toggle in (self.scalars.x_axis, self.scalars.y_scale):
                    toggle.observe(lambda _change: redraw(), names="value")

    def close(self) -> None:
        """Close every widget (the view leaves the page)."""
        for chart in (self.charts, self.system_charts, self.scalars):
            if chart is not None:
                chart.close()
        for part in self.parts():
            part.close()
        self.range.close()
        self.kind.close()
        if self.switch is not None:
            self.switch.close()


class _Text:
    """One part of :attr:`MonitorView.live`: its HTML as ``value`` (built by :func:`_html`)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = ""


def _html(template: str, *values: Any) -> str:
    """``template`` with each ``{}`` filled by a value, HTML-escaped (markupsafe).

    Every HTML widget's value is built here, so no text from a server or a job
    (names, statuses, currencies, operations, results, errors, alerts) reaches
    the page unescaped; a value is inserted as HTML only if it is already
    :class:`markupsafe.Markup`.
    """
    return str(Markup(template).format(*values))


def cost_html(state: MonitorState) -> str:
    """``cost <b>12.30 QUBIC</b> of est. <b>61.20 QUBIC</b> · budget 50.00 QUBIC: projected
    over budget``: the cost so far, the projected spend and, for a job with a budget,
    the budget and its state (:mod:`jobwatch.view.budget`), the figure that is over
    in its colour (the estimate while projected over, the cost once spent)."""
    budget = state.job.get("budget")
    over = budget_state(budget, state.cost_so_far, state.estimated_total_cost)
    colour = BUDGET_COLOURS.get(over or "")
    styled = Markup(' style="color:{}"').format(colour) if colour else Markup("")
    cost_style = styled if over == OVER else Markup("")
    total_style = styled if over == PROJECTED_OVER else Markup("")
    words = budget_words(budget, state.currency, over)
    return _html(
        "cost <b{}>{}</b> of est. <b{}>{}</b>{}",
        cost_style,
        format_cost(state.cost_so_far, state.currency),
        total_style,
        format_cost(state.estimated_total_cost, state.currency),
        Markup(
            _html(
                ' · <span class="jobwatch-budget" data-over="{}"{}>{}</span>', over, styled, words
            )
        )
        if words
        else "",
    )


def last_update(state: MonitorState, connection: str) -> str:
    """`` · last update HH:MM:SS`` (local time) while the link is down and the monitor
    has heard of the job before; "" otherwise."""
    if connection not in DISCONNECTED or state.last_update is None:
        return ""
    return " · last update " + time.strftime("%H:%M:%S", time.localtime(state.last_update))


def _title(job: dict[str, Any]) -> str:
    """The name in bold and the id in code; the id alone (in bold) when the job has no
    other name."""
    job_id = job.get("id", "")
    name = job.get("name")
    if not name or name == job_id:
        return _html("<b><code>{}</code></b>", job_id)
    return _html("<b>{}</b> <code>{}</code>", name, job_id)


def _badge(text: str, colour: str) -> str:
    return _html(
        '<span class="jobwatch-badge" style="background:{};color:white;'
        'padding:1px 8px;border-radius:9px;font-size:12px">{}</span>',
        colour,
        text,
    )


def _latest_gpu(state: MonitorState) -> str:
    if not state.samples or not state.has_gpu:
        return NO_GPU
    latest = state.samples[-1]
    flat = latest.flat
    # With several GPUs the flat fields aggregate them (docs/api.md, "metrics"): say how.
    mean, total, hottest = (" mean", " total", " hottest") if len(latest.gpus) > 1 else ("", "", "")
    return _html(
        "GPU <b>{}</b>{} · memory <b>{}</b>{} · <b>{}</b>{} · <b>{}</b>{}{}",
        format_metric(flat["gpuUtilization"], "%"),
        mean,
        format_memory(flat["gpuMemoryUsed"], flat["gpuMemoryTotal"]),
        total,
        format_metric(flat["gpuTemperature"], "°C"),
        hottest,
        format_metric(flat["powerUsage"], " W"),
        total,
        _gpus_of(latest),
    )


def _gpus_of(sample: Sample) -> str:
    """`` (8 GPUs)``; `` (8 GPUs of node n3)`` for a node's sample of a distributed job
    (each node sends its own: the workers panel shows every node's); ``""`` for one GPU
    of one worker."""
    count = len(sample.gpus)
    nodes = set(sample.nodes.values())
    if len(nodes) == 1:
        return f" ({count} GPU{'' if count == 1 else 's'} of node {nodes.pop()})"
    return f" ({count} GPUs)" if count > 1 else ""


def _latest_system(state: MonitorState) -> str:
    """The latest sample's system metrics as a line (``""`` before any)."""
    if not state.samples or not state.has_system:
        return ""
    return _html('<div class="jobwatch-system">{}</div>', format_system(state.samples[-1].flat))


def _config(config: Any) -> str:
    """The job's config as a folded table of flattened keys (``""`` without one)."""
    rows = config_rows(config) if isinstance(config, dict) else []
    if not rows:
        return ""
    body = Markup("").join(
        Markup(_html("<tr><td><code>{}</code></td><td><code>{}</code></td></tr>", key, value))
        for key, value in rows
    )
    return _html(
        '<details class="jobwatch-config-table"><summary>config ({} keys)</summary>'
        '<table style="font-size:12px">{}</table></details>',
        len(rows),
        body,
    )


ALERT_COLOURS = {"info": "#2563eb", "warning": "#d97706", "error": "#dc2626"}
"""alert level -> banner colour."""


def _banner(state: MonitorState) -> str:
    """The newest alert as a coloured banner, with how many there are in all; "" without."""
    if not state.alerts:
        return ""
    alert = state.alerts[-1]
    colour = ALERT_COLOURS.get(str(alert.get("level")), ALERT_COLOURS["warning"])
    text = f": {alert['text']}" if alert.get("text") else ""
    count = int(state.job.get("alerts") or len(state.alerts))
    more = f" ({count} alerts)" if count > 1 else ""
    return _html(
        '<div style="border-left:4px solid {};padding:2px 8px;color:{}">⚠ <b>{}</b>{}{}</div>',
        colour,
        colour,
        alert["title"],
        text,
        more,
    )


def _final(job: dict[str, Any]) -> str:
    """The job's end: ``✔ completed`` with its result if it has one, or the status and error."""
    status = str(job.get("status"))
    colour = STATUS_STYLE.get(status, ("#dc2626", ""))[0]
    if status == "completed":
        result = job.get("result")
        shown = (
            ""
            if result is None
            else _html(" — result: <code>{}</code>", json.dumps(result, indent=1)[:2000])
        )
        return _html(
            '<div class="jobwatch-result" style="color:{}">✔ <b>completed</b>{}</div>',
            colour,
            Markup(shown),
        )
    return _html(
        '<div class="jobwatch-error" style="color:{}">✘ <b>{}</b>: <code>{}</code></div>',
        colour,
        status,
        job.get("error") or "no error message",
    )
