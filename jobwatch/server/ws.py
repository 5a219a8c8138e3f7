"""The WebSocket endpoint ``/ws``: subscriptions, ``since`` replay and live events.

Each connection has two threads besides simple-websocket's reader: the route
thread reads client messages, and a sender thread is the only one that writes
to the socket. Everything to send goes through one bounded outbox, so the
broker's ``deliver`` is an append and a slow subscriber never delays a worker
or another subscriber. When the outbox is full the subscriber is disconnected
with close code 1008 and a reason; it can reconnect and resume with ``since``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from simple_websocket import ConnectionClosed

from jobwatch.errors import APIError, JobNotFound, StoreUnavailable
from jobwatch.protocol import (
    SubscribeJobsMessage,
    SubscribeMessage,
    UnsubscribeJobsMessage,
    parse_client_message,
    valid_job_id,
)
from jobwatch.server import queries
from jobwatch.server.fleet import FLEET
from jobwatch.server.rules import completed_event
from jobwatch.server.services import Services
from jobwatch.server.wire import Event, dumps

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
"""WebSocket close code (RFC 6455, 7.4.1) used when a subscriber falls too far behind."""
INTERNAL_ERROR = 1011
"""WebSocket close code (RFC 6455, 7.4.1) for an unexpected server error."""
GOING_AWAY = 1001
"""WebSocket close code (RFC 6455, 7.4.1) sent when the server stops."""
FORCE_CLOSE_AFTER = 5.0
"""Seconds a disconnected slow subscriber gets to take its close frame before the socket is cut."""


GAP_WAIT = 1.0
"""Seconds a session holds a job's later events while an earlier ``seq`` is missing
(another process has committed it but not yet published it) before reading the
missing events from the store."""


@dataclass
class _Subscription:
    """One job subscribed on a connection; touched only by the sender thread once created.

    ``held`` keeps events that cannot be sent yet, by seq: all of them until the
    ``subscribed`` answer is out, then those beyond a gap in the sequence.
    """

    job_id: str
    acked: bool = False
    last_sent: int = 0
    held: dict[int, bytes] = field(default_factory=dict)
    gap_since: float | None = None
    needs_fill: bool = False


class Session:
    """One WebSocket connection: its subscriptions and its outbox."""

    def __init__(self, ws: Any, services: Services) -> None:
        self.ws = ws
        self.services = services
        self._cond = threading.Condition()
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._closing = False
        self._subscriptions: dict[str, _Subscription] = {}
        self._sender = threading.Thread(
            target=self._send_loop, name="jobwatch-ws-send", daemon=True
        )

    # -- route thread -----------------------------------------------------

    def run(self) -> None:
        """Serve the connection until it closes."""
        if not self.services.track(self):
            self.ws.close(reason=GOING_AWAY, message="server shutting down")
            return
        self._sender.start()
        try:
            while not self._closing:
                raw = self.ws.receive()
                if raw is not None:
                    self._handle(raw)
        except ConnectionClosed:
            pass
        except Exception:
            # Never let an error escape into flask-sock, which would write an
            # HTTP 500 into the open WebSocket: close it as the protocol says.
            log.exception("WebSocket connection failed")
            with self._cond:
                self._closing = True
                self._outbox.clear()
                self._outbox.append(("close", INTERNAL_ERROR, "internal server error"))
                self._cond.notify()
        finally:
            self._stop()

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = parse_client_message(raw)
        except APIError as exc:
            self._send_control({"type": "error", "error": _error_body(exc)})
            return
        if isinstance(message, SubscribeJobsMessage):
            self._subscribe_jobs(message)
            return
        if isinstance(message, UnsubscribeJobsMessage):
            if self.services.fleet is not None:
                self.services.fleet.unsubscribe(self)
            self._send_control({"type": "unsubscribed", "subscriptionId": FLEET})
            return
        job_id = message.subscription_id
        if isinstance(message, SubscribeMessage):
            try:
                self._subscribe(job_id, message.since)
            except APIError as exc:  # the database is unavailable: say so, keep the connection
                self._refuse(job_id, exc)
        else:
            with self._cond:
                self._subscriptions.pop(job_id, None)
            self.services.broker.unsubscribe(job_id, self)
            self._send_control({"type": "unsubscribed", "subscriptionId": job_id})

    def _subscribe(self, job_id: str, since: int | None) -> None:
        subscription = _Subscription(job_id)
        with self._cond:
            self._subscriptions[job_id] = subscription
        # Subscribe before reading the job: an event committed after the read is
        # then surely queued, and one already read is skipped by its seq.
        self.services.broker.subscribe(job_id, self)
        job = None
        if valid_job_id(job_id):
            with self.services.store.read() as conn:
                job = queries.get_job(conn, job_id)
        if job is None:
            self._refuse(job_id, JobNotFound(f"no job with id {job_id!r}"))
            return
        self._put(("subscribed", subscription, dict(job), since))

    def _subscribe_jobs(self, message: SubscribeJobsMessage) -> None:
        """The fleet: ``subscribed`` then ``JOBS_CHANGED`` (see :mod:`jobwatch.server.fleet`)."""
        if self.services.fleet is None:
            return
        try:
            self.services.fleet.subscribe(self, message.status, message.since)
        except StoreUnavailable as exc:
            self._send_control(
                {"type": "error", "subscriptionId": FLEET, "error": _error_body(exc)}
            )

    def deliver_fleet(self, message: bytes) -> None:
        """Queue one ``JOBS_CHANGED`` message (called by the fleet feed; never blocks)."""
        self._put(("send", message))

    def _refuse(self, job_id: str, error: APIError) -> None:
        """Drop the subscription to ``job_id`` and tell the client why."""
        with self._cond:
            self._subscriptions.pop(job_id, None)
        self.services.broker.unsubscribe(job_id, self)
        self._send_control({"type": "error", "subscriptionId": job_id, "error": _error_body(error)})

    def _stop(self) -> None:
        with self._cond:
            jobs = list(self._subscriptions)
            self._subscriptions.clear()
            self._closing = True
            self._outbox.append(("stop",))
            self._cond.notify()
        for job_id in jobs:
            self.services.broker.unsubscribe(job_id, self)
        if self.services.fleet is not None:
            self.services.fleet.unsubscribe(self)
        self._sender.join(FORCE_CLOSE_AFTER + 1)

    # -- broker side -----------------------------------------------------

    def deliver(self, job_id: str, seq: int, message: bytes) -> None:
        """Queue one event (called by the broker; never blocks)."""
        self._put(("event", job_id, seq, message))

    def resync(self, job_id: str, seq: int) -> None:
        """Queue a check of ``job_id`` against the store: events up to ``seq``
        (0: any) may have been lost between processes (called by the broker)."""
        self._put(("resync", job_id, seq))

    def queued_bytes(self) -> int:
        """Bytes of events and answers queued unsent on this connection (for monitoring)."""
        with self._cond:
            return sum(len(item[-1]) for item in self._outbox if item[0] in ("event", "send"))

    def _send_control(self, body: dict[str, Any]) -> None:
        self._put(("send", dumps(body)))

    def _put(self, item: tuple[Any, ...]) -> None:
        with self._cond:
            if self._closing:
                return
            if len(self._outbox) >= self.services.ws_queue_size:
                self._overflow()
                return
            self._outbox.append(item)
            self._cond.notify()

    def _overflow(self) -> None:
        """Drop the backlog and close: called with the lock held."""
        size = self.services.ws_queue_size
        reason = f"subscriber too slow: {size} messages queued unsent; reconnect with since"
        log.warning("disconnecting a WebSocket subscriber: %s", reason)
        self._closing = True
        self._outbox.clear()
        self._outbox.append(("close", POLICY_VIOLATION, reason))
        self._cond.notify()
        timer = threading.Timer(FORCE_CLOSE_AFTER, self._cut)
        timer.daemon = True
        timer.start()

    def shutdown(self) -> None:
        """Close the connection because the server stops (close code 1001, going away)."""
        with self._cond:
            self._closing = True
            self._outbox.clear()
            self._outbox.append(("close", GOING_AWAY, "server shutting down"))
            self._cond.notify()
        self._sender.join(1.0)
        self._cut()

    def _cut(self) -> None:
        """Unblock a sender stuck writing to a peer that stopped reading."""
        if self.ws.connected or self._sender.is_alive():
            sock: socket.socket | None = getattr(self.ws, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # -- sender thread ---------------------------------------------------

    def _send_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._outbox:
                        wait = self._gap_wait()
                        if wait is not None and wait <= 0:
                            break
                        self._cond.wait(wait)
                    item = self._outbox.popleft() if self._outbox else ("gaps",)
                kind = item[0]
                if kind == "stop":
                    return
                if kind == "close":
                    self.ws.close(reason=item[1], message=item[2])
                    return
                if kind == "send":
                    self.ws.send(item[1].decode())  # str: a text frame, as JSON.parse expects
                elif kind == "event":
                    self._send_event(item[1], item[2], item[3])
                elif kind == "subscribed":
                    self._start_subscription(item[1], item[2], item[3])
                elif kind == "resync":
                    self._resync(item[1], item[2])
                elif kind == "gaps":
                    self._fill_overdue()
        except (ConnectionClosed, OSError):
            pass
        except Exception:
            log.exception("WebSocket sender failed")
        finally:
            with self._cond:
                self._closing = True
                self._outbox.clear()

    def _send_event(self, job_id: str, seq: int, message: bytes) -> None:
        subscription = self._subscriptions.get(job_id)
        if subscription is None or (subscription.acked and seq <= subscription.last_sent):
            return
        subscription.held[seq] = message
        if subscription.acked:
            self._drain(subscription)

    def _drain(self, subscription: _Subscription) -> None:
        """Send the held events that continue the sequence; time any gap left."""
        while (message := subscription.held.pop(subscription.last_sent + 1, None)) is not None:
            self.ws.send(message.decode())
            subscription.last_sent += 1
        for seq in [s for s in subscription.held if s <= subscription.last_sent]:
            del subscription.held[seq]
        if not subscription.held:
            subscription.gap_since = None
        elif subscription.gap_since is None:
            subscription.gap_since = time.monotonic()
        if len(subscription.held) >= self.services.ws_queue_size:
            self._fill(subscription)

    def _gap_wait(self) -> float | None:
        """Seconds until the oldest open gap is due for a store read; ``None``: no gap."""
        opened = [s.gap_since for s in self._subscriptions.values() if s.gap_since is not None]
        if not opened:
            return None
        return min(opened) + GAP_WAIT - time.monotonic()

    def _fill_overdue(self) -> None:
        due = time.monotonic() - GAP_WAIT
        for subscription in list(self._subscriptions.values()):
            if subscription.gap_since is not None and subscription.gap_since <= due:
                self._fill(subscription)

    def _resync(self, job_id: str, seq: int) -> None:
        subscription = self._subscriptions.get(job_id)
        if subscription is None:
            return
        if not subscription.acked:
            subscription.needs_fill = True
        elif seq == 0 or seq > subscription.last_sent:
            self._fill(subscription)

    def _fill(self, subscription: _Subscription) -> None:
        """Send what the store has beyond ``last_sent``, merged with the held events.

        The store keeps every log line and the newest progress, so a progress
        event lost in transit and already superseded is skipped, as in replay.
        """
        try:
            with self.services.store.read() as conn:
                job = queries.get_job(conn, subscription.job_id)
            replay = [] if job is None else self._replay(job, subscription.last_sent, job["seq"])
        except StoreUnavailable:
            subscription.gap_since = time.monotonic()  # try again in GAP_WAIT seconds
            return
        subscription.gap_since = None
        if job is None:  # pruned meanwhile
            subscription.held.clear()
            return
        upto = int(job["seq"])
        merged = {e.seq: e.message() for e in replay}
        for seq in [s for s in subscription.held if s <= upto]:
            merged.setdefault(seq, subscription.held.pop(seq))
        for seq in sorted(merged):
            if seq > subscription.last_sent:
                self.ws.send(merged[seq].decode())
        subscription.last_sent = max(subscription.last_sent, upto)
        self._drain(subscription)

    def _start_subscription(
        self, subscription: _Subscription, job: dict[str, Any], since: int | None
    ) -> None:
        if self._subscriptions.get(subscription.job_id) is not subscription:
            return  # unsubscribed or subscribed again meanwhile
        upto = int(job["seq"])
        try:
            replay = [] if since is None else self._replay(job, since, upto)
        except StoreUnavailable as exc:
            self._refuse(subscription.job_id, exc)
            return
        self.ws.send(
            dumps(
                {"type": "subscribed", "subscriptionId": subscription.job_id, "seq": upto}
            ).decode()
        )
        for event in replay:
            self.ws.send(event.message().decode())
        if job["completed_seq"] is not None and not any(e.type == "JOB_COMPLETED" for e in replay):
            # A finished job ends every subscription with its completion, even
            # when ``since`` already covers it (or lies beyond: a restored backup).
            self.ws.send(completed_event(job, self.services.clock()).message().decode())
        subscription.last_sent = upto
        subscription.acked = True
        if subscription.needs_fill:
            subscription.needs_fill = False
            self._fill(subscription)
        else:
            self._drain(subscription)

    def _replay(self, job: dict[str, Any], since: int, upto: int) -> list[Event]:
        """What a client that has seen events up to ``since`` missed, in seq order:
        the newest progress, every log line and alert, the completion."""
        events: list[Event] = []
        progress_seq = job["progress_seq"]
        if progress_seq is not None and since < progress_seq <= upto:
            events.append(Event(job["id"], progress_seq, "JOB_PROGRESS", job["progress_event"]))
        with self.services.store.read() as conn:
            events.extend(queries.log_events_after(conn, job["id"], since, upto))
            events.extend(queries.alert_events_after(conn, job["id"], since, upto))
        completed_seq = job["completed_seq"]
        if completed_seq is not None and since < completed_seq <= upto:
            events.append(completed_event(job, self.services.clock()))
        events.sort(key=lambda e: e.seq)
        return events


def _error_body(exc: APIError) -> dict[str, Any]:
    body: dict[str, Any] = exc.to_envelope()["error"]
    return body


def serve_socket(ws: Any, services: Services) -> None:
    """Run one WebSocket connection (the flask-sock route's body)."""
    Session(ws, services).run()
