"""``jobwatch watch``: a live terminal view of one job, until the job ends.

:class:`Watcher` follows the job with a :class:`~jobwatch.view.follow.JobFollower`
(``/monitor``, then the WebSocket stream) and hands its state to a view. On a terminal,
:class:`TerminalView` redraws the status block in place at most 4 times a
second (tqdm's ``mininterval``) with log lines scrolling above it; piped,
:class:`PipedView` prints a plain status line at most once a second and only
when it changed, without ANSI codes. The notebook monitor's text fallback is
a :class:`PipedView` too.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from jobwatch.view.budget import budget_suffix
from jobwatch.view.fleet_text import format_workers
from jobwatch.view.follow import JobFollower
from jobwatch.view.formatting import (
    DASH,
    format_bar,
    format_cost,
    format_duration,
    format_log_line,
    format_metrics,
    format_number,
    format_percent,
    format_system,
    has_system,
)
from jobwatch.view.state import MonitorState
from jobwatch.view.terminal_safe import clean

if TYPE_CHECKING:
    from jobwatch.client.rest import Client

_ERASE_LINE_ABOVE = "\x1b[1A\x1b[2K"  # cursor up one line, clear it


def render_status(
    state: MonitorState, *, one_line: bool = False, connection: str | None = None
) -> str:
    """The status block: id, status and connection; progress; time and cost; GPU;
    the newest training metrics when the job logs any.

    Parameters
    ----------
    state:
        The job.
    one_line:
        Join the four lines with ``" | "`` (and a shorter bar), for output
        printed only when it changed: its elapsed time is the last one
        reported, which stands still between updates.
    connection:
        Shown instead of ``state.connection``.
    """
    job = state.job
    progress = float(job.get("progress") or 0.0)
    elapsed = state.reported_elapsed if one_line else state.elapsed
    currency = clean(state.currency, single_line=True)
    connection = connection or state.connection
    if connection == "waiting":
        return f"{job_title(job)}  waiting for job {clean(job.get('id', ''), single_line=True)} to be created"
    status = clean(job.get("status") or "pending", single_line=True)
    lines = [
        f"{job_title(job)}  {status}  {connection}",
        f"{format_bar(progress, 20 if one_line else 30)} {format_percent(progress, 5)}  "
        + clean(job.get("currentOperation") or DASH, single_line=True),
        f"elapsed {format_duration(elapsed)}  "
        f"remaining {format_duration(state.time_remaining)}  "
        f"cost {format_cost(state.cost_so_far, currency)} "
        f"(est. total {format_cost(state.estimated_total_cost, currency)})" + budget_suffix(state),
        format_metrics(state.samples[-1].flat if state.samples else None),
    ]
    if state.samples and has_system(state.samples[-1].flat):
        lines.append(format_system(state.samples[-1].flat))
    if state.latest_scalars:
        lines.append(format_scalars(state))
    if state.stalled:
        lines[0] += "  STALLED"
    workers = format_workers(job)
    if workers:
        lines[0] += f"  {workers}"
    if state.alerts:
        alert = state.alerts[-1]
        text = f": {alert['text']}" if alert.get("text") else ""
        lines.append(
            clean(f"alert [{alert.get('level')}] {alert['title']}{text}", single_line=True)
        )
    return (" | " if one_line else "\n").join(lines)


def format_scalars(state: MonitorState, most: int = 6) -> str:
    """``"loss 0.231  accuracy 0.978  (step 120)"``: the newest value of the job's
    first ``most`` training metrics by name, and the newest step among them."""
    shown, hidden, step = state.newest_scalars(most)
    parts = [f"{clean(n, single_line=True)} {format_number(value)}" for n, value in shown]
    more = f"  +{hidden} more" if hidden else ""
    return "  ".join(parts) + more + f"  (step {step})"


def job_title(job: dict[str, Any]) -> str:
    """``"resnet (r1)"``: the name and the id once each; the id alone when there is no
    other name."""
    job_id = clean(job.get("id", ""), single_line=True)
    name = job.get("name")
    if not name or name == job.get("id"):
        return job_id
    return f"{clean(name, single_line=True)} ({job_id})"


def render_final(state: MonitorState) -> str:
    """``"job r1 completed after 1m 05s, cost 0.420 QUBIC"``, then ``result: <JSON>`` (when
    there is a result) or ``error: ...``."""
    job = state.job
    head = (
        f"job {job_title(job)} {clean(job.get('status'), single_line=True)} after "
        f"{format_duration(state.elapsed)}, "
        f"cost {format_cost(state.cost_so_far, clean(state.currency, single_line=True))}"
    )
    if job.get("status") == "completed":
        if job.get("result") is None:
            return head
        return f"{head}\nresult: {clean(json.dumps(job.get('result'), ensure_ascii=False))}"
    if job.get("error") is None:
        return head
    return f"{head}\nerror: {clean(job['error'])}"


class _StatusView:
    """What both views share: ``out``, and a status shown at most every ``interval`` seconds.

    Parameters
    ----------
    out:
        Where to write.
    interval:
        Seconds between two statuses shown (at once when the job has finished).
    clock:
        Monotonic seconds (tests pass a fake).
    """

    def __init__(self, out: TextIO, *, interval: float, clock: Callable[[], float]) -> None:
        self.out = out
        self.interval = interval
        self._clock = clock
        self._last = ""  # the status last shown
        self._shown_at = -math.inf

    def _due(self, state: MonitorState, now: float) -> bool:
        return state.finished or now - self._shown_at >= self.interval


class PipedView(_StatusView):
    """Plain lines for output that is not a terminal: no ANSI codes, nothing redrawn.

    Each new log line as it comes; the one-line status when it changed, at
    most every ``interval`` seconds (default 1).
    """

    def __init__(
        self, out: TextIO, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(out, interval=interval, clock=clock)

    def render(self, state: MonitorState, connection: str | None = None) -> None:
        """Print ``state``'s new log lines, then its status line if it is due and changed.

        ``connection`` is shown instead of ``state.connection``.
        """
        text = "".join(format_log_line(line) + "\n" for line in state.take_new_logs())
        status = render_status(state, one_line=True, connection=connection)
        now = self._clock()
        if status != self._last and self._due(state, now):
            text += status + "\n"
            self._last, self._shown_at = status, now
        if text:
            _write(self.out, text)


class TerminalView(_StatusView):
    """A terminal: log lines scroll up while the status block below them is redrawn in place.

    Redrawn at most every ``interval`` seconds (default 0.25); ``color``
    colours warning and error log levels.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        color: bool,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(out, interval=interval, clock=clock)
        self.color = color
        self._block_lines = 0  # lines of the status block on screen

    def render(self, state: MonitorState, connection: str | None = None) -> None:
        """Erase the status block, print the new log lines, draw the status below them; when due.

        ``connection`` is shown instead of ``state.connection``.
        """
        now = self._clock()
        status = render_status(state, connection=connection)
        if not self._due(state, now) or (status == self._last and not state.new_logs):
            return
        logs = [format_log_line(line, color=self.color) for line in state.take_new_logs()]
        # A line wider than the terminal wraps, and the next erase would miss a line.
        columns = shutil.get_terminal_size().columns
        block = [line[: columns - 1] for line in status.splitlines()]
        text = _ERASE_LINE_ABOVE * self._block_lines + "".join(line + "\n" for line in logs)
        _write(self.out, text + "\n".join(block) + "\n")
        self._last, self._block_lines, self._shown_at = status, len(block), now


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
    wait:
        Wait for a job that does not exist yet (saying so) instead of raising
        :class:`~jobwatch.errors.JobNotFound`.
    wait_interval:
        Seconds between two looks for that job.
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
        wait: bool = False,
        wait_interval: float = 0.5,
    ) -> None:
        self.client = client
        self.wait = wait
        self.wait_interval = wait_interval
        self.job_id = job_id
        out = out if out is not None else sys.stdout
        tty = out.isatty() if tty is None else tty
        self.view: TerminalView | PipedView = (
            TerminalView(out, color="NO_COLOR" not in os.environ, clock=clock)
            if tty
            else PipedView(out, clock=clock)
        )
        self.log_tail = log_tail
        self.state = MonitorState()

    def run(self) -> MonitorState:
        """Watch until the job ends; returns its final state.

        Raises
        ------
        jobwatch.errors.APIError
            The server refused, e.g. :class:`~jobwatch.errors.JobNotFound` (not
            with ``wait``).
        jobwatch.errors.ConnectionError
            ``/monitor`` could not be reached, or the stream ended before the job.
        KeyboardInterrupt
            After closing the stream.
        """
        follower = JobFollower(
            self.client,
            self.job_id,
            wait=self.wait,
            wait_interval=self.wait_interval,
            tick=self.view.interval,
            log_tail=self.log_tail,
            raise_errors=True,
            name="jobwatch-watch",
        )
        self.state = follower.state
        follower.run(self.view)
        _write(self.view.out, render_final(self.state) + "\n")
        return self.state


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()  # piped stdout is block-buffered; a watcher must show lines as they come
