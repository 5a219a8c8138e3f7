"""Who may read and write: bearer tokens, allowed browser origins, per-worker rate limits.

With no token configured the server is open (fine on loopback). With a write
token every write needs it; reads and the WebSocket then need the read token
(when one is set) or the write token. Tokens come in an
``Authorization: Bearer`` header or, for browsers' WebSockets, a ``token``
query parameter. ``/api/health`` stays open.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable

from flask import Request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from jobwatch.errors import APIError, AuthenticationError, RateLimited

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/api/health"})


class AccessPolicy:
    """Checks each request's token and, for WebSockets, its ``Origin``.

    Parameters
    ----------
    write_token:
        Needed for every write (and accepted for reads); ``None``: no tokens at all.
    read_token:
        Accepted for reads and the WebSocket; ``None``: reads need the write token.
    origins:
        Browser origins allowed to open the WebSocket (``*`` allows any); empty:
        only clients that send no ``Origin`` (not browsers) or a same-host origin.
    """

    def __init__(
        self, write_token: str | None, read_token: str | None, origins: Iterable[str] = ()
    ) -> None:
        if read_token and not write_token:
            raise ValueError("a read token needs a write token too (else writes would be open)")
        self.write_token = write_token or None
        self.read_token = read_token or None
        self.origins = frozenset(origins)

    def check(self, request: Request) -> None:
        """Raise :class:`AuthenticationError` (401), or an :class:`APIError` 403
        ``origin_not_allowed`` for a WebSocket from a browser origin not allowed."""
        if request.path in OPEN_PATHS or request.method == "OPTIONS":
            return
        if request.path == "/ws":
            self._check_origin(request)
        if self.write_token is None:
            return
        token = _token(request)
        if token is None:
            raise AuthenticationError(
                "this server needs a token: send 'Authorization: Bearer <token>'"
                " (or ?token= on a WebSocket URL)"
            )
        if _same(token, self.write_token):
            return
        reading = request.method in READ_METHODS
        if reading and self.read_token is not None and _same(token, self.read_token):
            return
        raise AuthenticationError(
            "wrong token" if reading else "wrong token: writes need the write token"
        )

    def _check_origin(self, request: Request) -> None:
        origin = request.headers.get("Origin")
        if origin is None or "*" in self.origins or origin in self.origins:
            return
        if origin.split("://", 1)[-1] == request.host:
            return
        raise APIError(
            f"WebSocket origin {origin!r} is not allowed; start the server with --cors-origin",
            status=403,
            code="origin_not_allowed",
        )


class WorkerRateLimit:
    """At most ``per_second`` progress updates per worker (moving one-second window).

    Uses the ``limits`` library's moving-window strategy in memory (this process).
    """

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise ValueError(f"rate limit must be > 0 updates per second, got {per_second!r}")
        self.item = RateLimitItemPerSecond(max(1, int(per_second)))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, worker_id: str) -> None:
        """Count one update of ``worker_id``; raise :class:`RateLimited` (429) past the limit."""
        if self._limiter.hit(self.item, worker_id):
            return
        reset_at, _ = self._limiter.get_window_stats(self.item, worker_id)
        raise RateLimited(
            f"worker {worker_id!r} sent more than {self.item.amount} updates in a second",
            retry_after=max(1.0, reset_at - time.time()),
        )


def _token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.args.get("token") or None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
