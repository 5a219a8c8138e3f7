"""What one app instance holds: its store, its broker and its clock."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobwatch.server.broker import MemoryBroker
from jobwatch.server.security import WorkerRateLimit
from jobwatch.server.store import Store


@dataclass
class Services:
    """The app's parts, kept in ``app.extensions["jobwatch"]``.

    ``clock`` returns server time in seconds since the epoch; ``ws_queue_size``
    is the most events a subscriber may have queued unsent before it is
    disconnected; ``rate_limit`` caps each worker's progress updates.
    """

    store: Store
    broker: MemoryBroker
    clock: Callable[[], float]
    ws_queue_size: int
    rate_limit: WorkerRateLimit | None = None
    sessions: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, session: Any) -> None:
        """Remember an open WebSocket session, so :meth:`close` can end it."""
        with self._lock:
            self.sessions.add(session)

    def close(self) -> None:
        """End every WebSocket session (close code 1001), stop the writer, release the database."""
        with self._lock:
            sessions = list(self.sessions)
        for session in sessions:
            session.shutdown()
        self.broker.close()
        self.store.close()
