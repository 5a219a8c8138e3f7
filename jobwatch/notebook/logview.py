"""The log panel of a job monitor: a bounded, filterable list of log lines.

:class:`LogView` holds the lines in Python; the browser side
(``static/logview.js``) draws rows, the level filter, the "Load older lines"
button and the "new lines" pill. A log line comes in with the shape of
``GET /api/jobs/{jobId}/logs`` (``{id, level, timestamp, message}``) and is
held as drawn: ``message`` as a terminal shows it (:func:`jobwatch.view.ansi.plain`)
and, for a line with colours, ``spans`` (:func:`jobwatch.view.ansi.spans_to_wire`).

Only what changed travels. Until the widget is displayed (:meth:`LogView.shown`)
the list is synced whole, as any trait; from then on each change is one
custom message ``{"type": "lines", "revision": n, "add": [lines], "first": id}``
(add these lines, drop those older than ``first``; ``"reset": true`` replaces
everything) and the list trait is changed in place, so ipywidgets never
re-sends it whole: a page that creates the widget later (a reload) gets the
whole list once, with the state. A page that missed a change (a ``revision``
skipped) asks for everything with ``{"type": "sync"}``.

Python feeds it with :meth:`LogView.append` (live lines) and
:meth:`LogView.prepend` (older lines fetched on demand). The page asks for
older lines with the custom message ``{"type": "load_older", "before_id": id}``,
which goes to the callbacks registered with :meth:`LogView.on_load_older`.

A distributed job's view also filters by rank and node (:attr:`LogView.rank_filter`,
:attr:`LogView.node_filter`, set from the page): :meth:`LogView.append` then keeps
only the lines of that rank or node, and the callbacks registered with
:meth:`LogView.on_filter` load that rank's or node's history (``GET /logs?rank=&node=``)
and hand it to :meth:`LogView.show_filtered`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import anywidget
import traitlets

from jobwatch.contract.basics import LOG_LEVELS
from jobwatch.view.ansi import spans, spans_to_wire
from jobwatch.view.log_filter import LogFilter

__all__ = ["DEFAULT_MAX_LINES", "LEVEL_FILTERS", "LogView"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_LINES = 1_000
"""Most log lines a :class:`LogView` keeps unless told otherwise."""
LEVEL_FILTERS = ("all", *LOG_LEVELS)
"""Values of :attr:`LogView.level_filter`: ``"all"`` or one log level."""
LINE_KEYS = ("id", "level", "timestamp", "message")
"""Keys every log line has, as in the ``/logs`` answer."""

_STATIC = Path(__file__).parent / "static"

LoadOlderCallback = Callable[[int], None]
"""Called with the id of the oldest line held."""
FilterCallback = Callable[[LogFilter], None]
"""Called with the rank and node filter the person picked."""


class LogView(anywidget.AnyWidget):
    """A scrolling, level-filtered view of a job's log lines.

    Parameters
    ----------
    **kwargs:
        Initial trait values, e.g. ``LogView(max_lines=500, level_filter="error")``.

    Notes
    -----
    Change :attr:`lines` only through :meth:`append`, :meth:`prepend` and
    :meth:`clear`: they validate lines, keep them ordered by id and bounded,
    and send the page only what changed. They may be called from any thread.
    """

    _esm = _STATIC / "logview.js"
    _css = _STATIC / "logview.css"

    _key = traitlets.Unicode(
        help="Names this widget's store of lines on the page (random hex)."
    ).tag(sync=True)
    lines = traitlets.List(
        traitlets.Dict(),
        help="Log lines held, oldest first, ordered by id: dicts {id (int), level "
        "('info', 'warning' or 'error'), timestamp (ISO 8601 UTC, ms, 'Z'), message (str, "
        "as a terminal shows it), and spans (list of styled runs) for a line with colours}; "
        "at most max_lines of them. Once shown, synced whole only when a page creates the "
        "widget; changes travel as 'lines' messages.",
    ).tag(sync=True)
    revision = traitlets.Int(
        0,
        min=0,
        help="How many changes of lines were sent (count); each 'lines' message carries "
        "its own, so that a page sees when it missed one.",
    ).tag(sync=True)
    max_lines = traitlets.Int(
        DEFAULT_MAX_LINES,
        min=1,
        help="Most lines held (count). append drops the oldest beyond it; prepend stops at it.",
    ).tag(sync=True)
    level_filter = traitlets.Unicode(
        "all",
        help="Lines shown: 'all' or only one level ('info', 'warning', 'error').",
    ).tag(sync=True)
    has_older = traitlets.Bool(
        False,
        help="Whether the server holds lines older than the oldest held and there is room "
        "to load them; shows the 'Load older lines' button.",
    ).tag(sync=True)
    total = traitlets.Int(
        0,
        min=0,
        help="Log lines the job has in all on the server (count), for 'showing N of total'.",
    ).tag(sync=True)
    loading = traitlets.Bool(
        False,
        help="Whether older lines have been asked for and not yet arrived.",
    ).tag(sync=True)
    world_size = traitlets.Int(
        None,
        allow_none=True,
        help="A distributed job's ranks (count), which shows the rank and node filter; "
        "None for a job of one worker.",
    ).tag(sync=True)
    nodes = traitlets.List(
        traitlets.Unicode(),
        help="The distributed job's nodes, offered by the node filter.",
    ).tag(sync=True)
    rank_filter = traitlets.Int(
        None,
        allow_none=True,
        min=0,
        help="Only this rank's lines (0 to world_size - 1); None: every rank's.",
    ).tag(sync=True)
    node_filter = traitlets.Unicode(
        None,
        allow_none=True,
        help="Only this node's lines; None: every node's.",
    ).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        self._lock = threading.RLock()  # the renderer thread appends; the kernel thread reads
        self._shown = False
        self._filter_callbacks: list[FilterCallback] = []
        self._counted_through: int | None = None  # see show_filtered
        super().__init__(_key=uuid.uuid4().hex, **kwargs)
        self._load_older_callbacks: list[LoadOlderCallback] = []
        self.on_msg(self._on_custom_msg)

    def get_state(self, key: str | list[str] | None = None, drop_defaults: bool = False) -> Any:
        """The widget's state for ipywidgets, with a copy of :attr:`lines` taken under the lock."""
        with self._lock:
            state = super().get_state(key, drop_defaults)
            if "lines" in state:
                state["lines"] = list(state["lines"])
            return state

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.shown()
        return super()._repr_mimebundle_(**kwargs)

    def shown(self) -> None:
        """Send changes as messages from now on: the widget is (about to be) on a page.

        Called when the widget is displayed; a container that displays it
        (the monitor) calls it for it.
        """
        self._shown = True

    @traitlets.validate("level_filter")
    def _check_level_filter(self, proposal: Mapping[str, Any]) -> str:
        value = proposal["value"]
        if value not in LEVEL_FILTERS:
            raise traitlets.TraitError(
                f"unknown level_filter {value!r}; allowed: {', '.join(LEVEL_FILTERS)}"
            )
        return str(value)

    @property
    def filter(self) -> LogFilter:
        """The rank and node whose lines are held (both ``None``: every line)."""
        return LogFilter(self.rank_filter, self.node_filter)

    @property
    def counts_itself(self) -> bool:
        """Whether :attr:`total` is the server's count of the lines the filter shows, kept
        up by :meth:`append` (from the first :meth:`show_filtered` on); before, the
        owner sets it."""
        return self._counted_through is not None

    @traitlets.validate("node_filter")
    def _check_node_filter(self, proposal: Mapping[str, Any]) -> str | None:
        value = proposal["value"]
        if value is not None and (not isinstance(value, str) or not value):
            raise traitlets.TraitError(f"node_filter must be a node's name or None, got {value!r}")
        return value

    @traitlets.observe("rank_filter", "node_filter")
    def _filter_changed(self, _change: Mapping[str, Any]) -> None:
        for callback in list(self._filter_callbacks):
            callback(self.filter)

    def on_filter(self, callback: FilterCallback, remove: bool = False) -> None:
        """Register (or, with ``remove=True``, unregister) a handler of a new rank or node
        filter: it gets the :class:`~jobwatch.view.log_filter.LogFilter`, loads the
        newest lines it shows (``GET /logs?rank=&node=``) and hands them to
        :meth:`show_filtered`, perhaps later and from another thread."""
        if remove:
            if callback in self._filter_callbacks:
                self._filter_callbacks.remove(callback)
        else:
            self._filter_callbacks.append(callback)

    def show_filtered(
        self, lines: Iterable[Mapping[str, Any]], *, total: int, has_older: bool
    ) -> None:
        """Hold only ``lines``, the newest of the lines the filter shows, and count from
        the server's ``total`` of them on.

        Live lines appended since the filter changed (they match it: :meth:`append`
        keeps only those) stay, merged by id; the ones newer than ``lines`` are added
        to ``total``, and so is every matching line appended from now on.

        Parameters
        ----------
        lines:
            ``GET /logs`` lines of the filter, the newest page, oldest first.
        total:
            That answer's ``total``: how many lines the filter shows on the server.
        has_older:
            Whether the server holds older ones.

        Raises
        ------
        ValueError
            As :meth:`append`; nothing changes then.
        """
        with self._lock:
            checked = [_checked_line(index, line) for index, line in enumerate(lines)]
            newest = max((line["id"] for line in checked), default=-1)
            live = [line for line in self.lines if line["id"] > newest]
            merged = [_drawn(line) for line in checked if self.filter.matches(line)]
            kept = sorted([*merged, *live], key=lambda line: int(line["id"]))[-self.max_lines :]
            with self.hold_sync():
                self._replace(kept, None)
                self.total = total + len(live)
                self._counted_through = max([newest, *(line["id"] for line in live)])
                self.has_older = has_older and len(kept) < self.max_lines
                self.loading = False

    @traitlets.validate("lines")
    def _check_lines(self, proposal: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Lines set as a whole (the constructor's ``lines=``) are held ordered by id,
        each id once (the first given): :meth:`append` relies on the order."""
        lines = list(proposal["value"])
        for index, line in enumerate(lines):
            if not isinstance(line, Mapping) or not _is_int(line.get("id")):
                raise traitlets.TraitError(f"log line {index} needs an int id, got {line!r:.200}")
        ordered: list[dict[str, Any]] = []
        for line in sorted(lines, key=lambda line: int(line["id"])):  # stable: first kept
            if not ordered or ordered[-1]["id"] != line["id"]:
                ordered.append(line)
        return ordered

    @traitlets.observe("max_lines")
    def _trim_to_max_lines(self, change: Mapping[str, Any]) -> None:
        with self._lock:
            if len(self.lines) > change["new"]:
                self._replace(self.lines[-change["new"] :], [])

    def append(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """Add new lines; keep the newest :attr:`max_lines`.

        Lines whose id is already held are ignored; the result is ordered by
        id. The page gets one message with the lines kept of these. When the
        buffer is full, :attr:`has_older` becomes ``False``: there is no room
        to load older lines.

        Parameters
        ----------
        lines:
            Log lines ``{id, level, timestamp, message}`` (extra keys are dropped;
            ``level`` in any case; ``message`` with terminal escapes and ``\\r``
            frames, drawn as a terminal would).

        Raises
        ------
        ValueError
            If a line lacks a key or has a value of the wrong type or an unknown level;
            nothing is added then.
        """
        with self._lock:
            shown = self.filter
            if shown.active:
                lines = [line for line in lines if shown.matches(line)]
            merged, fresh = self._merge(lines)
            if not fresh:
                return
            with self.hold_sync():
                self._replace(merged[-self.max_lines :], fresh)
                if len(self.lines) >= self.max_lines:
                    self.has_older = False
                if self._counted_through is not None:
                    newer = [line["id"] for line in fresh if line["id"] > self._counted_through]
                    if newer:
                        self.total += len(newer)
                        self._counted_through = max(newer)

    def prepend(self, lines: Iterable[Mapping[str, Any]], has_older: bool) -> None:
        """Add older lines fetched on demand, and say whether still older ones exist.

        The buffer grows up to :attr:`max_lines`; lines that do not fit (the
        oldest) are dropped, and once it is full :attr:`has_older` is ``False``
        so that no more are offered. Clears :attr:`loading`.

        Parameters
        ----------
        lines:
            Log lines ``{id, level, timestamp, message}``, in any order.
        has_older:
            Whether the server holds lines older than these.

        Raises
        ------
        ValueError
            As :meth:`append`.
        """
        with self._lock:
            merged, fresh = self._merge(lines)
            with self.hold_sync():
                if fresh:
                    self._replace(merged[-self.max_lines :], fresh)
                self.has_older = has_older and len(self.lines) < self.max_lines
                self.loading = False

    def clear(self) -> None:
        """Forget every line: no lines, no older ones, total 0, not loading."""
        with self._lock, self.hold_sync():
            self._replace([], None)
            self.has_older = False
            self.total = 0
            self.loading = False

    def on_load_older(self, callback: LoadOlderCallback, remove: bool = False) -> None:
        """Register (or, with ``remove=True``, unregister) a "Load older lines" handler.

        When the button is pressed, :attr:`loading` becomes ``True`` and each
        callback gets the id of the oldest line held (the page offers the
        button only while lines are held and :attr:`has_older` is set). A
        callback fetches lines older than that id and hands them to
        :meth:`prepend` (an empty list if none came back), which clears
        :attr:`loading`; it may do so later, from another thread.
        """
        if remove:
            if callback in self._load_older_callbacks:
                self._load_older_callbacks.remove(callback)
        else:
            self._load_older_callbacks.append(callback)

    def _replace(self, kept: list[dict[str, Any]], fresh: list[dict[str, Any]] | None) -> None:
        """Hold ``kept`` (in place: no state sync) and send the page the change.

        ``fresh``: the new lines among ``kept`` (added at the page); ``None``
        resets the page to ``kept``.
        """
        if not self._shown:
            with self.hold_sync():
                self.lines = kept  # a new list: synced whole; no page follows messages yet
                self.revision += 1
            return
        self.lines[:] = kept
        self.revision += 1
        message: dict[str, Any] = {"type": "lines", "revision": self.revision}
        if fresh is None:
            message.update(reset=True, add=kept)
        else:
            first = kept[0]["id"] if kept else None
            message.update(add=[line for line in fresh if first is None or line["id"] >= first])
            message["first"] = first
        self.send(message)

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "sync":
            with self._lock:
                self._replace(list(self.lines), None)
            return
        if kind != "load_older":
            logger.debug("LogView ignores message %r", content)
            return
        before_id = content.get("before_id")
        if not _is_int(before_id):
            logger.warning("LogView ignores load_older with before_id %r", before_id)
            return
        if not self._load_older_callbacks:
            return
        self.loading = True
        try:
            for callback in list(self._load_older_callbacks):
                callback(before_id)
        except Exception:
            self.loading = False
            raise

    def _merge(
        self, lines: Iterable[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The held lines plus the new ones, ordered by id, and the new ones (drawn)."""
        checked = [_checked_line(index, line) for index, line in enumerate(lines)]
        held_lines: list[dict[str, Any]] = self.lines
        newest = held_lines[-1]["id"] if held_lines else None
        if newest is not None and all(line["id"] > newest for line in checked):
            # live lines come after those held: no need to look at the held ones
            fresh = {line["id"]: line for line in reversed(checked)}
            drawn = [_drawn(fresh[line_id]) for line_id in sorted(fresh)]
            return [*held_lines, *drawn], drawn
        held = {line["id"] for line in held_lines}
        first: dict[int, dict[str, Any]] = {}
        for line in checked:
            if line["id"] not in held:
                first.setdefault(line["id"], line)
        drawn = [_drawn(first[line_id]) for line_id in sorted(first)]
        if not drawn:
            return list(held_lines), []
        return sorted([*held_lines, *drawn], key=lambda line: int(line["id"])), drawn


def _drawn(line: dict[str, Any]) -> dict[str, Any]:
    """A checked line as the page draws it: the message as a terminal shows it, with its
    colours as ``spans`` when it has any."""
    runs = spans(line["message"])
    drawn = {**line, "message": "".join(run.text for run in runs)}
    styled = spans_to_wire(runs)
    if styled is not None:
        drawn["spans"] = styled
    return drawn


def _is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int from JSON (``True`` is not a line id)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_line(index: int, line: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of one log line with exactly :data:`LINE_KEYS` (and a distributed job's
    ``rank`` and ``node`` when it has them), or ``ValueError``."""
    where = f"log line {index}"
    if not isinstance(line, Mapping):
        raise ValueError(f"{where} is a {type(line).__name__}, not a dict")
    missing = [key for key in LINE_KEYS if key not in line]
    if missing:
        raise ValueError(
            f"{where} lacks {', '.join(map(repr, missing))}; each line needs {', '.join(LINE_KEYS)}"
        )
    line_id, level, timestamp, message = (line[key] for key in LINE_KEYS)
    if not _is_int(line_id):
        raise ValueError(f"{where}: id must be an int, not {line_id!r}")
    if not isinstance(level, str) or level.lower() not in LOG_LEVELS:
        raise ValueError(f"{where}: unknown level {level!r}; allowed: {', '.join(LOG_LEVELS)}")
    if not isinstance(timestamp, str) or not isinstance(message, str):
        raise ValueError(f"{where}: timestamp and message must be strings")
    checked = {"id": line_id, "level": level.lower(), "timestamp": timestamp, "message": message}
    rank, node = line.get("rank"), line.get("node")
    if _is_int(rank) and rank >= 0:  # a distributed job's line: which rank (and node) wrote it
        checked["rank"] = rank
        if isinstance(node, str):
            checked["node"] = node
    return checked
