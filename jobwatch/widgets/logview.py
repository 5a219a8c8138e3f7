"""The log panel of a job monitor: a bounded, filterable list of log lines.

:class:`LogView` keeps its state in synced traits only; the browser side
(``static/logview.js``) draws rows, the level filter, the "Load older lines"
button and the "new lines" pill from them. A log line has the shape of
``GET /api/jobs/{jobId}/logs``: ``{id, level, timestamp, message}``.

Python feeds it with :meth:`LogView.append` (live lines) and
:meth:`LogView.prepend` (older lines fetched on demand). The page asks for
older lines with the custom message ``{"type": "load_older", "before_id": id}``,
which goes to the callbacks registered with :meth:`LogView.on_load_older`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import anywidget
import traitlets

from jobwatch.protocol import LOG_LEVELS

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


class LogView(anywidget.AnyWidget):
    """A scrolling, level-filtered view of a job's log lines.

    Parameters
    ----------
    **kwargs:
        Initial trait values, e.g. ``LogView(max_lines=500, level_filter="error")``.

    Notes
    -----
    Change :attr:`lines` through :meth:`append`, :meth:`prepend` and
    :meth:`clear`: they validate lines, keep them ordered by id and bounded,
    and sync once per call.
    """

    _esm = _STATIC / "logview.js"
    _css = _STATIC / "logview.css"

    lines = traitlets.List(
        traitlets.Dict(),
        help="Log lines held, oldest first, ordered by id: dicts {id (int), level "
        "('info', 'warning' or 'error'), timestamp (ISO 8601 UTC, ms, 'Z'), message (str)}; "
        "at most max_lines of them.",
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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._load_older_callbacks: list[LoadOlderCallback] = []
        self.on_msg(self._on_custom_msg)

    @traitlets.validate("level_filter")
    def _check_level_filter(self, proposal: Mapping[str, Any]) -> str:
        value = proposal["value"]
        if value not in LEVEL_FILTERS:
            raise traitlets.TraitError(
                f"unknown level_filter {value!r}; allowed: {', '.join(LEVEL_FILTERS)}"
            )
        return str(value)

    @traitlets.observe("max_lines")
    def _trim_to_max_lines(self, change: Mapping[str, Any]) -> None:
        if len(self.lines) > change["new"]:
            self.lines = self.lines[-change["new"] :]

    def append(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """Add new lines; keep the newest :attr:`max_lines`.

        Lines whose id is already held are ignored; the result is ordered by
        id. :attr:`lines` is assigned (and synced) at most once per call. When
        the buffer is full, :attr:`has_older` becomes ``False``: there is no
        room to load older lines.

        Parameters
        ----------
        lines:
            Log lines ``{id, level, timestamp, message}`` (extra keys are dropped;
            ``level`` in any case).

        Raises
        ------
        ValueError
            If a line lacks a key or has a value of the wrong type or an unknown level;
            nothing is added then.
        """
        merged = self._merge(lines)
        if merged is None:
            return
        kept = merged[-self.max_lines :]
        with self.hold_sync():
            self.lines = kept
            if len(kept) >= self.max_lines:
                self.has_older = False

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
        merged = self._merge(lines)
        with self.hold_sync():
            if merged is not None:
                self.lines = merged[-self.max_lines :]
            self.has_older = has_older and len(self.lines) < self.max_lines
            self.loading = False

    def clear(self) -> None:
        """Forget every line: no lines, no older ones, total 0, not loading."""
        with self.hold_sync():
            self.lines = []
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

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "load_older":
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

    def _merge(self, lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
        """The held lines plus the new ones, ordered by id; ``None`` if nothing is new."""
        held = {line["id"] for line in self.lines}
        fresh: dict[int, dict[str, Any]] = {}
        for index, line in enumerate(lines):
            checked = _checked_line(index, line)
            if checked["id"] not in held:
                fresh.setdefault(checked["id"], checked)
        if not fresh:
            return None
        return sorted([*self.lines, *fresh.values()], key=lambda line: int(line["id"]))


def _is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int from JSON (``True`` is not a line id)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_line(index: int, line: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of one log line with exactly :data:`LINE_KEYS`, or ``ValueError``."""
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
    return {"id": line_id, "level": level.lower(), "timestamp": timestamp, "message": message}
