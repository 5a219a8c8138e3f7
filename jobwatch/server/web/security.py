"""Who may read and write: bearer tokens, allowed hosts and origins, rate limits.

With no token configured the server is open to whoever can reach it, so it
answers only requests addressed to a loopback name (``localhost``,
``127.0.0.1``, ``[::1]``) or to a host named with ``--allowed-host``: a web
page on another site whose name an attacker points at 127.0.0.1 (DNS
rebinding) is refused. With a write token (the admin token) every write needs
it or a token of the store that may write (:mod:`jobwatch.server.core.tenancy`);
reads and the WebSocket then need the read token (when one is set), the
write token or a stored token. Tokens come in an ``Authorization: Bearer``
header or, on ``/ws`` only (a browser's WebSocket cannot send headers), a
``token`` query parameter. ``/api/health`` and ``/api/ready`` stay open (probes
carry no token).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from flask import Request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from jobwatch.errors import (
    AuthenticationError,
    Forbidden,
    HostNotAllowed,
    OriginNotAllowed,
    RateLimited,
    ValidationError,
)
from jobwatch.server.core.tenancy import ADMIN, Kind, Principal

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/api/health", "/api/ready"})
WEBSOCKET_PATH = "/ws"
MIN_TOKEN_LENGTH = 16
"""Shortest token accepted (characters); ``openssl rand -hex 32`` gives 64."""


def token_problem(name: str, token: str | None) -> str | None:
    """Why ``token`` cannot be used, or ``None`` (``None`` itself is fine: no token).

    A token must have at least :data:`MIN_TOKEN_LENGTH` characters and no
    whitespace at either end (a stray newline from a file is a different token).
    ``name`` says which setting it came from, for the message.
    """
    if token is None:
        return None
    if token != token.strip():
        return f"{name} has whitespace at its start or end; remove it"
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"{name} must be at least {MIN_TOKEN_LENGTH} characters "
            f"(got {len(token)}); e.g. openssl rand -hex 32"
        )
    return None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, without port) always means this machine:
    ``localhost`` and names under ``.localhost`` (RFC 6761), 127.0.0.0/8, ``::1``."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(netloc: str) -> str:
    """``netloc`` (``host``, ``host:port``, ``[v6]:port``) without its port, lower case."""
    try:
        return (urlsplit(f"//{netloc}").hostname or "").rstrip(".")
    except ValueError:  # e.g. an unclosed "[" or a port that is not a number
        return ""


class AccessPolicy:
    """Checks each request's ``Host``, token and, for WebSockets, its ``Origin``.

    Parameters
    ----------
    write_token:
        Needed for every write (and accepted for reads); ``None``: no tokens at all.
    read_token:
        Accepted for reads and the WebSocket; ``None``: reads need the write token.
    origins:
        Browser origins allowed to open the WebSocket (``*`` allows any), besides
        pages served from a loopback or allowed host.
    allowed_hosts:
        Host names (without port) a tokenless server answers besides loopback
        names; ``*`` answers any (only for a trusted network).
    authenticate:
        Who another token is (a tenant's, a worker's or a share link's), or
        ``None`` if it is no token in force; only asked when a write token is set.

    Raises
    ------
    ValueError
        A read token without a write token, or a token that
        :func:`token_problem` refuses.
    """

    def __init__(
        self,
        write_token: str | None,
        read_token: str | None,
        origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        authenticate: Callable[[str], Principal | None] | None = None,
    ) -> None:
        if read_token and not write_token:
            raise ValueError("a read token needs a write token too (else writes would be open)")
        self.write_token = write_token or None
        self.read_token = read_token or None
        for name, token in (
            ("the write token", self.write_token),
            ("the read token", self.read_token),
        ):
            problem = token_problem(name, token)
            if problem:
                raise ValueError(problem)
        self.origins = frozenset(origins)
        self.allowed_hosts = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        self.authenticate = authenticate

    def check(self, request: Request) -> Principal | None:
        """Who the request acts for: the :class:`~jobwatch.server.core.tenancy.Principal`
        its token proves (the admin on a server without tokens), or ``None``
        for ``/api/health`` and ``OPTIONS``, which need none.

        Raises
        ------
        AuthenticationError
            401: no token, a wrong one, or one expired or revoked (the message says which).
        Forbidden
            403 ``forbidden``: a write with a token that may only read.
        HostNotAllowed
            403 ``host_not_allowed``: a tokenless server asked under another name.
        OriginNotAllowed
            403 ``origin_not_allowed``: a WebSocket from a browser origin not allowed.
        """
        if request.path in OPEN_PATHS:
            return None
        if self.write_token is None:
            self._check_host(request)
        if request.method == "OPTIONS":
            return None
        if request.path == WEBSOCKET_PATH:
            self._check_origin(request)
        if self.write_token is None:
            return ADMIN
        token = _token(request)
        if token is None:
            raise AuthenticationError(
                "this server needs a token: send 'Authorization: Bearer <token>'"
                " (or ?token= on the WebSocket URL)"
            )
        if _same(token, self.write_token):
            return ADMIN
        reading = request.method in READ_METHODS
        principal = None
        if self.read_token is not None and _same(token, self.read_token):
            principal = Principal(Kind.READ)
        elif self.authenticate is not None:
            principal = self.authenticate(token)
        if principal is None:
            raise AuthenticationError("wrong token: this server made no such token")
        if not reading and not principal.writes:
            # valid but not allowed: 403 (RFC 9110, 15.5.4); 401 is for no or an unknown token
            raise Forbidden(
                f"this {_token_name(principal)} may only read; writes need the admin token, "
                "a tenant's write token or the job's worker token"
            )
        return principal

    def _allowed(self, host: str) -> bool:
        return is_loopback_host(host) or host in self.allowed_hosts or "*" in self.allowed_hosts

    def _check_host(self, request: Request) -> None:
        host = _host_name(request.host)
        if host and self._allowed(host):
            return
        raise HostNotAllowed(
            f"this server has no token, so it answers only requests to localhost, 127.0.0.1 "
            f"or [::1], not to {request.host!r}; start it with --allowed-host NAME for "
            "another name, or with a token (JOBWATCH_TOKEN)"
        )

    def _check_origin(self, request: Request) -> None:
        origin = request.headers.get("Origin")
        if origin is None or "*" in self.origins or origin in self.origins:
            return
        netloc = origin.split("://", 1)[-1]
        if self._allowed(_host_name(netloc)):
            return
        # With a token, a page of the server's own site may connect: it still
        # needs the token, which another site's page does not have.
        if self.write_token is not None and netloc == request.host:
            return
        raise OriginNotAllowed(
            f"WebSocket origin {origin!r} is not allowed; start the server with --cors-origin"
        )


class WorkerRateLimit:
    """At most ``per_second`` progress updates per worker and client address
    (moving one-second window).

    Keyed by both, so a client elsewhere that sends updates under a worker's
    id spends its own allowance, not the worker's. Call :meth:`hit` only once
    the update is known to be the worker's to make (its job exists and is
    bound to it, or to no one): an update refused for that is not counted.
    Uses the ``limits`` library's moving-window strategy in memory (this process).
    """

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise ValueError(f"rate limit must be > 0 updates per second, got {per_second!r}")
        self.item = RateLimitItemPerSecond(max(1, int(per_second)))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, worker_id: str, address: str | None) -> None:
        """Count one update of ``worker_id`` from ``address`` (the client's IP);
        raise :class:`RateLimited` (429) past the limit."""
        key = f"{address or '-'} {worker_id}"
        if self._limiter.hit(self.item, key):
            return
        reset_at, _ = self._limiter.get_window_stats(self.item, key)
        raise RateLimited(
            f"worker {worker_id!r} sent more than {self.item.amount} updates in a second",
            retry_after=max(1.0, reset_at - time.time()),
        )


def _token_name(principal: Principal) -> str:
    if principal.kind is Kind.SHARE:
        return "share link"
    if principal.tenant is None:
        return "server read token (JOBWATCH_READ_TOKEN)"
    return f"read token of tenant {principal.tenant!r}"


def _token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    if request.path == WEBSOCKET_PATH:  # a query string ends up in logs and histories
        given = request.args.getlist("token")
        if len(given) > 1:
            raise ValidationError(
                "1 invalid query parameter",
                details=[
                    {"field": "token", "message": "given more than once; give it at most once"}
                ],
            )
        return (given[0] if given else "") or None
    return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
