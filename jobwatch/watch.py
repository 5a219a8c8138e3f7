"""``jobwatch watch``: a live terminal view of one job, until the job ends.

Pure functions format a :class:`View`; :class:`Watcher` fills the view from
``/monitor`` and the WebSocket stream and draws it. On a terminal the status
block is redrawn in place at most 4 times a second (tqdm's ``mininterval``)
with log lines scrolling above it; piped, a plain status line is printed at
most once a second and only when it changed, without ANSI codes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from jobwatch.errors import ConnectionError

if TYPE_CHECKING:
    from jobwatch.client import Client
    from jobwatch.subscription import Subscription

FINISHED = frozenset({"completed", "failed", "cancelled"})
_COLORS = {"warning": "\x1b[33m", "error": "\x1b[31m"}  # yellow, red; info keeps the default
_RESET = "\x1b[0m"
_ERASE_LINE_ABOVE = "\x1b[1A\x1b[2K"  # cursor up one line, clear it
# Remote text must not move the cursor or recolour the terminal: C0 (but tab
# and newline), DEL and C1 controls become "?".
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclasses.dataclass
class View:
    """What the watcher knows about a job; units as on the wire.

    Attributes
    ----------
    progress:
        Percent done, 0-100.
    elapsed, time_remaining:
        Seconds, or ``None`` while unknown.
    cost_so_far, estimated_total_cost:
        In ``currency``, or ``None`` without a price.
    metrics:
        The latest sample (``gpuUtilization`` %, ``gpuMemoryUsed``/``gpuMemoryTotal``
        MiB, ``gpuTemperature`` °C, ``powerUsage`` W; each may be ``None``), or ``None``.
    connection:
        ``"connecting"``, ``"live"``, ``"reconnecting"`` or ``"ended"``.
    """

    job_id: str
    status: str = "pending"
    progress: float = 0.0
    operation: str | None = None
    elapsed: float | None = None
    time_remaining: float | None = None
    cost_so_far: float | None = None
    estimated_total_cost: float | None = None
    currency: str = "QUBIC"
    metrics: dict[str, Any] | None = None
    connection: str = "connecting"
    result: Any = None
    error: str | None = None


def format_duration(seconds: float | None) -> str:
    """``"45s"``, ``"3m 12s"``, ``"1h 02m"``, ``"2d 03h"``; ``"-"`` for ``None`` or non-finite."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def format_cost(value: float | None, currency: str | None) -> str:
    """``"0.42 QUBIC"``: two decimals (four below 0.01, so a young job's cost is not 0.00); ``"-"`` for ``None``."""
    if value is None or not math.isfinite(value):
        return "-"
    if 0 < abs(value) < 0.01:
        text = f"{value:.4f}" if abs(value) >= 0.0001 else "<0.0001"
    else:
        text = f"{value:,.2f}"
    return f"{text} {currency}" if currency else text


def format_bar(percent: float, width: int = 20) -> str:
    """``"[#########-----------]"``: ``width`` cells (>= 1), filled in proportion to ``percent`` (clamped to 0-100)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width!r}")
    fraction = min(max(percent, 0.0), 100.0) / 100 if math.isfinite(percent) else 0.0
    filled = min(width, int(fraction * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _memory(used: float | None, total: float | None) -> str:
    """Used/total from MiB: in GiB (one decimal) from 1 GiB on, else in MB."""
    if used is None and total is None:
        return "-"
    if (total if total is not None else used or 0) >= 1024:
        scale, digits, unit = 1024.0, 1, "GiB"
    else:
        scale, digits, unit = 1.0, 0, "MB"

    def part(value: float | None) -> str:
        return "-" if value is None else f"{value / scale:.{digits}f}"

    return f"{part(used)}/{part(total)} {unit}"


def format_metrics(metrics: Mapping[str, Any] | None) -> str:
    """``"GPU 87%  mem 17.6/23.4 GiB  temp 72°C  power 350 W"``; ``"-"`` for each missing field."""
    m = metrics or {}

    def value(key: str, unit: str) -> str:
        number = m.get(key)
        return "-" if number is None else f"{number:.0f}{unit}"

    return (
        f"GPU {value('gpuUtilization', '%')}  "
        f"mem {_memory(m.get('gpuMemoryUsed'), m.get('gpuMemoryTotal'))}  "
        f"temp {value('gpuTemperature', '°C')}  power {value('powerUsage', ' W')}"
    )


def _clean(text: str, *, newlines: bool) -> str:
    text = _CONTROL.sub("?", text)
    return text if newlines else text.replace("\n", " ").replace("\t", " ")


def _parse_time(text: Any) -> datetime | None:
    """An ISO 8601 wire timestamp (``...Z``) as an aware datetime, or ``None``."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_log_line(line: Mapping[str, Any], *, color: bool = False) -> str:
    """``"10:31:02 warning loss is nan"``: local time, level (coloured with ``color``), message."""
    when = _parse_time(line.get("timestamp"))
    clock = "--:--:--" if when is None else when.astimezone().strftime("%H:%M:%S")
    level = str(line.get("level", "info"))
    label = f"{level:<7}"
    if color and level in _COLORS:
        label = _COLORS[level] + label + _RESET
    return f"{clock} {label} {_clean(str(line.get('message', '')), newlines=True)}"


def render_status(view: View, *, one_line: bool = False) -> str:
    """The status block: four lines, or one line joined by ``" | "`` with ``one_line``."""
    currency = view.currency
    lines = [
        f"{view.job_id}  {view.status}  {view.connection}",
        f"{format_bar(view.progress, 20 if one_line else 30)} {view.progress:5.1f}%  "
        + _clean(view.operation or "-", newlines=False),
        f"elapsed {format_duration(view.elapsed)}  "
        f"remaining {format_duration(view.time_remaining)}  "
        f"cost {format_cost(view.cost_so_far, currency)} "
        f"(est. total {format_cost(view.estimated_total_cost, currency)})",
        format_metrics(view.metrics),
    ]
    return (" | " if one_line else "\n").join(lines)


def render_final(view: View) -> str:
    """``"job r1 completed after 1m 05s, cost 0.42 QUBIC"``, then ``result: <JSON>`` or ``error: ...``."""
    head = (
        f"job {view.job_id} {view.status} after {format_duration(view.elapsed)}, "
        f"cost {format_cost(view.cost_so_far, view.currency)}"
    )
    if view.status == "completed":
        return f"{head}\nresult: {json.dumps(view.result, ensure_ascii=False)}"
    if view.error is None:
        return head
    return f"{head}\nerror: {_clean(view.error, newlines=True)}"


class Watcher:
    """Show one job live on ``out`` until it ends.

    Parameters
    ----------
    client:
        Where the job is read (``monitor``) and followed (``subscribe``).
    job_id:
        The job to watch.
    out:
        Where to write; default ``sys.stdout``.
    tty:
        Redraw in place with ANSI codes and colour log levels; default ``out.isatty()``.
        Colours are also off when ``$NO_COLOR`` is set.
    log_tail:
        How many of the newest log lines to show first.
    clock:
        Monotonic seconds, for throttling (tests pass a fake).
    """

    def __init__(
        self,
        client: Client,
        job_id: str,
        *,
        out: TextIO | None = None,
        tty: bool | None = None,
        log_tail: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.color = self.tty and "NO_COLOR" not in os.environ
        self.interval = 0.25 if self.tty else 1.0  # seconds between status redraws
        self.log_tail = log_tail
        self.view = View(job_id)
        self._clock = clock
        self._logs: list[str] = []
        self._status = ""  # the status text last drawn
        self._block_lines = 0  # lines of the status block on screen (tty)
        self._drawn_at = -math.inf
        self._elapsed_at = clock()  # when view.elapsed was last set by the server
        self._started_at: datetime | None = None

    def run(self) -> View:
        """Watch until the job ends; returns the final view.

        Raises
        ------
        jobwatch.errors.APIError
            The server refused, e.g. :class:`~jobwatch.errors.JobNotFound`.
        jobwatch.errors.ConnectionError
            ``/monitor`` could not be reached.
        KeyboardInterrupt
            After closing the stream.
        """
        monitor = self.client.monitor(self.view.job_id)
        self._apply_monitor(monitor)
        if self.view.status not in FINISHED:
            self._draw(force=True)
            self._follow(int(monitor["seq"]))
        self.view.connection = "ended"
        self._draw(force=True)
        self._write(render_final(self.view) + "\n")
        return self.view

    def _follow(self, since: int) -> None:
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        stream = self.client.subscribe(
            self.view.job_id, since, on_state=lambda state: events.put(("state", state))
        )
        pump = threading.Thread(target=_pump, args=(stream, events), daemon=True)
        pump.start()
        try:
            while True:
                try:
                    kind, payload = events.get(timeout=self.interval)
                    while self._apply(kind, payload):
                        kind, payload = events.get_nowait()
                except queue.Empty:
                    pass
                if self.view.status in FINISHED:
                    return  # run() draws the end
                self._draw()
        finally:
            stream.close()
            pump.join(timeout=2)

    def _apply(self, kind: str, payload: Any) -> bool:
        """Take one item from the stream thread; ``False`` once there is nothing more to take."""
        if kind == "error":
            raise payload
        if kind == "end" and self.view.status not in FINISHED:
            raise ConnectionError(f"the event stream of {self.view.job_id!r} ended early")
        if kind == "state":
            self.view.connection = payload
        elif kind == "event":
            self._apply_event(payload)
        return kind != "end"

    def _apply_monitor(self, monitor: Mapping[str, Any]) -> None:
        job = monitor["job"]
        self._update(monitor)
        self._update(job)
        self.view.metrics = monitor["metrics"]["latest"]
        self._finish(job)
        self._logs += [format_log_line(x, color=self.color) for x in monitor["logs"]][
            -self.log_tail :
        ]

    def _apply_event(self, event: Mapping[str, Any]) -> None:
        data = event["data"]
        if event["type"] == "JOB_PROGRESS":
            self._update(data)
            if data.get("metrics") is not None:  # an update without a sample keeps the last one
                self.view.metrics = data["metrics"]
        elif event["type"] == "JOB_LOGS":
            self._logs += [format_log_line(x, color=self.color) for x in data["logs"]]
        elif event["type"] == "JOB_COMPLETED":
            self._update(data)
            self._finish(data)

    def _update(self, data: Mapping[str, Any]) -> None:
        """Copy the wire fields present in ``data`` (a job, ``/monitor`` or event data)."""
        view = self.view
        view.status = data.get("status", view.status)
        view.progress = data.get("progress", view.progress)
        view.operation = data.get("currentOperation", view.operation)
        view.time_remaining = data.get("timeRemaining", view.time_remaining)
        view.cost_so_far = data.get("costSoFar", view.cost_so_far)
        view.estimated_total_cost = data.get("estimatedTotalCost", view.estimated_total_cost)
        view.currency = data.get("currency", view.currency)
        if "elapsed" in data:
            view.elapsed = data["elapsed"]
            self._elapsed_at = self._clock()
        if "startedAt" in data:
            self._started_at = _parse_time(data["startedAt"])

    def _finish(self, data: Mapping[str, Any]) -> None:
        """Result, error, and elapsed from start to end, once the job has ended."""
        view = self.view
        if view.status not in FINISHED:
            return
        view.result, view.error = data.get("result"), data.get("error")
        view.time_remaining = 0.0
        view.estimated_total_cost = view.cost_so_far
        if view.status == "completed":
            view.progress = 100.0
        ended = _parse_time(data.get("completedAt"))
        if self._started_at is not None and ended is not None:
            view.elapsed = max(0.0, (ended - self._started_at).total_seconds())

    def _draw(self, *, force: bool = False) -> None:
        """Write the new log lines and the status, when due (``force``: due now)."""
        now = self._clock()
        view = self.view
        if self.tty and view.status == "running" and view.elapsed is not None:
            view = dataclasses.replace(view, elapsed=view.elapsed + now - self._elapsed_at)
        status = render_status(view, one_line=not self.tty)
        due = force or now - self._drawn_at >= self.interval
        changed = status != self._status
        if self.tty:
            if due and (changed or self._logs):
                self._redraw(status)
                self._drawn_at = now
            return
        logs, self._logs = self._logs, []
        text = "".join(line + "\n" for line in logs)
        if due and changed:
            text += status + "\n"
            self._status, self._drawn_at = status, now
        if text:
            self._write(text)

    def _redraw(self, status: str) -> None:
        """Erase the status block, print the new log lines, draw ``status`` below them."""
        # A line wider than the terminal wraps, and the next erase would miss a line.
        columns = shutil.get_terminal_size().columns
        block = [line[: columns - 1] for line in status.splitlines()]
        text = _ERASE_LINE_ABOVE * self._block_lines + "".join(line + "\n" for line in self._logs)
        self._write(text + "\n".join(block) + "\n")
        self._logs, self._status, self._block_lines = [], status, len(block)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()  # piped stdout is block-buffered; a watcher must show lines as they come


def _pump(stream: Subscription, events: queue.Queue[tuple[str, Any]]) -> None:
    """Move the stream's events into ``events`` (run in a thread), then ``("end", None)``."""
    try:
        for event in stream:
            events.put(("event", event))
    except Exception as exc:  # re-raised by the watching thread
        events.put(("error", exc))
    events.put(("end", None))
