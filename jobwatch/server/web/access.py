"""Stored tokens at the door: who a tenant's, worker's or share link's token is.

:class:`Authenticator` turns a token into a
:class:`~jobwatch.server.core.tenancy.Principal`, reading the store at most
every :data:`REVALIDATE_AFTER` seconds per token, so that a token revoked
through any server process stops working everywhere within that time; open
WebSockets ask it again every second (see
:class:`~jobwatch.server.web.services.Services`). Tokens are compared by
their hashes in constant time and never logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request, g

from jobwatch.contract.requests import format_ts
from jobwatch.errors import AuthenticationError
from jobwatch.server.core.tenancy import Kind, Principal, TenantQuotas
from jobwatch.server.core.tokens import (
    SHARE_PREFIX,
    hashes_equal,
    stored_token_id,
    token_hash,
)
from jobwatch.server.storage.tenancy import TenancyStore

__all__ = [
    "EXPIRED",
    "REVALIDATE_AFTER",
    "REVOKED",
    "Authenticator",
    "Refusal",
    "current_principal",
]

REVALIDATE_AFTER = 2.0
"""Seconds a token's stored row is trusted before it is read again."""
CACHE_SIZE = 10_000
"""Most token ids remembered; past it the memory starts over."""


REVOKED = "token revoked"
EXPIRED = "token expired"


@dataclass(frozen=True)
class Refusal:
    """Why a token that was made no longer holds: ``reason`` (:data:`REVOKED` or
    :data:`EXPIRED`, a WebSocket's close reason) and ``message`` (the 401's,
    with when)."""

    reason: str
    message: str


@dataclass(frozen=True)
class _Entry:
    read_at: float  # time.monotonic()
    row: Any  # the tokens row, or None: no such token
    quotas: TenantQuotas | None


class Authenticator:
    """Who a stored token (``jw_...``) or share token (``jws_...``) is.

    Parameters
    ----------
    tenancy:
        Where tokens and tenants are stored.
    clock:
        Server time (s since the epoch), for expiry.
    revalidate_after:
        Seconds a token's row is reused before it is read again.
    """

    def __init__(
        self,
        tenancy: TenancyStore,
        clock: Callable[[], float],
        revalidate_after: float = REVALIDATE_AFTER,
    ) -> None:
        self.tenancy = tenancy
        self.clock = clock
        self.revalidate_after = revalidate_after
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}

    def __call__(self, token: str) -> Principal | None:
        """The principal ``token`` proves, or ``None`` for a token no one made
        (unknown, malformed, forged, or a wrong secret).

        Raises
        ------
        AuthenticationError
            401 ``unauthorized`` naming why a token that was made no longer
            holds: "token expired", "token revoked", or its tenant gone.
        """
        if token.startswith(SHARE_PREFIX):
            claim = self.tenancy.signer().claim(token)
            if claim is None:
                return None
            if self.clock() >= claim.expires_at:
                raise AuthenticationError(_expired(claim.expires_at).message)
            token_id: str | None = claim.link_id
        else:
            token_id = stored_token_id(token)
        if token_id is None:
            return None
        entry = self._entry(token_id)
        if entry.row is None or not hashes_equal(token_hash(token), entry.row.hash):
            return None
        refusal = self._refusal(entry)
        if refusal is not None:
            raise AuthenticationError(refusal.message)
        return self._principal(entry)

    def refusal(self, principal: Principal) -> Refusal | None:
        """Why ``principal``'s stored token no longer holds, or ``None`` while it
        does; always ``None`` for the server's own tokens."""
        if principal.token_id is None:
            return None
        return self._refusal(self._entry(principal.token_id))

    def in_force(self, principal: Principal) -> bool:
        """Whether ``principal``'s stored token still holds (:meth:`refusal` says why not)."""
        return self.refusal(principal) is None

    def forget(self, token_id: str) -> None:
        """Read token ``token_id`` again on its next use (this process revoked it)."""
        with self._lock:
            self._cache.pop(token_id, None)

    def forget_tenant(self, tenant: str) -> None:
        """Read every token of ``tenant`` (and its quotas) again on its next use:
        this process changed the tenant's quotas, which then hold here at once."""
        with self._lock:
            stale = [
                k for k, e in self._cache.items() if e.row is not None and e.row.tenant == tenant
            ]
            for token_id in stale:
                del self._cache[token_id]

    def _refusal(self, entry: _Entry) -> Refusal | None:
        row = entry.row
        if row is None:
            return Refusal(REVOKED, f"{REVOKED}: it is no longer stored")
        if row.revoked_at is not None:
            when = format_ts(row.revoked_at)
            return Refusal(REVOKED, f"{REVOKED} (at {when}); ask for a new one")
        if row.tenant is not None and entry.quotas is None:
            return Refusal(REVOKED, f"{REVOKED}: its tenant {row.tenant!r} is gone")
        if row.expires_at is not None and self.clock() >= row.expires_at:
            return _expired(row.expires_at)
        return None

    def _principal(self, entry: _Entry) -> Principal:
        row = entry.row
        return Principal(Kind(row.kind), row.tenant, row.job_id, row.id, entry.quotas)

    def _entry(self, token_id: str) -> _Entry:
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(token_id)
        if entry is not None and now - entry.read_at < self.revalidate_after:
            return entry
        row = self.tenancy.token_row(token_id)
        quotas = None
        if row is not None and row.tenant is not None:
            quotas = self.tenancy.tenant_quotas(row.tenant)
        entry = _Entry(now, row, quotas)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[token_id] = entry
        return entry


def _expired(expires_at: float) -> Refusal:
    return Refusal(EXPIRED, f"{EXPIRED} (at {format_ts(expires_at)}); ask for a new one")


def current_principal() -> Principal:
    """Who the request being served acts for (set by the app's access check).

    Raises
    ------
    AuthenticationError
        None was proven (a page's request that came without a token).
    """
    principal: Principal | None = g.get("jobwatch_principal")
    if principal is None:
        raise AuthenticationError("this server needs a token: send 'Authorization: Bearer <token>'")
    return principal


def remember(check: Callable[[Request], Principal | None]) -> Callable[[Request], None]:
    """``check`` (the access policy's) that keeps the principal it returns for the views."""

    def checked(request: Request) -> None:
        g.jobwatch_principal = check(request)

    return checked
