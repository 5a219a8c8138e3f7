"""The stand-in for a training step's own work, sized to a duration on this machine.

The loop benchmarks (:mod:`benchmarks.training`, :mod:`benchmarks.peers`) run
steps of a known cost and measure what a tracker adds to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["StepWork"]

_START = 150
"""Iterations before calibration (about 10 us on these machines)."""


class StepWork:
    """Pure-Python arithmetic that costs about ``seconds`` per call once
    :meth:`calibrate` has sized it; call it with a one-element list it updates."""

    def __init__(self) -> None:
        self.iterations = _START

    def __call__(self, state: list[float]) -> None:
        total = state[0]
        for i in range(self.iterations):
            total = (total * 1.000001 + i) % 1e6
        state[0] = total

    def calibrate(
        self, seconds: float, clock: Callable[[], float] = time.perf_counter, rounds: int = 2000
    ) -> None:
        """Size one call to ``seconds`` as ``clock`` counts them (wall time by
        default; ``time.thread_time`` counts this thread's CPU, the same however
        loaded the machine is): the best of 5 runs of ``rounds`` calls.

        Raises
        ------
        ValueError
            ``seconds`` or ``rounds`` is not positive.
        """
        if seconds <= 0 or rounds <= 0:
            raise ValueError(f"seconds and rounds must be positive, not {seconds}, {rounds}")
        state = [0.0]
        self.iterations = _START
        best = float("inf")
        for _ in range(5):
            start = clock()
            for _ in range(rounds):
                self(state)
            best = min(best, (clock() - start) / rounds)
        self.iterations = max(1, round(_START * seconds / best))
