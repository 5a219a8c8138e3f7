"""The text fallback of :class:`~jobwatch.widgets.monitor.JobMonitor`: a status
line when it changes (at most once a second) and each new log line."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any, TextIO

from jobwatch.formatting import format_cost, format_duration
from jobwatch.widgets.state import MonitorState, parse_ts

MIN_INTERVAL = 1.0
"""Seconds between two printed status lines."""


def status_line(state: MonitorState, connection: str) -> str:
    """One line: status, progress, operation, elapsed, time remaining, cost, connection."""
    job = state.job
    return (
        f"[{job.get('status', 'pending')}] {float(job.get('progress') or 0):5.1f}% "
        f"{job.get('currentOperation') or ''} | elapsed {format_duration(state.elapsed)}"
        f" | remaining {format_duration(state.time_remaining)}"
        f" | cost {format_cost(state.cost_so_far, state.currency)}"
        f" (est. {format_cost(state.estimated_total_cost, state.currency)}) | {connection}"
    )


def log_line(line: dict[str, Any]) -> str:
    """``HH:MM:SS [level] message`` in local time."""
    at = parse_ts(line.get("timestamp"))
    shown = datetime.fromtimestamp(at).strftime("%H:%M:%S") if at is not None else "--:--:--"
    return f"{shown} [{line.get('level')}] {line.get('message')}"


class TextView:
    """Prints a monitor to ``stream`` (default standard output)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last = ""
        self._last_at = 0.0

    def render(self, state: MonitorState, connection: str) -> None:
        """Print new log lines, then the status line if it changed."""
        for line in state.take_new_logs():
            print(log_line(line), file=self.stream)
        status = status_line(state, connection)
        now = time.monotonic()
        if status != self._last and (state.finished or now - self._last_at >= MIN_INTERVAL):
            print(status, file=self.stream, flush=True)
            self._last, self._last_at = status, now

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self._last}

    def close(self) -> None:
        """Nothing to release."""
