"""Fan-out of committed events to WebSocket subscribers.

A subscriber is anything with a non-blocking ``deliver(job_id, seq, message)``
and ``resync(job_id, seq)``; the WebSocket session gives each connection a
bounded send queue, so publishing costs one append per subscriber and never waits
on a slow reader. :class:`MemoryBroker` reaches the subscribers of this
process; :class:`~jobwatch.server.events.redis_broker.RedisBroker` those of every
process sharing one Redis.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from jobwatch.server.core.serialize import Event

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "jobwatch:events"
"""The Redis pub/sub channel of a deployment unless configured otherwise."""
DEFAULT_REDIS_TIMEOUT = 5.0
"""Seconds Redis may take to connect or answer (``--redis-timeout``)."""
ALL_JOBS = "*"
"""Subscribing to this key delivers every job's events (no job id can be ``*``)."""


class Subscriber(Protocol):
    """Receives the messages of the jobs it subscribed to."""

    def deliver(self, job_id: str, seq: int, message: bytes) -> None:
        """Take one event's JSON text; must return at once (enqueue, never block)."""

    def resync(self, job_id: str, seq: int) -> None:
        """Events of ``job_id`` up to ``seq`` (0: any) may have been lost in transit:
        fetch what is missing from the store. Must return at once."""


class Broker(Protocol):
    """What the server needs of a broker (:class:`MemoryBroker` or ``RedisBroker``)."""

    def subscribe(self, job_id: str, subscriber: Subscriber) -> None:
        """Start delivering ``job_id``'s events to ``subscriber``."""

    def unsubscribe(self, job_id: str, subscriber: Subscriber) -> None:
        """Stop delivering ``job_id``'s events to ``subscriber``."""

    def subscriber_count(self, job_id: str | None = None) -> int:
        """Number of subscriptions in this process, to one job or to all."""

    def publish(self, events: Iterable[Event]) -> None:
        """Send committed events, in commit order, to their jobs' subscribers."""

    def close(self) -> None:
        """Stop delivering."""

    @property
    def connected(self) -> bool:
        """Whether events of every process reach this one now (``/api/ready``)."""


class MemoryBroker:
    """Publishes to the subscribers of this process; the embedded default.

    Parameters
    ----------
    dispatch:
        ``True``: :meth:`publish` only queues the events, and a dispatcher thread
        (a greenlet under gevent), started on the first publish, hands them to
        the subscribers in the same order, so the store's writer never waits for
        a thousand deliveries. ``False`` (default): :meth:`publish` delivers
        before it returns.
    """

    def __init__(self, *, dispatch: bool = False) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._dispatch = dispatch
        self._pending: deque[list[Event]] = deque()
        self._wake = threading.Condition()
        self._dispatcher: threading.Thread | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        """Always ``True``: this process is the only one."""
        return True

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
        """Deliver each event to its job's subscribers, in the order given (with
        ``dispatch``: queue them for the dispatcher and return at once).

        Each event is serialised once, whatever the number of subscribers.
        """
        if not self._dispatch:
            self._deliver_all(events)
            return
        batch = list(events)
        with self._wake:
            if self._closed or not batch:
                return
            self._pending.append(batch)
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name="jobwatch-dispatch", daemon=True
                )
                self._dispatcher.start()
            self._wake.notify()

    def _dispatch_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
                batch = self._pending.popleft()
            try:
                self._deliver_all(batch)
            except Exception:
                log.exception("delivering %d events failed", len(batch))

    def _deliver_all(self, events: Iterable[Event]) -> None:
        for event in events:
            targets = self._targets(event.job_id)
            if targets:
                message = event.message()
                for subscriber in targets:
                    subscriber.deliver(event.job_id, event.seq, message)

    def deliver(self, job_id: str, seq: int, message: bytes) -> None:
        """Hand one already serialised event to ``job_id``'s subscribers in this process."""
        for subscriber in self._targets(job_id):
            subscriber.deliver(job_id, seq, message)

    def _targets(self, job_id: str) -> tuple[Subscriber, ...]:
        with self._lock:
            return (*self._subscribers.get(job_id, ()), *self._subscribers.get(ALL_JOBS, ()))

    def resync(self, job_id: str | None, seq: int = 0) -> None:
        """Ask ``job_id``'s subscribers (``None``: every subscriber) to fetch
        events up to ``seq`` they may have missed from the store."""
        with self._lock:
            if job_id is None:
                targets = [(j, s) for j, subs in self._subscribers.items() for s in subs]
            else:
                targets = [(job_id, s) for s in self._subscribers.get(job_id, ())]
        for target_job, subscriber in targets:
            subscriber.resync(target_job, seq)

    def close(self) -> None:
        """Deliver what the dispatcher has queued (for up to 3 s), then forget every
        subscriber."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(3.0)
        with self._lock:
            self._subscribers.clear()
