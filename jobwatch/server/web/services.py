"""What one app instance holds: its store, its broker and its clock."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobwatch.server.core.pace import UpdatePace
from jobwatch.server.core.tenancy import Principal
from jobwatch.server.events.broker import Broker
from jobwatch.server.events.fleet_feed import FleetFeed
from jobwatch.server.events.watchdog import StallWatchdog
from jobwatch.server.events.webhook import Webhooks
from jobwatch.server.storage.store import Store
from jobwatch.server.storage.tenancy import TenancyStore
from jobwatch.server.web.access import Authenticator, Refusal
from jobwatch.server.web.security import WorkerRateLimit


def _new_lock() -> threading.Lock:
    """A lock of the ``threading`` module as it is now. ``threading.Lock`` itself
    is looked up here, when an instance is made: a gunicorn master imports this
    module before gevent patches ``threading`` in the worker, and a lock taken
    from the unpatched module would block the worker's only OS thread when two
    greenlets contend for it."""
    return threading.Lock()


@dataclass
class Services:
    """The app's parts, kept in ``app.extensions["jobwatch"]``.

    ``clock`` returns server time in seconds since the epoch; ``ws_queue_size``
    and ``ws_queue_bytes`` are the most messages and bytes a subscriber may
    have queued unsent before it is disconnected; ``send_timeout`` is how many
    seconds one send may wait for a client that does not read before it is
    disconnected; ``rate_limit`` caps each worker's progress updates;
    ``pace`` says when progress answers carry ``minInterval``;
    ``fleet`` streams job summaries to ``subscribe:jobs``; ``watchdog`` marks
    stalled jobs; ``webhook`` posts alerts; ``tenancy`` keeps tenants and
    tokens and ``authenticator`` says who a stored token is (a WebSocket whose
    token is revoked or expires is closed within a few seconds).
    """

    store: Store
    broker: Broker
    clock: Callable[[], float]
    ws_queue_size: int
    ws_queue_bytes: int = 8 * 1024 * 1024
    send_timeout: float = 30.0
    rate_limit: WorkerRateLimit | None = None
    pace: UpdatePace | None = None
    fleet: FleetFeed | None = None
    watchdog: StallWatchdog | None = None
    webhook: Webhooks | None = None
    tenancy: TenancyStore | None = None
    authenticator: Authenticator | None = None
    sessions: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    _lock: threading.Lock = field(default_factory=_new_lock)
    _tenant_connections: dict[str, int] = field(default_factory=dict)
    _closed: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _send_watch: threading.Thread | None = None

    def track(self, session: Any) -> bool:
        """Remember an open WebSocket session, so :meth:`close` can end it.

        Returns ``False`` once :meth:`close` has begun: a connection accepted
        during shutdown must end at once rather than outlive the server.
        """
        with self._lock:
            if self._closed:
                return False
            self.sessions.add(session)
            start = self._send_watch is None
            if start:
                self._send_watch = threading.Thread(
                    target=self._watch_sends, name="jobwatch-ws-send-watch", daemon=True
                )
        if start and self._send_watch is not None:
            self._send_watch.start()  # outside the lock: starting a thread may switch greenlets
        return True

    def reserve_connection(self, principal: Principal) -> bool:
        """Count one more WebSocket of ``principal``'s tenant in this process, or
        raise :class:`~jobwatch.errors.QuotaExceeded` (507) past its quota.
        Returns whether one was counted (release it with :meth:`release_connection`)."""
        tenant, quotas = principal.tenant, principal.quotas
        if tenant is None or quotas is None:
            return False
        with self._lock:
            open_now = self._tenant_connections.get(tenant, 0)
            quotas.check_connection(tenant, open_now)
            self._tenant_connections[tenant] = open_now + 1
        return True

    def release_connection(self, tenant: str) -> None:
        """One WebSocket of ``tenant`` counted by :meth:`reserve_connection` has ended."""
        with self._lock:
            left = self._tenant_connections.get(tenant, 0) - 1
            if left > 0:
                self._tenant_connections[tenant] = left
            else:
                self._tenant_connections.pop(tenant, None)

    def _refusal(self, principal: Principal) -> Refusal | None:
        if self.authenticator is None:
            return None
        try:
            return self.authenticator.refusal(principal)
        except Exception:  # the database away for a moment: ask again next round
            return None

    def _watch_sends(self) -> None:
        """Drop sessions whose client stopped reading, and close those whose token
        is no longer in force, checking every second (or faster for a short
        ``send_timeout``)."""
        period = min(1.0, self.send_timeout / 4)
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._lock:
                sessions = list(self.sessions)
            for session in sessions:
                if session.stalled(now):
                    session.drop_stalled()
                elif (refusal := self._refusal(session.principal)) is not None:
                    session.revoke(refusal.reason)

    def close(self) -> None:
        """End every WebSocket session (close code 1001), stop the writer, release the database."""
        with self._lock:
            self._closed = True
            sessions = list(self.sessions)
        self._stop.set()
        for session in sessions:
            session.shutdown()
        if self.watchdog is not None:
            self.watchdog.close()
        if self.fleet is not None:
            self.fleet.close()
        self.broker.close()
        self.store.close()
        if self.webhook is not None:
            self.webhook.close()
