"""The table of a :class:`~jobwatch.notebook.jobs_table.JobsTable`: one row per job.

:class:`FleetTableWidget` holds the rows (job summaries, keyed by id) in
Python; the browser side (``static/jobstable.js``) draws them, sorted and
filtered by the synced traits with the rules of :mod:`jobwatch.view.fleet`, and
sets :attr:`FleetTableWidget.selected` when a row is clicked.

Only what changed travels, as in :mod:`jobwatch.notebook.logview`: until the
widget is displayed the row list is synced whole; from then on each render is
one custom message ``{"type": "rows", "revision": n, "rows": [patch],
"remove": [id]}`` where a patch is a new row whole, or ``id`` and the fields
that changed; ``"reset": true`` replaces everything. A page that missed a
revision asks for everything with ``{"type": "sync"}``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from jobwatch.contract.basics import JOB_STATUSES
from jobwatch.view.fleet import SORT_KEYS

__all__ = ["STATUS_FILTERS", "FleetTableWidget"]

logger = logging.getLogger(__name__)

STATUS_FILTERS = ("all", *JOB_STATUSES)
"""Values of :attr:`FleetTableWidget.status_filter`: ``"all"`` or one job status."""
_STATIC = Path(__file__).parent / "static"


class FleetTableWidget(anywidget.AnyWidget):
    """A sortable, filterable table of job summaries; change rows with :meth:`update`.

    Parameters
    ----------
    **kwargs:
        Initial trait values, e.g. ``FleetTableWidget(sort_by="costSoFar", descending=True)``.
    """

    _esm = _STATIC / "jobstable.js"
    _css = _STATIC / "jobstable.css"

    _key = traitlets.Unicode(
        help="Names this widget's store of rows on the page (random hex)."
    ).tag(sync=True)
    rows = traitlets.List(
        traitlets.Dict(),
        help="Job summaries held, as on the wire (docs/api.md 'The fleet'). Once shown, synced "
        "whole only when a page creates the widget; changes travel as 'rows' messages.",
    ).tag(sync=True)
    revision = traitlets.Int(
        0, min=0, help="How many changes of rows were sent (count), to see a missed one."
    ).tag(sync=True)
    sort_by = traitlets.Unicode(
        "status", help=f"Column the rows are sorted by: one of {', '.join(SORT_KEYS)}."
    ).tag(sync=True)
    descending = traitlets.Bool(
        False, help="Reverse the order (rows without a value stay last)."
    ).tag(sync=True)
    status_filter = traitlets.Unicode("all", help=f"Rows shown: {', '.join(STATUS_FILTERS)}.").tag(
        sync=True
    )
    name_filter = traitlets.Unicode(
        "", help="Only rows whose name or id contains this text, ignoring case."
    ).tag(sync=True)
    selected = traitlets.Unicode(
        "", help="The id of the job picked (clicked), or '' for none."
    ).tag(sync=True)
    totals = traitlets.Dict(
        help="{running: {currency: cost of the running jobs}, today: {currency: spent today}, "
        "counts: {status: jobs}, stalled: jobs}."
    ).tag(sync=True)
    connection = traitlets.Unicode(
        "connecting", help="'connecting', 'live', 'reconnecting', 'offline' or 'closed'."
    ).tag(sync=True)
    max_rows = traitlets.Int(
        1000, min=1, help="Most rows drawn (count); the rest are counted, to filter down."
    ).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        self._shown = False
        self._by_id: dict[str, dict[str, Any]] = {}
        super().__init__(_key=uuid.uuid4().hex, **kwargs)
        self.on_msg(self._on_custom_msg)

    def get_state(self, key: str | list[str] | None = None, drop_defaults: bool = False) -> Any:
        """The widget's state for ipywidgets, with a copy of :attr:`rows` taken under the lock."""
        with self._lock:
            state = super().get_state(key, drop_defaults)
            if "rows" in state:
                state["rows"] = list(state["rows"])
            return state

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.shown()
        return super()._repr_mimebundle_(**kwargs)

    def shown(self) -> None:
        """Send changes as messages from now on (the widget is, or is about to be, on a page)."""
        self._shown = True

    @traitlets.validate("sort_by")
    def _check_sort_by(self, proposal: Mapping[str, Any]) -> str:
        return _one_of("sort_by", proposal["value"], SORT_KEYS)

    @traitlets.validate("status_filter")
    def _check_status_filter(self, proposal: Mapping[str, Any]) -> str:
        return _one_of("status_filter", proposal["value"], STATUS_FILTERS)

    def update(self, changes: Mapping[str, Mapping[str, Any] | None]) -> int:
        """Apply changed rows: ``{job id: its summary, or None to remove it}``.

        Returns
        -------
        int
            How many rows changed (the page gets one message for all of them,
            nothing when none did).
        """
        with self._lock:
            patches: list[dict[str, Any]] = []
            removed: list[str] = []
            for job_id, row in changes.items():
                held = self._by_id.get(job_id)
                if row is None:
                    if self._by_id.pop(job_id, None) is not None:
                        removed.append(job_id)
                    continue
                if held == row:
                    continue
                self._by_id[job_id] = dict(row)
                patches.append(_patch(held, row))
            if patches or removed:
                self._send_rows(patches, removed, reset=False)
            return len(patches) + len(removed)

    def _send_rows(self, patches: list[dict[str, Any]], removed: list[str], *, reset: bool) -> None:
        rows = list(self._by_id.values())
        if not self._shown:
            with self.hold_sync():
                self.rows = rows  # a new list: synced whole; no page follows messages yet
                self.revision += 1
            return
        self.rows[:] = rows  # in place: ipywidgets sees no change, nothing is synced whole
        self.revision += 1
        message: dict[str, Any] = {"type": "rows", "revision": self.revision, "rows": patches}
        if removed:
            message["remove"] = removed
        if reset:
            message["reset"] = True
        self.send(message)

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "sync":
            with self._lock:
                self._send_rows(list(self._by_id.values()), [], reset=True)
        else:
            logger.debug("FleetTableWidget ignores message %r", content)


def _patch(held: Mapping[str, Any] | None, row: Mapping[str, Any]) -> dict[str, Any]:
    """A new row whole; a known one as its id and the fields whose value changed."""
    if held is None:
        return dict(row)
    patch = {key: value for key, value in row.items() if held.get(key) != value or key not in held}
    patch["id"] = row["id"]
    return patch


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise traitlets.TraitError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
    return str(value)
