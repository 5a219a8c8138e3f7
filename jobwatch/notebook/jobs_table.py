"""JobsTable: every job, live, in a notebook; pick one to watch it below.

A :class:`~jobwatch.view.fleet_follow.FleetFollower` keeps a
:class:`~jobwatch.view.fleet.FleetState` current from the ``subscribe:jobs``
stream (its thread); a renderer thread pushes the rows that changed to the
table at most every ``refresh`` seconds, in one message, however many jobs
report (the :class:`~jobwatch.notebook.monitor.JobMonitor` pattern). Clicking
a row opens that job's :class:`JobMonitor` below the table.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from jobwatch.client.rest import Client
from jobwatch.notebook.monitor import JobMonitor, use_widgets
from jobwatch.view.fleet import FleetState, Totals, check_status
from jobwatch.view.fleet_follow import FleetFollower
from jobwatch.view.fleet_text import render_table

__all__ = ["JobsTable"]

log = logging.getLogger(__name__)

REFRESH = 0.25
"""Seconds between two pushes to the table (at most 4 a second)."""
TOTALS_EVERY = 1.0
"""Seconds between two pushes of the totals while nothing changes (running costs grow)."""


class JobsTable:
    """A live table of jobs: progress, status, time remaining, cost, GPU, last update.

    Show it as a cell's value or with :meth:`display`. Sort by clicking a
    column, filter by status and by name, click a row to open that job's
    :class:`~jobwatch.JobMonitor` below the table. Outside a Jupyter kernel,
    or without ipywidgets, it says why and shows the table as text instead.

    Parameters
    ----------
    url:
        Server URL; default ``$JOBWATCH_URL`` or ``http://127.0.0.1:8765``.
    status:
        Follow only jobs of this status (``pending``, ``running``,
        ``completed``, ``failed``, ``cancelled``); ``None``: all. A job that
        leaves it leaves the table.
    token:
        Bearer token, if the server needs one.
    refresh:
        Seconds between pushes to the table (default 0.25: at most 4 a second).
    widgets:
        As for :class:`~jobwatch.JobMonitor`: ``None`` (default) the widgets
        where they can show, ``True`` wherever they are installed, ``False``
        the text view. The monitor a click opens shows the same kind.

    Raises
    ------
    ValueError
        ``status`` or ``refresh`` is not allowed, or ``url`` is not http(s).
    ImportError
        ``widgets=True`` and a package the widgets need is not installed.
    jobwatch.errors.ConnectionError
        The server cannot be reached.
    jobwatch.errors.APIError
        The server refused (e.g. a wrong token).
    """

    def __init__(
        self,
        url: str | None = None,
        status: str | None = None,
        *,
        token: str | None = None,
        refresh: float = REFRESH,
        widgets: bool | None = None,
    ) -> None:
        check_status(status)
        if not 0.01 <= refresh <= 60:
            raise ValueError(f"refresh must be 0.01-60 seconds, got {refresh!r}")
        self.widgets = use_widgets(widgets, "JobsTable")
        self.status = status
        self.refresh = refresh
        self.client = Client(url, token=token)
        try:
            self.client.list_jobs(limit=1)  # fail here, not in a thread, when it cannot be read
        except Exception:
            self.client.close()
            raise
        self.monitor: JobMonitor | None = None
        self.renders = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.follower = FleetFollower(self.client, status, on_change=self._wake.set)
        self.view: Any = _make_view(self)
        self._renderer = threading.Thread(
            target=self._render_loop, name="jobwatch-jobs-table-render", daemon=True
        )
        self.follower.start()
        self._renderer.start()

    # -- reading -----------------------------------------------------------------------

    @property
    def state(self) -> FleetState:
        """The fleet as received (read it under ``follower.lock``)."""
        return self.follower.state

    @property
    def widget(self) -> Any:
        """The root ipywidgets container (``None`` in the text view)."""
        return getattr(self.view, "widget", None)

    def rows(self) -> list[dict[str, Any]]:
        """The summaries the table shows, in its order (its sort and filters)."""
        sort, descending, status, name = self.view.order()
        with self.follower.lock:
            return self.state.view(sort, descending, status, name)

    def totals(self) -> Totals:
        """What the running jobs cost so far, what was spent today, and counts."""
        with self.follower.lock:
            return self.state.totals()

    # -- display -----------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        """Display the table in the current cell's output."""
        from IPython.display import display

        display(self)  # type: ignore[no-untyped-call]

    def select(self, job_id: str | None) -> JobMonitor | None:
        """Open ``job_id``'s :class:`~jobwatch.JobMonitor` below the table (what a click
        does); ``None`` closes it. Returns the monitor.

        Raises
        ------
        jobwatch.errors.ConnectionError
            The server cannot be reached.
        """
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        try:
            if job_id:
                self.monitor = JobMonitor(
                    job_id, self.client.url, token=self.client.token, widgets=self.widgets
                )
        finally:  # a monitor that could not start leaves the place below the table empty
            self.view.show_monitor(self.monitor, self.monitor.job_id if self.monitor else "")
        return self.monitor

    # -- life cycle --------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop following: the threads end, the socket closes, an open monitor closes.

        The last table stays on screen, marked closed. Idempotent.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self.follower.close(timeout)
        self._renderer.join(timeout)
        if self.monitor is not None:
            self.monitor.close()
        with contextlib.suppress(Exception):  # the kernel may be shutting down
            self._render()
        self.client.close()

    def __enter__(self) -> JobsTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _render_loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(TOTALS_EVERY)
            wait = last + self.refresh - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            self._wake.clear()
            last = time.monotonic()
            try:
                self._render()
            except Exception:
                log.exception("jobwatch: rendering the jobs table failed")

    def _render(self) -> None:
        with self.follower.lock:
            changed = self.state.take_changed()
            rows = {job_id: self.state.rows.get(job_id) for job_id in changed}
            totals = self.state.totals()
        self.view.render(rows, totals, self.follower.connection)
        self.renders += 1


class TableView:
    """The widgets of a :class:`JobsTable`: the table and, below it, the picked job's monitor."""

    def __init__(self, table: JobsTable) -> None:
        import ipywidgets

        from jobwatch.notebook.fleet_table import FleetTableWidget

        self.table = FleetTableWidget()
        self.detail = ipywidgets.VBox()
        self.widget = ipywidgets.VBox([self.table, self.detail])
        self._owner = table
        self.table.observe(self._picked, names="selected")

    def order(self) -> tuple[str, bool, str | None, str]:
        """(sort, descending, status or None, name) as the page shows them."""
        t = self.table
        status = None if t.status_filter == "all" else t.status_filter
        return t.sort_by, t.descending, status, t.name_filter

    def render(
        self, rows: dict[str, dict[str, Any] | None], totals: Totals, connection: str
    ) -> None:
        """Send the changed rows (one message), the totals and the connection state."""
        with self.table.hold_sync():
            self.table.update(rows)
            self.table.totals = totals.as_wire()
            self.table.connection = connection

    def show_monitor(self, monitor: JobMonitor | None, job_id: str) -> None:
        """Put ``monitor``'s widget below the table (nothing for ``None``)."""
        self.detail.children = (
            () if monitor is None or monitor.widget is None else (monitor.widget,)
        )
        if self.table.selected != job_id:
            self.table.selected = job_id

    def _picked(self, change: dict[str, Any]) -> None:
        if change["new"] == (self._owner.monitor.job_id if self._owner.monitor else ""):
            return
        try:
            self._owner.select(change["new"] or None)
        except Exception as exc:  # the server away: the table goes on
            log.warning("jobwatch: could not open job %r: %s", change["new"], exc)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.table.shown()
        return self.widget._repr_mimebundle_(**kwargs)


class TextTableView:
    """Outside a kernel: the table as text when shown (sorted by status, then last update)."""

    def __init__(self, table: JobsTable) -> None:
        self._owner = table

    def order(self) -> tuple[str, bool, str | None, str]:
        """The default order: by status, then newest update first; no filter."""
        return "status", False, None, ""

    def render(
        self, rows: dict[str, dict[str, Any] | None], totals: Totals, connection: str
    ) -> None:
        """Nothing: the text is made when the table is shown."""

    def show_monitor(self, monitor: JobMonitor | None, job_id: str) -> None:
        """Nothing to lay out: the monitor prints itself."""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        with self._owner.follower.lock:
            return {"text/plain": render_table(self._owner.state)}


def _make_view(table: JobsTable) -> Any:
    return TableView(table) if table.widgets else TextTableView(table)
