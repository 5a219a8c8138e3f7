"""JobMonitor: one job, live in a notebook.

A :class:`~jobwatch.view.follow.JobFollower` does the following: ``/monitor``, then
the WebSocket from that snapshot's ``seq`` (reconnects resume by themselves),
waiting for a job that does not exist yet (asking ``/monitor`` again every
``wait_interval`` seconds), and the training metrics from ``/scalars`` each
time the stream goes live. Its two threads (a reader and a renderer) push the
state to the widgets in one ``hold_sync`` batch: a change after a quiet moment
at once (a log line reaches the page as soon as the server sends it), a steady
stream of changes at most once per ``refresh`` seconds on average beyond
:data:`BURST`, however fast workers report (tqdm's ``mininterval`` idea). Widget
messages go out from the renderer thread, so the view stays live while
another cell runs.

One live monitor per job and server in a kernel: a new one (the cell run
again) stops the one before, which keeps its last view, marked not live.

Displayed, a monitor is two outputs: the live widget, and a static snapshot
(:mod:`jobwatch.notebook.snapshot`: HTML and text, no kernel or JavaScript
needed) that a saved notebook, nbconvert, GitHub or a front-end without the
widget manager shows instead. The renderer updates the snapshot's display in
place (by ``display_id``) at most every :data:`SNAPSHOT_INTERVAL` seconds,
and at once when the job ends or the monitor closes; the widget hides it
while it is on a page.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time
import uuid
import weakref
from typing import Any

from jobwatch.client.rest import Client
from jobwatch.contract.answers import LogLine
from jobwatch.extras import install_hint
from jobwatch.notebook.view import TIME_RANGES, MonitorView
from jobwatch.view.follow import HistoryLoaded, JobFollower
from jobwatch.view.state import MAX_SCALAR_POINTS, SCALAR_AXES, MonitorState

__all__ = ["JobMonitor", "MonitorView"]

log = logging.getLogger(__name__)

REFRESH = 0.25
"""Seconds per push to the widgets under sustained load (at most 4 a second on average)."""
BURST = 4
"""Pushes that go at once after a quiet moment before :data:`REFRESH` paces them: one
second's worth, so a worker's progress (once a second) and a few log lines between
two of them are each drawn as they come (worker call to DOM p99 <= 300 ms,
``benchmarks/dom_latency.py``), while 10 updates a second still cost 4 pushes."""
WAIT_INTERVAL = 0.5
"""Seconds between two looks for a job that does not exist yet."""
OFFLINE_AFTER = 10.0
"""Seconds of failed reconnection after which the indicator says offline."""
SCALAR_HISTORY_POINTS = MAX_SCALAR_POINTS
"""Points per training metric loaded when a monitor starts on a job that has them."""
HISTORY_POINTS = 500
"""``maxPoints`` asked for when the time range changes."""
ALL_HISTORY = 30 * 24 * 3600.0
"""What "all" asks the server for: its longest window (30 days)."""
SNAPSHOT_INTERVAL = 5.0
"""Seconds between two updates of the static snapshot while the job runs (each
re-renders a few KB of HTML in the front-end; the job's end updates it at once)."""

_live: dict[tuple[str, str], weakref.ref[JobMonitor]] = {}
"""(server URL, job id) -> the monitor following that job in this process."""
_live_lock = threading.Lock()


class JobMonitor:
    """A live view of one job: progress, time remaining, cost, GPU charts and logs.

    Show it as a cell's value or with :meth:`display`. Outside a Jupyter
    kernel, or without ipywidgets, it prints why and shows a text view instead.

    Parameters
    ----------
    job_id:
        The job to watch. One that does not exist yet is waited for: the
        monitor shows "waiting for job ..." and goes live when it appears.
    url:
        Server URL; default ``$JOBWATCH_URL`` or ``http://127.0.0.1:8765``.
    token:
        Bearer token, if the server needs one.
    time_range:
        Initial chart window: ``"1 min"``, ``"5 min"`` (default), ``"1 h"`` or ``"all"``.
    refresh:
        Seconds per push to the widgets under sustained load (default 0.25: at most
        4 a second on average); a change after a quiet moment is pushed at once.
    wait_interval:
        Seconds between two looks for a job that does not exist yet (default 0.5).
    widgets:
        ``None`` (default): the ipywidgets view where it can show (a Jupyter
        kernel with the notebook extra), else the text view, saying why.
        ``True``: the widgets wherever the packages are installed, also where
        no kernel is detected (a front end that renders ipywidgets itself, or
        a test that reads the widgets). ``False``: the text view.
    x_axis:
        What the training-metrics chart draws values against at first:
        ``"step"`` (default), ``"time"`` (seconds since the start) or ``"cost"``
        (what the job had cost when each value was logged: loss per unit of
        currency); the chart's toggle changes it.

    Raises
    ------
    jobwatch.errors.ConnectionError
        The server cannot be reached.
    ValueError
        ``time_range``, ``refresh``, ``wait_interval`` or ``x_axis`` is not allowed.
    ImportError
        ``widgets=True`` and ipywidgets, anywidget or bqplot is not installed.

    Notes
    -----
    A new monitor of the same job on the same server stops the one before
    (as :meth:`close` does), so running a cell again leaves one live monitor.
    """

    def __init__(
        self,
        job_id: str,
        url: str | None = None,
        *,
        token: str | None = None,
        time_range: str = "5 min",
        refresh: float = REFRESH,
        wait_interval: float = WAIT_INTERVAL,
        widgets: bool | None = None,
        x_axis: str = "step",
    ) -> None:
        if x_axis not in SCALAR_AXES:
            raise ValueError(f"x_axis must be one of {', '.join(SCALAR_AXES)}, got {x_axis!r}")
        self.x_axis = x_axis
        if time_range not in TIME_RANGES:
            raise ValueError(
                f"time_range must be one of {', '.join(TIME_RANGES)}, got {time_range!r}"
            )
        if not 0.01 <= refresh <= 60:
            raise ValueError(f"refresh must be 0.01-60 seconds, got {refresh!r}")
        if not 0.01 <= wait_interval <= 60:
            raise ValueError(f"wait_interval must be 0.01-60 seconds, got {wait_interval!r}")
        self.widgets = use_widgets(widgets, "JobMonitor")  # ImportError: nothing started yet
        self.job_id = job_id
        self.refresh = refresh
        self.wait_interval = wait_interval
        self.client = Client(url, token=token)
        self._follower = JobFollower(  # ConnectionError: nothing started yet
            self.client,
            job_id,
            wait_interval=wait_interval,
            refresh=refresh,
            burst=BURST,
            load_scalars=True,
            scalar_points=SCALAR_HISTORY_POINTS,
            offline_after=OFFLINE_AFTER,
            name="jobwatch-monitor",
        )
        self.state = self._follower.state
        self.waiting = self._follower.waiting
        _replace_live(self)
        self.snapshot_marker = f"jobwatch-snapshot-{uuid.uuid4().hex}"
        self.view: Any = _make_view(self, time_range)
        self.renders = 0
        self._snapshot_lock = threading.Lock()
        self._snapshot_shown: dict[str, str] | None = None  # None: not displayed yet
        self._snapshot_at = -float("inf")
        self._follower.start(_HeldView(self))

    # -- display --------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        """The widget, then its static snapshot as a display of its own (see the module)."""
        from IPython.display import display

        display(self.view)  # type: ignore[no-untyped-call]
        if self.widget is None:  # the text view is static already
            return
        bundle = self.snapshot()
        with self._snapshot_lock:
            self._snapshot_shown = bundle
            self._snapshot_at = time.monotonic()
        display(bundle, raw=True, display_id=self.snapshot_marker)  # type: ignore[no-untyped-call]
        if self.live:
            self._follower.wake.set()  # the next render brings the snapshot up to date

    def display(self) -> None:
        """Display the monitor in the current cell's output."""
        from IPython.display import display

        display(self)  # type: ignore[no-untyped-call]

    def snapshot(self) -> dict[str, str]:
        """The monitor as it shows now, as a static mime bundle (``text/html``, ``text/plain``).

        This is what a page without a kernel or without the widget manager
        shows in the monitor's place (:mod:`jobwatch.notebook.snapshot`).
        """
        from jobwatch.notebook.snapshot import snapshot_bundle

        for _ in range(3):
            try:
                return snapshot_bundle(
                    self.state, self._follower.connection(), marker=self.snapshot_marker
                )
            except RuntimeError:  # the renderer changed a deque while it was read: again
                continue
        return snapshot_bundle(self.state, "connecting", marker=self.snapshot_marker)

    def _update_snapshot(self, state: MonitorState, connection: str) -> None:
        """Update the snapshot's display (renderer thread): when the job has ended or
        the monitor closed, else at most every :data:`SNAPSHOT_INTERVAL` seconds."""
        from IPython.display import update_display

        from jobwatch.notebook.snapshot import snapshot_bundle

        now = time.monotonic()
        final = state.finished or connection in ("closed", "ended")
        with self._snapshot_lock:
            if self._snapshot_shown is None or (
                not final and now - self._snapshot_at < SNAPSHOT_INTERVAL
            ):
                return
        bundle = snapshot_bundle(state, connection, marker=self.snapshot_marker)
        with self._snapshot_lock:
            if bundle == self._snapshot_shown:
                return
            self._snapshot_shown, self._snapshot_at = bundle, now
        update_display(bundle, raw=True, display_id=self.snapshot_marker)  # type: ignore[no-untyped-call]

    @property
    def widget(self) -> Any:
        """The root ipywidgets container (``None`` in the text view)."""
        return getattr(self.view, "widget", None)

    @property
    def live(self) -> bool:
        """Whether the monitor still follows its job (not closed, the job not ended)."""
        return not self._follower.closed and not self._follower.shown_final.is_set()

    # -- life cycle -----------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended and its end is on screen.

        Parameters
        ----------
        timeout:
            Seconds to wait at most; ``None`` waits as long as the job runs.

        Returns
        -------
        bool
            ``True`` once the final view is shown; ``False`` on timeout or
            when the monitor was closed before the job ended.
        """
        return self._follower.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop following the job: both threads end and the socket closes. Idempotent.

        The last view stays on screen, marked "not live (closed)"; to remove it
        too, close :attr:`widget`.
        """
        if self._follower.closed:
            return
        self._follower.close(timeout)
        self.client.close()
        _forget_live(self)

    def __enter__(self) -> JobMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redraw(self) -> None:
        """Render soon: the view changed something of its own (a toggle, a resize)."""
        self._follower.wake.set()

    # -- user actions (kernel thread) ---------------------------------------------

    def _change_range(self, label: str) -> None:
        window = TIME_RANGES[label]
        try:
            rows = self.client.metrics(self.job_id, window or ALL_HISTORY, HISTORY_POINTS)
        except Exception as exc:
            log.warning("jobwatch: could not load %s of metrics: %s", label, exc)
            return
        self._follower.put(HistoryLoaded(rows))

    def _load_older(self, before_id: int | None) -> None:
        from jobwatch.notebook.logview import LogView

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


class _HeldView:
    """The follower's view of a monitor: its widgets' syncs held together while the
    view renders (one batch of messages), and the renders counted."""

    def __init__(self, monitor: JobMonitor) -> None:
        self.monitor = monitor

    def render(self, state: MonitorState, connection: str) -> None:
        view = self.monitor.view
        with contextlib.ExitStack() as stack:
            for part in getattr(view, "parts", list)():
                stack.enter_context(part.hold_sync())
            view.render(state, connection)
        self.monitor.renders += 1
        if self.monitor.widget is not None:
            self.monitor._update_snapshot(state, connection)


def _replace_live(monitor: JobMonitor) -> None:
    """Stop the monitor that follows the same job on the same server, and take its place."""
    key = (monitor.client.url, monitor.job_id)
    with _live_lock:
        ref = _live.get(key)
        _live[key] = weakref.ref(monitor)
    previous = ref() if ref is not None else None
    if previous is not None and previous is not monitor:
        previous.close()


def _forget_live(monitor: JobMonitor) -> None:
    key = (monitor.client.url, monitor.job_id)
    with _live_lock:
        ref = _live.get(key)
        if ref is not None and ref() in (monitor, None):
            del _live[key]


def _lines_before(
    client: Client, job_id: str, before_id: int, room: int
) -> tuple[list[LogLine], bool]:
    """Up to ``room`` (at most 1000) log lines older than ``before_id``, and whether
    still older ones exist."""
    if room <= 0:
        return [], True
    limit = min(room, 1000)
    lines = list(client.logs(job_id, limit=limit, before_id=before_id)["logs"])
    return lines, len(lines) == limit


def _make_view(monitor: JobMonitor, time_range: str) -> Any:
    if monitor.widgets:
        return MonitorView(
            monitor._change_range,
            monitor._load_older,
            time_range,
            monitor._redraw,
            snapshot_marker=monitor.snapshot_marker,
            x_axis=monitor.x_axis,
        )
    from jobwatch.notebook.text import TextView

    return TextView()


def use_widgets(widgets: bool | None, what: str) -> bool:
    """Whether ``what`` (a class name, for the message) shows ipywidgets.

    Parameters
    ----------
    widgets:
        ``True`` or ``False`` as the caller asked; ``None``: where they can
        show, else ``False`` after printing why (no kernel, a package missing).

    Raises
    ------
    ImportError
        ``widgets`` is ``True`` and a package the widgets need is not installed.
    """
    if widgets is None:
        reason = _widgets_unavailable(what)
        if reason is not None:
            print(f"jobwatch: {reason}; showing a text view instead.")
        return reason is None
    if widgets:
        missing = _missing_widget_package()
        if missing is not None:
            raise ImportError(f"{what}(widgets=True): {missing}")
    return widgets


def _widgets_unavailable(what: str = "JobMonitor") -> str | None:
    """Why ``what`` cannot show widgets here (no kernel, a package missing), or ``None``."""
    try:
        from IPython import get_ipython
    except ImportError:
        return f"IPython is not installed ({install_hint('notebook')})"
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return f"{what} needs a Jupyter kernel for its widgets"
    return _missing_widget_package()


def _missing_widget_package() -> str | None:
    """Which package the widgets need is not installed (with how to install it), or ``None``."""
    # Looked up, not imported: the charts import bqplot after the first draw.
    for name in ("anywidget", "bqplot", "ipywidgets"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed ({install_hint('notebook')})"
    return None
