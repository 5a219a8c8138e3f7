"""The text fallback of :class:`~jobwatch.notebook.monitor.JobMonitor`: the
output of ``jobwatch watch`` when piped, on standard output."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from jobwatch.terminal.watch import PipedView


class TextView(PipedView):
    """Prints a monitor to ``stream`` (default standard output).

    Each new log line, and the status line when it changed, at most once a
    second; shown as a cell's value, the status line last printed.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stdout)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self._last}

    def close(self) -> None:
        """Nothing to release."""
