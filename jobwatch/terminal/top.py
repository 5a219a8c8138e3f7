"""``jobwatch top``: every job live in a terminal, htop style, drawn with Textual.

A :class:`~jobwatch.view.fleet_follow.FleetFollower` keeps a
:class:`~jobwatch.view.fleet.FleetState` current from the ``subscribe:jobs``
stream; the app redraws the table from it at most every ``refresh`` seconds
(and once a second for what moves by itself: running costs, "updated ... ago").
Keys: ``s`` next sort column, ``r`` reverse, ``f`` next status filter, ``/``
filter by name, ``escape`` clear the filters, ``enter`` watch the selected
job (``jobwatch watch`` in the terminal, back to the table when it ends),
``q`` quit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input, Static

from jobwatch.client.rest import Client
from jobwatch.contract.basics import JOB_STATUSES
from jobwatch.view.budget import BUDGET_STYLES, OVER
from jobwatch.view.fleet import SORT_KEYS
from jobwatch.view.fleet_follow import FleetFollower
from jobwatch.view.fleet_text import COLUMNS, cells, format_totals, row_budget_state

__all__ = ["TopApp", "watch_in_terminal"]

REFRESH = 0.25
"""Seconds between two redraws when jobs change (at most 4 a second)."""
REDRAW_EVERY = 1.0
"""Seconds between two redraws while nothing changes (costs and ages move)."""
STATUS_FILTERS: tuple[str | None, ...] = (None, *JOB_STATUSES)
COST_COLUMN = [key for key, _ in COLUMNS].index("costSoFar")
BUDGET_COLUMN = [key for key, _ in COLUMNS].index("estimatedTotalCost")
STATUS_STYLE = {
    "running": "bold blue",
    "pending": "dim",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}
"""status -> Rich style of its cell (the colours of the notebook's badges)."""


def watch_in_terminal(client: Client, job_id: str) -> None:
    """Run ``jobwatch watch JOB`` on this terminal until the job ends or Ctrl-C, then
    wait for Enter. The token goes in the child's environment, never on its command line."""
    env = {**os.environ, "JOBWATCH_TOKEN": client.token or ""}
    command = [sys.executable, "-m", "jobwatch", "watch", job_id, "--url", client.url]
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the watch (the child's too)
        subprocess.run(command, env=env, check=False)
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        input("\n-- press Enter to go back to jobwatch top --")


class TopApp(App[int]):
    """The fleet table in a terminal.

    Parameters
    ----------
    client:
        The server to follow.
    status:
        Follow only jobs of this status (``None``: all).
    refresh:
        Seconds between two redraws when jobs change.
    open_watch:
        Called with the client and the selected job's id, the terminal handed
        over (default :func:`watch_in_terminal`).

    The app exits with 0 (``q``), or 3 when the stream stopped on an error
    (kept in :attr:`error`).
    """

    TITLE = "jobwatch top"
    CSS = """
    #totals { height: 1; padding: 0 1; background: $boost; }
    #order { height: 1; padding: 0 1; color: $text-muted; }
    #name-filter { display: none; }
    #name-filter.visible { display: block; }
    DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("f", "next_status", "Status"),
        Binding("slash", "filter_name", "Filter"),
        Binding("escape", "clear_filters", "Clear", show=False),
    ]

    def __init__(
        self,
        client: Client,
        status: str | None = None,
        *,
        refresh: float = REFRESH,
        open_watch: Callable[[Client, str], None] = watch_in_terminal,
    ) -> None:
        super().__init__()
        self.client = client
        self.refresh_interval = refresh
        self.open_watch = open_watch
        self.sort = "status"
        self.descending = False
        self.status_filter: str | None = None
        self.name_filter = ""
        self.error: Exception | None = None
        self.totals_line = ""
        self.follower = FleetFollower(client, status)
        self._order: list[str] = []
        self._drawn_at = 0.0
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Static(id="totals")
        yield Static(id="order")
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
        for key, header in COLUMNS:
            table.add_column(header, key=key)
        yield table
        yield Input(placeholder="filter by name or id, Enter to apply", id="name-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.follower.start()
        self.set_interval(self.refresh_interval, self.redraw)
        self.redraw()

    def on_unmount(self) -> None:
        self.follower.close()

    @property
    def table(self) -> DataTable[Any]:
        """The table of jobs."""
        return self.query_one(DataTable)

    def rows(self) -> list[dict[str, Any]]:
        """The summaries shown, in order (this app's sort and filters)."""
        with self.follower.lock:
            return self.follower.state.view(
                self.sort, self.descending, self.status_filter, self.name_filter
            )

    def redraw(self) -> None:
        """Redraw the table when jobs changed, the order did, or a second passed."""
        follower = self.follower
        if follower.error is not None:
            self.error = follower.error
            self.exit(3)
            return
        with follower.lock:
            changed = follower.state.take_changed()
            rows = follower.state.view(
                self.sort, self.descending, self.status_filter, self.name_filter
            )
            costs = [follower.state.cost(row["id"]) for row in rows]
            totals = follower.state.totals()
        order = [row["id"] for row in rows]
        now = time.time()
        if not (
            changed or self._dirty or order != self._order or now - self._drawn_at >= REDRAW_EVERY
        ):
            return
        self._dirty, self._order, self._drawn_at = False, order, now
        self.totals_line = format_totals(totals, follower.connection)
        self.query_one("#totals", Static).update(self.totals_line)
        self.query_one("#order", Static).update(self._describe_order(len(rows)))
        table = self.table
        selected = self.selected_job()
        table.clear()
        for row, cost in zip(rows, costs, strict=True):
            text = list(cells(row, cost, now))
            styled = [Text(cell) for cell in text]
            styled[1].stylize(STATUS_STYLE.get(str(row.get("status")), ""))
            over = row_budget_state(row, cost)
            if over in BUDGET_STYLES:  # the cost once spent; the estimate while projected over
                column = COST_COLUMN if over == OVER else BUDGET_COLUMN
                styled[column].stylize(BUDGET_STYLES[over])
                if over == OVER:
                    styled[BUDGET_COLUMN].stylize(BUDGET_STYLES[over])
            table.add_row(*styled, key=row["id"])
        if selected in order:
            table.move_cursor(row=order.index(selected), animate=False)

    def selected_job(self) -> str | None:
        """The id of the job under the cursor, or ``None``."""
        table = self.table
        if not table.row_count:
            return None
        index = min(table.cursor_row, table.row_count - 1)
        return self._order[index] if index < len(self._order) else None

    def _describe_order(self, shown: int) -> str:
        arrow = "descending" if self.descending else "ascending"
        parts = [f"sort: {self.sort} {arrow}", f"status: {self.status_filter or 'all'}"]
        if self.name_filter:
            parts.append(f"name: {self.name_filter!r}")
        parts.append(f"{shown} shown")
        return " | ".join(parts)

    # -- keys ------------------------------------------------------------------------------

    def action_next_sort(self) -> None:
        """Sort by the next column (``s``)."""
        self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        self._changed_order()

    def action_reverse(self) -> None:
        """Reverse the order (``r``)."""
        self.descending = not self.descending
        self._changed_order()

    def action_next_status(self) -> None:
        """Show only the next status: all, then each status in turn (``f``)."""
        index = STATUS_FILTERS.index(self.status_filter)
        self.status_filter = STATUS_FILTERS[(index + 1) % len(STATUS_FILTERS)]
        self._changed_order()

    def action_filter_name(self) -> None:
        """Ask for a name filter (``/``)."""
        field = self.query_one("#name-filter", Input)
        field.value = self.name_filter
        field.add_class("visible")
        field.focus()

    def action_clear_filters(self) -> None:
        """Show every job again (``escape``)."""
        self.status_filter, self.name_filter = None, ""
        field = self.query_one("#name-filter", Input)
        field.remove_class("visible")
        self.table.focus()
        self._changed_order()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply the name filter typed."""
        self.name_filter = event.value.strip()
        event.input.remove_class("visible")
        self.table.focus()
        self._changed_order()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row: hand the terminal to ``jobwatch watch`` for that job."""
        job_id = event.row_key.value
        if job_id is None:
            return
        if self.is_headless:  # no terminal to hand over (tests)
            self.open_watch(self.client, job_id)
        else:
            try:
                with self.suspend():
                    self.open_watch(self.client, job_id)
            except SuspendNotSupported:
                self.notify(
                    "this terminal cannot be handed over to jobwatch watch", severity="error"
                )
        self._changed_order()

    def _changed_order(self) -> None:
        self._dirty = True
        self.redraw()
