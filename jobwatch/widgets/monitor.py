"""JobMonitor: one job, live in a notebook.

It starts from ``/monitor``, then follows the WebSocket with that snapshot's
``seq`` (nothing between the two is missed; reconnects resume by themselves).
A job that does not exist yet is waited for: the monitor says so and asks
``/monitor`` again every ``wait_interval`` seconds until it appears.
Two threads: a reader puts stream events in a queue; a renderer applies them
to :class:`~jobwatch.state.MonitorState` and pushes the result to the
widgets at most every ``refresh`` seconds, in one ``hold_sync`` batch, however
fast workers report (tqdm's ``mininterval`` idea). Widget messages go out
from the renderer thread, so the view stays live while another cell runs.

One live monitor per job and server in a kernel: a new one (the cell run
again) stops the one before, which keeps its last view, marked not live.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from typing import Any

from jobwatch._extras import install_hint
from jobwatch.client import Client
from jobwatch.errors import JobNotFound
from jobwatch.state import MAX_SCALAR_POINTS, MonitorState
from jobwatch.subscription import Subscription
from jobwatch.widgets.view import TIME_RANGES, MonitorView

__all__ = ["JobMonitor", "MonitorView"]

log = logging.getLogger(__name__)

REFRESH = 0.25
"""Seconds between two pushes to the widgets (at most 4 a second)."""
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
        Seconds between pushes to the widgets (default 0.25: at most 4 a second).
    wait_interval:
        Seconds between two looks for a job that does not exist yet (default 0.5).

    Raises
    ------
    jobwatch.errors.ConnectionError
        The server cannot be reached.
    ValueError
        ``time_range``, ``refresh`` or ``wait_interval`` is not allowed.

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
    ) -> None:
        if time_range not in TIME_RANGES:
            raise ValueError(
                f"time_range must be one of {', '.join(TIME_RANGES)}, got {time_range!r}"
            )
        if not 0.01 <= refresh <= 60:
            raise ValueError(f"refresh must be 0.01-60 seconds, got {refresh!r}")
        if not 0.01 <= wait_interval <= 60:
            raise ValueError(f"wait_interval must be 0.01-60 seconds, got {wait_interval!r}")
        self.job_id = job_id
        self.refresh = refresh
        self.wait_interval = wait_interval
        self.client = Client(url, token=token)
        self.state = MonitorState()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Any]] = []
        self._wake = threading.Event()
        self.waiting = not self._load_snapshot()  # ConnectionError: nothing started yet
        self._since = self.state.seq  # where the stream starts: the snapshot's seq
        _replace_live(self)
        self.view: Any = _make_view(self, time_range)
        self._stop = threading.Event()
        self._shown_final = threading.Event()
        self._reconnecting_since: float | None = None
        self._subscription: Subscription | None = None
        self.renders = 0
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

    @property
    def live(self) -> bool:
        """Whether the monitor still follows its job (not closed, the job not ended)."""
        return not self._stop.is_set() and not self._shown_final.is_set()

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
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._shown_final.is_set():
            if self._stop.is_set():
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._shown_final.wait(0.1 if left is None else min(0.1, left))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop following the job: both threads end and the socket closes. Idempotent.

        The last view stays on screen, marked "not live (closed)"; to remove it
        too, close :attr:`widget`.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        with self._lock:
            subscription = self._subscription
        if subscription is not None:
            subscription.close()
        self._wake.set()
        self._reader.join(timeout)
        self._renderer.join(timeout)
        if not self.state.finished:
            self._enqueue("connection", "closed")
        with contextlib.suppress(Exception):  # the kernel may be shutting down
            self._render()
        self.client.close()
        _forget_live(self)

    def __enter__(self) -> JobMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads ----------------------------------------------------------------

    def _load_snapshot(self) -> bool:
        """Load ``/monitor``; ``False`` while the job does not exist."""
        try:
            snapshot = self.client.monitor(self.job_id)
        except JobNotFound:
            if not self.state.job:
                self.state.job = {"id": self.job_id}
                self.state.set_connection("waiting")
            return False
        self.state.load_snapshot(snapshot)
        return True

    def _on_state(self, state: str) -> None:
        """The subscription's state; each time it goes live, the training metrics
        posted before (a resumed stream replays only the newest progress event, so
        points carried by earlier ones come from ``/scalars``)."""
        self._enqueue("connection", state)
        if state == "live":
            self._load_scalars()

    def _load_scalars(self) -> None:
        """The job's training-metric history (``/scalars``), merged into the state."""
        try:
            series = self.client.scalars(self.job_id, max_points=SCALAR_HISTORY_POINTS)
        except Exception as exc:
            log.warning("jobwatch: could not load the training metrics of %r: %s", self.job_id, exc)
            return
        self._enqueue("scalars", series)

    def _enqueue(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._pending.append((kind, payload))
        self._wake.set()

    def _read(self) -> None:
        try:
            if self.waiting and not self._wait_for_job():
                return
            with self._lock:
                if self._stop.is_set():
                    return
                self._subscription = Subscription(
                    self.client.ws_url,
                    self.job_id,
                    since=self._since,
                    token=self.client.token,
                    on_state=self._on_state,
                )
            for event in self._subscription:
                self._enqueue("event", event)
        except Exception as exc:  # a dead stream must not kill the kernel's thread silently
            log.warning("jobwatch: the stream of job %r stopped: %s", self.job_id, exc)
            self._enqueue("connection", "offline")

    def _wait_for_job(self) -> bool:
        """Look for the job every ``wait_interval`` seconds; ``False`` if closed first."""
        while not self._stop.wait(self.wait_interval):
            try:
                snapshot = self.client.monitor(self.job_id)
            except JobNotFound:
                continue
            except Exception as exc:  # the server away for a moment: keep waiting
                log.debug("jobwatch: looking for job %r: %s", self.job_id, exc)
                continue
            self._since = int(snapshot.get("seq", 0))
            self._enqueue("snapshot", snapshot)
            return True
        return False

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
                self._shown_final.set()
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
            elif kind == "scalars":
                self.state.merge_scalars(payload)
            elif kind == "snapshot":
                self.state.load_snapshot(payload)
                self.state.set_connection("connecting")
        with contextlib.ExitStack() as stack:
            for part in getattr(self.view, "parts", list)():
                stack.enter_context(part.hold_sync())
            self.view.render(self.state, self._connection())
        self.renders += 1

    def _connection(self) -> str:
        state = self.state.connection
        if self.state.finished and state in ("closed", "connecting"):
            return "ended"
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
        return MonitorView(
            monitor._change_range, monitor._load_older, time_range, monitor._wake.set
        )
    from jobwatch.widgets.text import TextView

    print(f"jobwatch: {reason}; showing a text view instead.")
    return TextView()


def _widgets_unavailable(what: str = "JobMonitor") -> str | None:
    """Why ``what`` cannot show widgets here (no kernel, a package missing), or ``None``."""
    try:
        from IPython import get_ipython
    except ImportError:
        return f"IPython is not installed ({install_hint('notebook')})"
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return f"{what} needs a Jupyter kernel for its widgets"
    try:
        import anywidget  # noqa: F401
        import bqplot  # noqa: F401
        import ipywidgets  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed ({install_hint('notebook')})"
    return None
