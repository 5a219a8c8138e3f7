"""Exponential backoff with jitter, shared by the client and the server.

One class for every retry loop of jobwatch: the WebSocket subscription's
reconnects (:mod:`jobwatch.client.subscription`), the reporter's retries of an
unreachable server (:mod:`jobwatch.report.sender`) and the server's Redis
re-subscription (:mod:`jobwatch.server.events.redis_broker`). It imports nothing from
jobwatch, so the server depends on it without depending on the client.
"""

from __future__ import annotations

import random
from typing import Literal

__all__ = ["Backoff", "Jitter"]

Jitter = Literal["full", "half"]
"""How much of the exponential ceiling is randomised (see :class:`Backoff`)."""


class Backoff:
    """Exponential backoff with jitter ("Exponential Backoff And Jitter", Marc
    Brooker, AWS Architecture Blog, 2015).

    The n-th consecutive failure (n from 0) has the ceiling
    ``c = min(cap, base * 2**n)`` seconds and waits

    - ``jitter="full"``: a uniform random time in ``[0, c]`` (the article's
      "Full Jitter"). Clients that lost the same server spread their returns
      over the whole window, so they do not come back in lockstep; the
      choice for many clients reconnecting at once (WebSocket subscribers,
      server processes re-subscribing to Redis).
    - ``jitter="half"``: a uniform random time in ``[c/2, c]`` (the article's
      "Equal Jitter"). Never retries sooner than half the ceiling, so one
      process that keeps failing backs off steadily; the choice for the
      reporter, which retries one server on behalf of one job.

    Parameters
    ----------
    base:
        First ceiling, in seconds.
    cap:
        Largest ceiling, in seconds.
    rng:
        Source of randomness (default: a new ``random.Random``; tests pass a seeded one).
    jitter:
        ``"full"`` (default) or ``"half"``, as above.

    Raises
    ------
    ValueError
        ``base`` is not above 0, ``base`` exceeds ``cap``, or ``jitter`` is
        neither ``"full"`` nor ``"half"``.
    """

    def __init__(
        self,
        base: float = 0.25,
        cap: float = 30.0,
        rng: random.Random | None = None,
        *,
        jitter: Jitter = "full",
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"need 0 < base <= cap, got base={base!r}, cap={cap!r}")
        if jitter not in ("full", "half"):
            raise ValueError(f"jitter must be 'full' or 'half', got {jitter!r}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; counts one more failure."""
        ceiling = min(self.cap, self.base * 2.0 ** min(self.failures, 32))
        self.failures += 1
        low = 0.0 if self.jitter == "full" else ceiling / 2
        return self._rng.uniform(low, ceiling)

    def reset(self) -> None:
        """Forget the failures (after a successful attempt)."""
        self.failures = 0
