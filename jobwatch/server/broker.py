"""Fan-out of committed events to WebSocket subscribers, inside one process.

A subscriber is anything with a non-blocking ``deliver(job_id, seq, message)``;
the WebSocket session gives each connection a bounded outbox, so publishing
costs one append per subscriber and never waits on a slow reader.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

from jobwatch.server.wire import Event


class Subscriber(Protocol):
    """Receives the messages of the jobs it subscribed to."""

    def deliver(self, job_id: str, seq: int, message: bytes) -> None:
        """Take one event's JSON text; must return at once (enqueue, never block)."""


class MemoryBroker:
    """Publishes to the subscribers of this process; the embedded default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscriber]] = {}

    def subscribe(self, job_id: str, subscriber: Subscriber) -> None:
        """Start delivering ``job_id``'s events to ``subscriber``."""
        with self._lock:
            self._subscribers.setdefault(job_id, set()).add(subscriber)

    def unsubscribe(self, job_id: str, subscriber: Subscriber) -> None:
        """Stop delivering ``job_id``'s events to ``subscriber`` (no error if not subscribed)."""
        with self._lock:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[job_id]

    def subscriber_count(self, job_id: str | None = None) -> int:
        """Number of subscriptions, to one job or to all."""
        with self._lock:
            if job_id is not None:
                return len(self._subscribers.get(job_id, ()))
            return sum(len(s) for s in self._subscribers.values())

    def publish(self, events: Iterable[Event]) -> None:
        """Deliver each event to its job's subscribers, in the order given.

        Each event is serialised once, whatever the number of subscribers.
        """
        for event in events:
            with self._lock:
                targets = tuple(self._subscribers.get(event.job_id, ()))
            if not targets:
                continue
            message = event.message()
            for subscriber in targets:
                subscriber.deliver(event.job_id, event.seq, message)

    def close(self) -> None:
        """Forget every subscriber."""
        with self._lock:
            self._subscribers.clear()
