"""When a front-end may draw a change: at once after a quiet moment, paced under load.

A token bucket (the classic rate limiter, e.g. Tanenbaum, *Computer Networks*,
"traffic shaping"): ``burst`` draws may go at once, and draws come back at one
per ``gap`` seconds. A change that arrives while the monitor is quiet is drawn
at once, so a log line reaches the page as soon as the server sends it; a
steady stream of changes is coalesced to at most one draw per ``gap`` on
average, as tqdm's ``mininterval`` does, so a fast worker does not cost the
kernel more CPU. No clock of its own: the caller passes monotonic seconds.
"""

from __future__ import annotations

__all__ = ["RenderPace"]


class RenderPace:
    """A token bucket of draws.

    Parameters
    ----------
    gap:
        Seconds per draw under sustained load (0: never paced).
    burst:
        Draws that may go at once after a quiet moment (at least 1).

    Raises
    ------
    ValueError
        ``gap`` is negative or not finite, or ``burst`` is below 1.
    """

    def __init__(self, gap: float, burst: int = 1) -> None:
        if not 0 <= gap < float("inf"):
            raise ValueError(f"gap must be a finite number of seconds >= 0, got {gap!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.gap = gap
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None

    def _fill(self, now: float) -> None:
        if self._at is not None and self.gap > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._at) / self.gap)
        self._at = now

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until a draw may go (0: at once)."""
        if self.gap == 0:
            return 0.0
        self._fill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= 1e-9 else missing * self.gap  # 1e-9: float rounding

    def drew(self, now: float) -> None:
        """A draw of a change went at ``now``: it spends one token."""
        if self.gap == 0:
            return
        self._fill(now)
        self._tokens = max(0.0, self._tokens - 1.0)
