"""Whether the server is busy, and how often it then asks each worker to report.

Busy: this server process took more than ``above`` progress updates a second,
estimated over the last second from two one-second buckets (the sliding-window
counter of rate limiters: the previous bucket weighted by how much of it is
still inside the window). While busy, every progress answer carries
``minInterval`` = ``interval`` seconds, which the Python ``Reporter`` obeys
(docs/api.md "Progress"): 10,000 workers reporting once a second slow to one
request every ``interval`` seconds each instead of queueing behind the
group commit. No clock of its own: the caller passes seconds.
"""

from __future__ import annotations

import math
import threading

__all__ = ["UpdatePace"]


class UpdatePace:
    """Count progress updates and say when to pace the workers.

    Parameters
    ----------
    above:
        Updates a second (this process) above which the server is busy; 0: never.
    interval:
        Seconds of ``minInterval`` while busy.

    Raises
    ------
    ValueError
        ``above`` is negative or ``interval`` is not positive (or either not finite).
    """

    def __init__(self, above: float, interval: float) -> None:
        if not 0 <= above < math.inf:
            raise ValueError(f"above must be a finite number >= 0, got {above!r}")
        if not 0 < interval < math.inf:
            raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
        self.above = above
        self.interval = interval
        self._lock = threading.Lock()
        self._second = -1
        self._current = 0
        self._previous = 0

    def hit(self, now: float) -> float | None:
        """Count one update at ``now`` (seconds); ``minInterval`` to answer, or ``None``."""
        if self.above == 0:
            return None
        second = math.floor(now)
        with self._lock:
            if second != self._second:
                self._previous = self._current if second == self._second + 1 else 0
                self._current, self._second = 0, second
            self._current += 1
            rate = self._previous * (1.0 - (now - second)) + self._current
        return self.interval if rate > self.above else None
