"""The WebSocket endpoint ``/ws``: subscriptions, ``since`` replay and live events.

Each connection has two threads besides simple-websocket's reader: the route
thread reads client messages, and a sender thread is the only one that writes
to the socket. Everything to send goes through one send queue bounded in messages
and in bytes, so the broker's ``deliver`` is an append and a slow subscriber
never delays a worker or another subscriber. The one shortcut: an event for a
connection whose sender is idle with nothing queued (and in sequence, and no
compression negotiated) is written by ``deliver`` itself, the frame built once
for every subscriber and written without waiting; a remainder the socket's
buffer cannot take is left to the sender (see :mod:`jobwatch.server.web.ws.frames`). When the send queue is full the
subscriber is disconnected with close code 1008 and a reason; it can
reconnect and resume with ``since``. A replay is read from the store a page
at a time as it is sent, and a client that stops reading is dropped once one
send has waited ``send_timeout`` seconds (see :class:`~jobwatch.server.web.services.Services`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from simple_websocket import ConnectionClosed

from jobwatch.contract.requests import (
    SubscribeJobsMessage,
    SubscribeMessage,
    UnsubscribeJobsMessage,
    parse_client_message,
    valid_job_id,
)
from jobwatch.errors import (
    APIError,
    Forbidden,
    JobNotFound,
    StoreUnavailable,
    TooManySubscriptions,
)
from jobwatch.server.core import tenancy
from jobwatch.server.core.event_view import EventView
from jobwatch.server.core.rules import completed_event
from jobwatch.server.core.serialize import Event, dumps
from jobwatch.server.core.tenancy import ADMIN, Principal
from jobwatch.server.core.ws_session import JobStream, Next
from jobwatch.server.events.fleet_feed import FLEET
from jobwatch.server.storage import queries
from jobwatch.server.storage.replay import replay
from jobwatch.server.web.services import Services
from jobwatch.server.web.ws.frames import frame_once, plain_frames
from jobwatch.server.web.ws.items import (
    Close,
    Deliver,
    Flush,
    Item,
    Pages,
    Resync,
    Send,
    Start,
    Stop,
    size,
)
from jobwatch.server.web.ws.send_lock import LockedSocket

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
"""WebSocket close code (RFC 6455, 7.4.1) used when a subscriber falls too far behind."""
INTERNAL_ERROR = 1011
"""WebSocket close code (RFC 6455, 7.4.1) for an unexpected server error."""
GOING_AWAY = 1001
"""WebSocket close code (RFC 6455, 7.4.1) sent when the server stops."""
FORCE_CLOSE_AFTER = 5.0
"""Seconds a disconnected slow subscriber gets to take its close frame before the socket is cut."""


MAX_JOB_SUBSCRIPTIONS = 128
"""Jobs one connection may be subscribed to at once; one more is refused with
``too_many_subscriptions`` (subscribing again to a job held counts once)."""


class Session:
    """One WebSocket connection: its subscriptions and its send queue.

    The order of each job's events (what is held, gaps, resyncs) is kept by a
    :class:`~jobwatch.server.core.ws_session.JobStream`; this class does the
    reading and writing it asks for."""

    def __init__(self, ws: Any, services: Services, principal: Principal = ADMIN) -> None:
        self.ws = ws
        self.services = services
        self.principal = principal
        self._cond = threading.Condition()
        self._send_queue: deque[Item] = deque()
        self._queued_bytes = 0
        self._send_started: float | None = None
        self._closing = False
        self._busy = False  # the sender is working on an item (guarded by _cond)
        self._plain = plain_frames(ws)  # frames shared with other connections
        self._subscriptions: dict[str, JobStream] = {}
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
                self._send_queue.clear()
                self._send_queue.append(Close(INTERNAL_ERROR, "internal server error"))
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
            logs = message.logs
            view = EventView(
                rank=logs.rank if logs is not None else None,
                node=logs.node if logs is not None else None,
                changes_only=message.progress == "changes",
            )
            try:
                self._subscribe(job_id, message.since, view)
            except APIError as exc:  # the database is unavailable: say so, keep the connection
                self._refuse(job_id, exc)
        else:
            with self._cond:
                self._subscriptions.pop(job_id, None)
            self.services.broker.unsubscribe(job_id, self)
            self._send_control({"type": "unsubscribed", "subscriptionId": job_id})

    def _subscribe(self, job_id: str, since: int | None, view: EventView) -> None:
        """Subscribe to ``job_id`` with ``view``: a job held already is subscribed afresh
        (one subscription, its queued start replaced: how a client changes its view);
        past :data:`MAX_JOB_SUBSCRIPTIONS` jobs the subscription is refused. The row is
        read by the sender (see :class:`~jobwatch.server.web.ws.items.Start`)."""
        subscription = JobStream(
            job_id, self.services.ws_queue_size, self.services.ws_queue_bytes, view=view
        )
        with self._cond:
            refused = (
                job_id not in self._subscriptions
                and len(self._subscriptions) >= MAX_JOB_SUBSCRIPTIONS
            )
            if not refused:
                self._subscriptions[job_id] = subscription
                self._drop_queued_start(job_id)
        if refused:
            error = TooManySubscriptions(
                f"this connection already holds {MAX_JOB_SUBSCRIPTIONS} job subscriptions, "
                "the most allowed; unsubscribe from one or open another connection"
            )
            self._send_control(
                {"type": "error", "subscriptionId": job_id, "error": _error_body(error)}
            )
            return
        # Subscribe before reading the job: an event committed after the read is
        # then surely queued, and one already read is skipped by its seq.
        self.services.broker.subscribe(job_id, self)
        exists, owner = False, None
        if valid_job_id(job_id):
            with self.services.store.read() as conn:
                exists, owner = queries.job_owner(conn, job_id)
        if not exists or not tenancy.can_read(self.principal, owner, job_id):
            self._refuse(job_id, JobNotFound(f"no job with id {job_id!r}"))
            return
        self._put(Start(subscription, since))

    def _drop_queued_start(self, job_id: str) -> None:
        """Remove a queued, not yet started :class:`Start` for ``job_id`` (lock held):
        the new subscription replaces it."""
        for i, item in enumerate(self._send_queue):
            if isinstance(item, Start) and item.subscription.job_id == job_id:
                del self._send_queue[i]
                self._queued_bytes -= size(item)
                return

    def subscription_count(self) -> int:
        """Jobs this connection is subscribed to (for monitoring and tests)."""
        with self._cond:
            return len(self._subscriptions)

    def queued_items(self) -> int:
        """Items queued for the sender (for monitoring and tests)."""
        with self._cond:
            return len(self._send_queue)

    def _subscribe_jobs(self, message: SubscribeJobsMessage) -> None:
        """The fleet: ``subscribed`` then ``JOBS_CHANGED`` (see :mod:`jobwatch.server.events.fleet_feed`)."""
        if self.services.fleet is None:
            return
        try:
            scope = tenancy.list_scope(self.principal)
            self.services.fleet.subscribe(self, message.status, message.since, scope)
        except (StoreUnavailable, Forbidden) as exc:
            self._send_control(
                {"type": "error", "subscriptionId": FLEET, "error": _error_body(exc)}
            )

    def deliver_fleet(self, message: bytes) -> None:
        """Queue one ``JOBS_CHANGED`` message (called by the fleet feed; never blocks)."""
        self._put(Send(message))

    def deliver_fleet_pages(self, pages: Iterator[bytes]) -> None:
        """Queue the fleet's later first pages, read by the sender as it sends them
        (called by the fleet feed; never blocks)."""
        self._put(Pages(pages))

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
            self._send_queue.append(Stop())
            self._cond.notify()
        for job_id in jobs:
            self.services.broker.unsubscribe(job_id, self)
        if self.services.fleet is not None:
            self.services.fleet.unsubscribe(self)
        self._sender.join(FORCE_CLOSE_AFTER + 1)

    # -- broker side -----------------------------------------------------

    def deliver(self, job_id: str, seq: int, message: bytes) -> None:
        """Write one event now if the connection is idle, else queue it (called by
        the broker; never blocks)."""
        with self._cond:
            if not self._write_now(job_id, seq, message):
                self._put(Deliver(job_id, seq, message))

    def _write_now(self, job_id: str, seq: int, message: bytes) -> bool:
        """Write the event's shared frame (or what the subscription's view makes of it)
        without waiting, when nothing is queued or being sent and it is the next in
        sequence; whether it was taken (a remainder the socket kept is queued as
        :class:`Flush`, a frame it could not take at all as :class:`Send`). Lock held."""
        if self._busy or self._send_queue or self._closing or not self._plain:
            return False
        subscription = self._subscriptions.get(job_id)
        if subscription is None or not subscription.sends_now(seq):
            return False
        sock = self.ws.sock
        if not self.ws.connected or not isinstance(sock, LockedSocket):
            return False
        shown = subscription.view.apply(message, time.monotonic())  # once: it keeps state
        subscription.sent(seq)
        if shown is None:  # left out of this subscriber's view
            return True
        written = sock.try_send(frame_once(shown))
        if written is None:
            self._put(Send(shown))
        elif not written:
            self._send_queue.append(Flush())
            self._cond.notify()
        return True

    def resync(self, job_id: str, seq: int) -> None:
        """Queue a check of ``job_id`` against the store: events up to ``seq``
        (0: any) may have been lost between processes (called by the broker)."""
        self._put(Resync(job_id, seq))

    def queued_bytes(self) -> int:
        """Bytes of events and answers queued unsent on this connection (for monitoring)."""
        with self._cond:
            return sum(map(size, self._send_queue))

    def _send_control(self, body: dict[str, Any]) -> None:
        self._put(Send(dumps(body)))

    def _put(self, item: Item) -> None:
        bytes_ = size(item)
        with self._cond:
            if self._closing:
                return
            if len(self._send_queue) >= self.services.ws_queue_size:
                self._overflow(f"{self.services.ws_queue_size} messages queued unsent")
                return
            if self._queued_bytes + bytes_ > self.services.ws_queue_bytes:
                self._overflow(f"more than {self.services.ws_queue_bytes} bytes queued unsent")
                return
            self._send_queue.append(item)
            self._queued_bytes += bytes_
            self._cond.notify()

    def _overflow(self, what: str) -> None:
        """Drop the backlog and close: called with the lock held."""
        reason = f"subscriber too slow: {what}; reconnect with since"
        log.warning("disconnecting a WebSocket subscriber: %s", reason)
        self._close_now(reason)
        timer = threading.Timer(FORCE_CLOSE_AFTER, self._cut)
        timer.daemon = True
        timer.start()

    def _close_now(self, reason: str) -> None:
        """Drop the backlog and queue the close frame: called with the lock held."""
        self._closing = True
        self._send_queue.clear()
        self._queued_bytes = 0
        self._send_queue.append(Close(POLICY_VIOLATION, reason))
        self._cond.notify()

    def stalled(self, now: float) -> bool:
        """Whether one send has waited more than ``send_timeout`` seconds for the
        client to read (``now``: ``time.monotonic()``)."""
        started = self._send_started
        return started is not None and now - started > self.services.send_timeout

    def drop_stalled(self) -> None:
        """Disconnect a client that stopped reading (called by the services' watchdog)."""
        timeout = self.services.send_timeout
        log.warning("disconnecting a WebSocket client that read nothing for %g s", timeout)
        with self._cond:
            self._close_now(f"client stopped reading for {timeout:g} s; reconnect with since")
        self._cut()

    def revoke(self, reason: str = "token revoked") -> None:
        """Close the connection because its token was revoked or expired (close code
        1008, policy violation; called by the services' watch); ``reason`` (the
        close frame's, at most 123 bytes) says which: "token revoked" or
        "token expired"."""
        with self._cond:
            if self._closing:
                return
            self._close_now(reason)
        log.info("closed a WebSocket whose token is no longer in force")
        timer = threading.Timer(FORCE_CLOSE_AFTER, self._cut)
        timer.daemon = True
        timer.start()

    def shutdown(self) -> None:
        """Close the connection because the server stops (close code 1001, going away)."""
        with self._cond:
            self._closing = True
            self._send_queue.clear()
            self._queued_bytes = 0
            self._send_queue.append(Close(GOING_AWAY, "server shutting down"))
            self._cond.notify()
        self._sender.join(1.0)
        self._cut()

    def _cut(self) -> None:
        """Cut the connection under a peer that stopped reading: this unblocks a
        sender stuck writing, and a route thread still waiting for the reply to
        a close frame that fitted in the socket's buffer but was never read."""
        sock: socket.socket | None = getattr(self.ws, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- sender thread ---------------------------------------------------

    def _send_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    self._busy = False
                    while not self._send_queue:
                        wait = self._gap_wait()
                        if wait is not None and wait <= 0:
                            break
                        self._cond.wait(wait)
                    item = self._send_queue.popleft() if self._send_queue else None
                    self._busy = True
                    if item is not None:
                        self._queued_bytes -= size(item)
                if item is None:  # a gap is due: read the missing events from the store
                    self._fill_overdue()
                elif isinstance(item, Stop):
                    return
                elif isinstance(item, Close):
                    self.ws.close(reason=item.code, message=item.reason)
                    return
                elif isinstance(item, Send):
                    self._send(item.message)
                elif isinstance(item, Deliver):
                    self._send_event(item.job_id, item.seq, item.message)
                elif isinstance(item, Flush):
                    self._flush()
                elif isinstance(item, Start):
                    self._start_subscription(item.subscription, item.since)
                elif isinstance(item, Pages):
                    for message in item.messages:
                        self._send(message)
                else:
                    self._resync(item.job_id, item.seq)
        except (ConnectionClosed, OSError):
            pass
        except Exception:
            log.exception("WebSocket sender failed")
        finally:
            with self._cond:
                self._closing = True
                self._send_queue.clear()
                self._queued_bytes = 0

    def _send(self, message: bytes) -> None:
        """Send one JSON message as a text frame (as ``JSON.parse`` expects), timed
        for the watchdog."""
        self._send_started = time.monotonic()
        try:
            if self._plain and isinstance(self.ws.sock, LockedSocket):
                if not self.ws.connected:
                    raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
                self.ws.sock.send(frame_once(message))  # what ws.send would write
            else:
                self.ws.send(message.decode())
        finally:
            self._send_started = None

    def _flush(self) -> None:
        """Write the rest of a frame ``deliver`` wrote in part, timed for the watchdog."""
        self._send_started = time.monotonic()
        try:
            self.ws.sock.flush()
        finally:
            self._send_started = None

    def _send_event(self, job_id: str, seq: int, message: bytes) -> None:
        subscription = self._subscriptions.get(job_id)
        if subscription is not None:
            self._do(subscription, subscription.offer(seq, message, time.monotonic()))

    def _do(self, subscription: JobStream, step: Next) -> None:
        """Send what ``step`` says, then fill from the store if it says so."""
        for message in step.send:
            self._send_viewed(subscription, message)
        if step.fill:
            self._fill(subscription)

    def _send_viewed(self, subscription: JobStream, message: bytes) -> None:
        """Send one event of ``subscription`` as its view shows it (perhaps not at all)."""
        shown = subscription.view.apply(message, time.monotonic())
        if shown is not None:
            self._send(shown)

    def _gap_wait(self) -> float | None:
        """Seconds until the oldest open gap is due for a store read; ``None``: no gap."""
        due = [s.gap_due_at() for s in self._subscriptions.values()]
        opened = [at for at in due if at is not None]
        return min(opened) - time.monotonic() if opened else None

    def _fill_overdue(self) -> None:
        now = time.monotonic()
        for subscription in list(self._subscriptions.values()):
            due = subscription.gap_due_at()
            if due is not None and due <= now:
                self._fill(subscription)

    def _resync(self, job_id: str, seq: int) -> None:
        subscription = self._subscriptions.get(job_id)
        if subscription is not None and subscription.resync(seq):
            self._fill(subscription)

    def _fill(self, subscription: JobStream) -> None:
        """Send what the store has beyond what was sent, merged with the held events."""
        try:
            with self.services.store.read() as conn:
                job = queries.get_job(conn, subscription.job_id)
        except StoreUnavailable:
            subscription.fill_failed(time.monotonic())
            return
        if job is None:  # pruned meanwhile
            subscription.gone()
            return
        upto = int(job["seq"])
        stored = replay(
            self.services.store, job, subscription.last_sent, upto, self.services.clock()
        )
        try:
            for message in subscription.merge(upto, ((e.seq, e.message()) for e in stored)):
                self._send_viewed(subscription, message)
        except StoreUnavailable:
            subscription.fill_failed(time.monotonic())
            return
        self._do(subscription, subscription.drain(time.monotonic()))

    def _start_subscription(self, subscription: JobStream, since: int | None) -> None:
        if self._subscriptions.get(subscription.job_id) is not subscription:
            return  # unsubscribed or subscribed again meanwhile
        try:
            with self.services.store.read() as conn:
                job = queries.get_job(conn, subscription.job_id)
        except StoreUnavailable as exc:
            self._refuse(subscription.job_id, exc)
            return
        if job is None:  # deleted (pruned) since the subscription was taken
            missing = JobNotFound(f"no job with id {subscription.job_id!r}")
            self._refuse(subscription.job_id, missing)
            return
        upto = int(job["seq"])
        if since is not None and since > upto:
            # The client holds a history this job never had (the database was
            # replaced, or restored from an older backup): it gets the job from
            # its start, and the ack's seq, below its since, tells it so.
            since = 0
        events: Iterator[Event] = iter(())
        if since is not None:
            events = replay(self.services.store, job, since, upto, self.services.clock())
        try:
            # The first page is read before the answer: a store that is down
            # refuses the subscription rather than breaking it off.
            first = next(events, None)
        except StoreUnavailable as exc:
            self._refuse(subscription.job_id, exc)
            return
        self._send(
            dumps({"type": "subscribed", "subscriptionId": subscription.job_id, "seq": upto})
        )
        completed = False
        try:
            for event in itertools.chain([] if first is None else [first], events):
                self._send_viewed(subscription, event.message())
                completed = completed or event.type == "JOB_COMPLETED"
        except StoreUnavailable as exc:
            self._refuse(subscription.job_id, exc)
            return
        if job["completed_seq"] is not None and not completed:
            # A finished job ends every subscription with its completion, even
            # when ``since`` already covers it (CONTRACT.md: "A finished job
            # sends its JOB_COMPLETED right after the ack").
            self._send(completed_event(job, self.services.clock()).message())
        self._do(subscription, subscription.acknowledged(upto, time.monotonic()))


def _error_body(exc: APIError) -> dict[str, Any]:
    body: dict[str, Any] = exc.to_envelope()["error"]
    return body


def serve_socket(ws: Any, services: Services, principal: Principal = ADMIN) -> None:
    """Run one WebSocket connection (the flask-sock route's body) for ``principal``,
    who its token proves (:mod:`jobwatch.server.core.tenancy`)."""
    if getattr(ws, "sock", None) is not None and not isinstance(ws.sock, LockedSocket):
        ws.sock = LockedSocket(ws.sock)  # simple-websocket's own thread writes pings too
    Session(ws, services, principal).run()
