"""JobMonitor: one job, live in a notebook.

It starts from ``/monitor``, then follows the WebSocket with that snapshot's
``seq`` (nothing between the two is missed; reconnects resume by themselves).
Two threads: a reader puts stream events in a queue; a renderer applies them
to :class:`~jobwatch.state.MonitorState` and pushes the result to the
widgets at most every ``refresh`` seconds, in one ``hold_sync`` batch, however
fast workers report (tqdm's ``mininterval`` idea). Widget messages go out
from the renderer thread, so the view stays live while another cell runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from jobwatch.client import Client
from jobwatch.formatting import format_cost, format_duration, format_memory, format_metric
from jobwatch.state import MonitorState
from jobwatch.subscription import Subscription

log = logging.getLogger(__name__)

REFRESH = 0.25
"""Seconds between two pushes to the widgets (at most 4 a second)."""
OFFLINE_AFTER = 10.0
"""Seconds of failed reconnection after which the indicator says offline."""
TIME_RANGES: dict[str, float | None] = {"1 min": 60.0, "5 min": 300.0, "1 h": 3600.0, "all": None}
"""The time-range control's choices, in seconds (``None``: all kept samples)."""
HISTORY_POINTS = 500
"""``maxPoints`` asked for when the time range changes."""
ALL_HISTORY = 30 * 24 * 3600.0
"""What "all" asks the server for: its longest window (30 days)."""
STATUS_STYLE = {
    "pending": ("#6b7280", ""),
    "running": ("#2563eb", "info"),
    "completed": ("#16a34a", "success"),
    "failed": ("#dc2626", "danger"),
    "cancelled": ("#d97706", "warning"),
}
"""status -> (badge colour, progress bar style)."""
CONNECTION_STYLE = {
    "connecting": ("#6b7280", "connecting"),
    "live": ("#16a34a", "live"),
    "reconnecting": ("#d97706", "reconnecting"),
    "offline": ("#dc2626", "offline"),
    "closed": ("#6b7280", "closed"),
}


class MonitorView:
    """The ipywidgets layout of a monitor; knows nothing of threads or the network.

    Parameters
    ----------
    on_range:
        Called with the new time-range label when the user picks one.
    on_load_older:
        Called with the oldest log line id shown (``None`` if none) when the user asks for older lines.
    """

    def __init__(
        self,
        on_range: Callable[[str], None],
        on_load_older: Callable[[int | None], None],
        time_range: str,
    ) -> None:
        import ipywidgets as widgets

        from jobwatch.widgets.charts import Charts
        from jobwatch.widgets.logview import LogView

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
        self.operation = widgets.Label()  # plain text: the browser never parses it as HTML
        self.operation.add_class("jobwatch-operation")
        self.elapsed = html_widget("jobwatch-elapsed")
        self.eta = html_widget("jobwatch-eta")
        self.cost = html_widget("jobwatch-cost")
        self.gpu = html_widget("jobwatch-gpu")
        self.final = html_widget("jobwatch-final")
        self.range = widgets.ToggleButtons(options=list(TIME_RANGES), value=time_range)
        self.range.style.button_width = "64px"
        self.range.add_class("jobwatch-range")
        self.range.observe(lambda change: on_range(change["new"]), names="value")
        self.charts = Charts()
        self.logs = LogView()
        self.logs.on_load_older(on_load_older)
        row = widgets.Layout(align_items="center", grid_gap="12px")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.title, self.status, self.connection], layout=row),
                widgets.HBox([self.progress, self.percent], layout=row),
                self.operation,
                widgets.HBox([self.elapsed, self.eta, self.cost], layout=row),
                self.gpu,
                self.range,
                self.charts.widget,
                self.logs,
                self.final,
            ]
        )
        self.widget.add_class("jobwatch-monitor")
        self._samples_shown = -1
        self._range_shown: str | None = None

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def parts(self) -> list[Any]:
        """Every widget whose traits a render may change (to hold their syncs together)."""
        return [
            self.title, self.status, self.connection, self.progress, self.percent,
            self.operation, self.elapsed, self.eta, self.cost, self.gpu, self.final,
            self.logs, *self.charts.marks(),
        ]  # fmt: skip

    def render(self, state: MonitorState, connection: str) -> None:
        """Show ``state``; only changed traits are synced to the browser."""
        job = state.job
        status = job.get("status") or "pending"
        colour, bar = STATUS_STYLE.get(status, ("#6b7280", ""))
        self.title.value = _html(
            "<b>{}</b> <code>{}</code>", job.get("name") or job.get("id", ""), job.get("id", "")
        )
        self.status.value = _badge(status, colour)
        c_colour, c_text = CONNECTION_STYLE.get(connection, ("#6b7280", connection))
        self.connection.value = _html('<span style="color:{}">● {}</span>', c_colour, c_text)
        progress = float(job.get("progress") or 0.0)
        self.progress.value = progress
        self.progress.bar_style = bar
        self.percent.value = _html("<b>{:.1f}%</b>", progress)
        self.operation.value = str(job.get("currentOperation") or "")
        self.elapsed.value = _html("elapsed <b>{}</b>", format_duration(state.elapsed))
        self.eta.value = _html("time remaining <b>{}</b>", format_duration(state.time_remaining))
        self.cost.value = _html(
            "cost <b>{}</b> of est. <b>{}</b>",
            format_cost(state.cost_so_far, state.currency),
            format_cost(state.estimated_total_cost, state.currency),
        )
        self.gpu.value = _latest_gpu(state)
        self.final.value = _final(job) if state.finished else ""
        if state.samples_version != self._samples_shown or self.range.value != self._range_shown:
            self.charts.update(state, TIME_RANGES[self.range.value])
            self._samples_shown, self._range_shown = state.samples_version, self.range.value
        fresh = state.take_new_logs()
        if fresh:
            self.logs.append(fresh)
        self.logs.total = max(self.logs.total, state.log_total)

    def close(self) -> None:
        """Close every widget."""
        self.charts.close()
        for part in self.parts():
            part.close()
        self.range.close()
        self.widget.close()


class JobMonitor:
    """A live view of one job: progress, time remaining, cost, GPU charts and logs.

    Show it as a cell's value or with :meth:`display`. Outside a Jupyter
    kernel, or without ipywidgets, it prints why and shows a text view instead.

    Parameters
    ----------
    job_id:
        The job to watch.
    url:
        Server URL; default ``$JOBWATCH_URL`` or ``http://127.0.0.1:8765``.
    token:
        Bearer token, if the server needs one.
    time_range:
        Initial chart window: ``"1 min"``, ``"5 min"`` (default), ``"1 h"`` or ``"all"``.
    refresh:
        Seconds between pushes to the widgets (default 0.25: at most 4 a second).

    Raises
    ------
    jobwatch.errors.JobNotFound
        The server does not know ``job_id``.
    jobwatch.errors.ConnectionError
        The server cannot be reached.
    ValueError
        ``time_range`` or ``refresh`` is not allowed.
    """

    def __init__(
        self,
        job_id: str,
        url: str | None = None,
        *,
        token: str | None = None,
        time_range: str = "5 min",
        refresh: float = REFRESH,
    ) -> None:
        if time_range not in TIME_RANGES:
            raise ValueError(
                f"time_range must be one of {', '.join(TIME_RANGES)}, got {time_range!r}"
            )
        if not 0.01 <= refresh <= 60:
            raise ValueError(f"refresh must be 0.01-60 seconds, got {refresh!r}")
        self.job_id = job_id
        self.refresh = refresh
        self.client = Client(url, token=token)
        self.state = MonitorState()
        self.state.load_snapshot(self.client.monitor(job_id))
        self.view: Any = _make_view(self, time_range)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Any]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reconnecting_since: float | None = None
        self.renders = 0
        self._subscription = Subscription(
            self.client.ws_url,
            job_id,
            since=self.state.seq,
            token=self.client.token,
            on_state=lambda s: self._enqueue("connection", s),
        )
        self._reader = threading.Thread(
            target=self._read, name=f"jobwatch-monitor-read-{job_id}", daemon=True
        )
        self._renderer = threading.Thread(
            target=self._render_loop, name=f"jobwatch-monitor-render-{job_id}", daemon=True
        )
        self._render()
        self._reader.start()
        self._renderer.start()

    # -- display --------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        """Display the monitor in the current cell's output."""
        from IPython.display import display

        display(self)  # type: ignore[no-untyped-call]

    @property
    def widget(self) -> Any:
        """The root ipywidgets container (``None`` in the text view)."""
        return getattr(self.view, "widget", None)

    # -- life cycle -----------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop both threads, close the socket and the widgets. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._subscription.close()
        self._wake.set()
        self._reader.join(timeout)
        self._renderer.join(timeout)
        self.view.close()
        self.client.close()

    def __enter__(self) -> JobMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads ----------------------------------------------------------------

    def _enqueue(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._pending.append((kind, payload))
        self._wake.set()

    def _read(self) -> None:
        try:
            for event in self._subscription:
                self._enqueue("event", event)
        except Exception as exc:  # a dead stream must not kill the kernel's thread silently
            log.warning("jobwatch: the stream of job %r stopped: %s", self.job_id, exc)
            self._enqueue("connection", "offline")

    def _render_loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(1.0)  # also ticks elapsed time once a second
            wait = last + self.refresh - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            self._wake.clear()
            last = time.monotonic()
            try:
                self._render()
            except Exception:
                log.exception("jobwatch: rendering the monitor of job %r failed", self.job_id)
            if self.state.finished and not self._reader.is_alive() and not self._pending:
                break

    def _render(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for kind, payload in pending:
            if kind == "event":
                self.state.apply(payload)
            elif kind == "connection":
                self.state.set_connection(payload)
            elif kind == "history":
                self.state.replace_samples(payload)
        with contextlib.ExitStack() as stack:
            for part in getattr(self.view, "parts", list)():
                stack.enter_context(part.hold_sync())
            self.view.render(self.state, self._connection())
        self.renders += 1

    def _connection(self) -> str:
        state = self.state.connection
        if state != "reconnecting":
            self._reconnecting_since = None
            return state
        now = time.monotonic()
        self._reconnecting_since = self._reconnecting_since or now
        return "offline" if now - self._reconnecting_since > OFFLINE_AFTER else state

    # -- user actions (kernel thread) ---------------------------------------------

    def _change_range(self, label: str) -> None:
        window = TIME_RANGES[label]
        try:
            rows = self.client.metrics(self.job_id, window or ALL_HISTORY, HISTORY_POINTS)
        except Exception as exc:
            log.warning("jobwatch: could not load %s of metrics: %s", label, exc)
            return
        self._enqueue("history", rows)

    def _load_older(self, before_id: int | None) -> None:
        from jobwatch.widgets.logview import LogView

        view: LogView = self.view.logs
        before = before_id if before_id is not None else 2**62  # empty view: the newest lines
        try:
            older = _lines_before(
                self.client, self.job_id, before, view.max_lines - len(view.lines)
            )
        except Exception as exc:
            log.warning("jobwatch: could not load older log lines: %s", exc)
            view.loading = False  # the button works again for a retry
            return
        view.prepend(older[0], has_older=older[1])


def _lines_before(
    client: Client, job_id: str, before_id: int, room: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``room`` (at most 1000) log lines older than ``before_id``, and whether
    still older ones exist."""
    if room <= 0:
        return [], True
    limit = min(room, 1000)
    lines = list(client.logs(job_id, limit=limit, before_id=before_id)["logs"])
    return lines, len(lines) == limit


def _make_view(monitor: JobMonitor, time_range: str) -> Any:
    reason = _widgets_unavailable()
    if reason is None:
        return MonitorView(monitor._change_range, monitor._load_older, time_range)
    from jobwatch.widgets.text import TextView

    print(f"jobwatch: {reason}; showing a text view instead.")
    return TextView()


def _widgets_unavailable() -> str | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return "IPython is not installed (pip install 'jobwatch[notebook]')"
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return "JobMonitor needs a Jupyter kernel for its widgets"
    try:
        import anywidget  # noqa: F401
        import bqplot  # noqa: F401
        import ipywidgets  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install 'jobwatch[notebook]')"
    return None


def _html(template: str, *values: Any) -> str:
    """``template`` with each ``{}`` filled by a value, HTML-escaped.

    Every HTML widget's value is built here, so no text from a server or a job
    (names, statuses, currencies, results, errors) reaches the page unescaped.
    """
    return str(Markup(template).format(*values))


def _badge(text: str, colour: str) -> str:
    return _html(
        '<span class="jobwatch-badge" style="background:{};color:white;'
        'padding:1px 8px;border-radius:9px;font-size:12px">{}</span>',
        colour,
        text,
    )


def _latest_gpu(state: MonitorState) -> str:
    if not state.samples:
        return "GPU: no metrics yet"
    latest = state.samples[-1]
    flat = latest.flat
    # With several GPUs the flat fields aggregate them (CONTRACT.md): say how.
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
        f" ({len(latest.gpus)} GPUs)" if len(latest.gpus) > 1 else "",
    )


def _final(job: dict[str, Any]) -> str:
    status = str(job.get("status"))
    colour = STATUS_STYLE.get(status, ("#dc2626", ""))[0]
    if status == "completed":
        return _html(
            '<div class="jobwatch-result" style="color:{}">✔ <b>completed</b>'
            " — result: <code>{}</code></div>",
            colour,
            json.dumps(job.get("result"), indent=1)[:2000],
        )
    return _html(
        '<div class="jobwatch-error" style="color:{}">✘ <b>{}</b>: <code>{}</code></div>',
        colour,
        status,
        job.get("error") or "no error message",
    )
