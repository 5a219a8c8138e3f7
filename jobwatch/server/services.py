"""What one app instance holds: its store, its broker and its clock."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobwatch.server.broker import Broker
from jobwatch.server.fleet import FleetFeed
from jobwatch.server.security import WorkerRateLimit
from jobwatch.server.store import Store
from jobwatch.server.watchdog import StallWatchdog
from jobwatch.server.webhook import WebhookSender


@dataclass
class Services:
    """The app's parts, kept in ``app.extensions["jobwatch"]``.

    ``clock`` returns server time in seconds since the epoch; ``ws_queue_size``
    is the most events a subscriber may have queued unsent before it is
    disconnected; ``rate_limit`` caps each worker's progress updates;
    ``fleet`` streams job summaries to ``subscribe:jobs``; ``watchdog`` marks
    stalled jobs; ``webhook`` posts alerts.
    """

    store: Store
    broker: Broker
    clock: Callable[[], float]
    ws_queue_size: int
    rate_limit: WorkerRateLimit | None = None
    fleet: FleetFeed | None = None
    watchdog: StallWatchdog | None = None
    webhook: WebhookSender | None = None
    sessions: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def track(self, session: Any) -> bool:
        """Remember an open WebSocket session, so :meth:`close` can end it.

        Returns ``False`` once :meth:`close` has begun: a connection accepted
        during shutdown must end at once rather than outlive the server.
        """
        with self._lock:
            if self._closed:
                return False
            self.sessions.add(session)
            return True

    def close(self) -> None:
        """End every WebSocket session (close code 1001), stop the writer, release the database."""
        with self._lock:
            self._closed = True
            sessions = list(self.sessions)
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
