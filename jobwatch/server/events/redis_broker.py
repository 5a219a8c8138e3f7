"""Fan-out across server processes through Redis pub/sub.

Why pub/sub rather than streams: the database already keeps everything a
subscriber can ask for again (``since`` replay reads it), so the broker only
carries live events between processes, once, as fast as it can. Pub/sub does
exactly that and keeps nothing in Redis's memory: no trimming, no consumer
groups, no acknowledgements. What it does not promise (a message sent while a
process is cut off from Redis is gone) is repaired from the database:

- a process whose subscription to Redis broke asks every one of its WebSocket
  subscribers to resync from the database at once, again after each failed
  reconnection (so its viewers follow from the database, seconds behind,
  while Redis is away), and once more when it is back;
- a process whose ``PUBLISH`` failed remembers the newest ``seq`` of each job
  it could not announce and, as soon as Redis answers again, publishes a
  resync notice for those jobs, so every process's subscribers fetch them.

A Redis that stops answering without closing the connection (a partition,
a stopped server) is found by redis-py's own bounds (:func:`client_options`:
connect and read timeouts, TCP keepalive, health checks, one retry) and, on
the subscription, which only ever waits to read, by a PING sent after
``timeout`` seconds of silence whose answer must arrive within ``timeout``
more: redis-py's pub/sub health check sends a PING but does not wait for its
answer.

Ordering: each process publishes after its own commit, so when two processes
write the same job, seq 7 can reach Redis before seq 6. Sessions therefore
deliver a job's events strictly by ``seq`` and hold a later one until the gap
fills (see :mod:`jobwatch.server.web.ws.session`).

One channel for every job: each process receives every event and keeps those
its subscribers want (a dict lookup on a short header, no JSON parsing). The
channel is subscribed before the process serves, so "register, then read the
job" stays race-free exactly as in one process. Its cost is (event rate x
processes) messages for Redis to send; ``server/README.md`` says when that
matters.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from jobwatch.contract.backoff import Backoff
from jobwatch.server.core.serialize import Event
from jobwatch.server.events.broker import (
    DEFAULT_CHANNEL,
    DEFAULT_REDIS_TIMEOUT,
    MemoryBroker,
    Subscriber,
)

log = logging.getLogger(__name__)

MAX_QUEUED = 100_000
"""Most events waiting to be published; beyond it they are left to resync."""
KEEPALIVE_INTERVAL = 1
"""Seconds between TCP keepalive probes once a connection has been idle ``timeout`` s."""
KEEPALIVE_COUNT = 3
"""Unanswered keepalive probes after which the kernel breaks the connection."""


def client_options(timeout: float, *, retries: int = 1) -> dict[str, Any]:
    """redis-py options bounding every wait on Redis by ``timeout`` seconds:
    connect and read timeouts, TCP keepalive after ``timeout`` idle seconds
    (:data:`KEEPALIVE_COUNT` probes :data:`KEEPALIVE_INTERVAL` s apart), a
    health check of a connection idle for ``timeout`` seconds before its next
    command, and ``retries`` retries of a command that failed on a broken
    connection. (The subscription takes none: redis-py would reconnect and
    subscribe again without a word, and the events of the gap would be lost
    without a resync.)"""
    keepalive: dict[int, int] = {}
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's defaults
        keepalive = {
            socket.TCP_KEEPIDLE: max(1, math.ceil(timeout)),
            socket.TCP_KEEPINTVL: KEEPALIVE_INTERVAL,
            socket.TCP_KEEPCNT: KEEPALIVE_COUNT,
        }
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive,
        "health_check_interval": timeout,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=retries),
    }


_EVENT = b"E"
_RESYNC = b"R"


class RedisBroker:
    """Publishes committed events to Redis; delivers what any process publishes
    to this process's subscribers.

    Parameters
    ----------
    url:
        ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
    channel:
        Pub/sub channel shared by the processes of one deployment.
    timeout:
        Seconds Redis may take to connect or answer (:func:`client_options`);
        the subscription is checked after as many silent seconds.

    The constructor waits up to ``timeout`` seconds for the subscription, then
    returns whether or not Redis answered (with a warning if not): a process
    started while Redis is away serves, its viewers following from the
    database, and subscribes as soon as Redis answers (:attr:`connected`).
    """

    def __init__(
        self,
        url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
    ) -> None:
        self.url = url
        self.channel = channel
        self.timeout = timeout
        self._local = MemoryBroker()
        self._redis: Any = redis.Redis.from_url(url, **client_options(timeout))
        self._subscriber: Any = redis.Redis.from_url(url, **client_options(timeout, retries=0))
        # Guarded by _queue_lock (reentrant): events waiting for the publisher,
        # and the newest seq per job that could not be announced.
        self._queue: deque[Event] = deque()
        self._unsent: dict[str, int] = {}
        self._queue_lock = threading.Condition(threading.RLock())
        self._closed = threading.Event()
        self._ready = threading.Event()
        self._last_error: BaseException | None = None
        self._listener = threading.Thread(
            target=self._listen, name="jobwatch-redis-listener", daemon=True
        )
        self._listener.start()
        self._publisher = threading.Thread(
            target=self._publish_loop, name="jobwatch-redis-publisher", daemon=True
        )
        self._publisher.start()
        self._ready.wait(timeout)

    @property
    def connected(self) -> bool:
        """Whether the subscription to Redis is up now."""
        return self._ready.is_set()

    # -- the Broker protocol ----------------------------------------------

    def subscribe(self, job_id: str, subscriber: Subscriber) -> None:
        """Start delivering ``job_id``'s events, from any process, to ``subscriber``."""
        self._local.subscribe(job_id, subscriber)

    def unsubscribe(self, job_id: str, subscriber: Subscriber) -> None:
        """Stop delivering ``job_id``'s events to ``subscriber`` (no error if not subscribed)."""
        self._local.unsubscribe(job_id, subscriber)

    def subscriber_count(self, job_id: str | None = None) -> int:
        """Number of subscriptions in this process, to one job or to all."""
        return self._local.subscriber_count(job_id)

    def publish(self, events: Iterable[Event]) -> None:
        """Queue events for every process, in the order given; returns at once.

        A publisher thread sends whatever is queued in one round trip, so the
        store's writer never waits on Redis. If Redis is unreachable (or more
        than :data:`MAX_QUEUED` events wait), the events stay in the database
        and a resync notice for their jobs goes out once Redis answers again.
        """
        batch = list(events)
        if not batch:
            return
        with self._queue_lock:
            if len(self._queue) + len(batch) > MAX_QUEUED:
                self._remember_unsent([(e.job_id, e.seq) for e in batch], "too many events waiting")
                return
            self._queue.extend(batch)
            self._queue_lock.notify()

    def close(self) -> None:
        """Send what is queued (for up to 3 s), stop listening and forget every subscriber."""
        with self._queue_lock:
            self._closed.set()
            self._queue_lock.notify()
        self._publisher.join(3.0)
        self._listener.join(3.0)
        self._local.close()
        self._redis.close()
        self._subscriber.close()

    # -- publisher thread -----------------------------------------------

    def _publish_loop(self) -> None:
        while True:
            with self._queue_lock:
                while not self._queue and not self._closed.is_set():
                    self._queue_lock.wait(1.0 if self._unsent else None)
                    if self._unsent and not self._queue:
                        break
                batch = list(self._queue)
                self._queue.clear()
            if batch:
                self._send(batch)
            if self._unsent:
                self._send_resyncs()
            if self._closed.is_set() and not self._queue:
                return

    def _send(self, batch: list[Event]) -> None:
        frames = [_frame(_EVENT, e.job_id, e.seq, e.message()) for e in batch]
        if not self._publish_frames(frames):
            self._remember_unsent([(e.job_id, e.seq) for e in batch], "Redis did not answer")

    def _publish_frames(self, frames: list[bytes]) -> bool:
        """PUBLISH ``frames`` in one round trip; ``False`` if Redis did not take them."""
        pipe = self._redis.pipeline(transaction=False)
        for frame in frames:
            pipe.publish(self.channel, frame)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            self._last_error = exc
            return False
        return True

    # -- publishing failures ------------------------------------------------

    def _merge_unsent(self, events: Iterable[tuple[str, int]]) -> bool:
        """Note the newest unannounced seq of each job; ``True`` if none was noted before."""
        with self._queue_lock:
            first = not self._unsent
            for job_id, seq in events:
                self._unsent[job_id] = max(self._unsent.get(job_id, 0), seq)
        return first

    def _remember_unsent(self, events: list[tuple[str, int]], why: object) -> None:
        """Note unpublished events; warn when an outage starts (``why`` says how)."""
        if self._merge_unsent(events):
            log.warning(
                "cannot publish to Redis (%s: %s); events are stored and subscribers "
                "will fetch them once Redis is back",
                why,
                self._last_error,
            )

    def _send_resyncs(self) -> None:
        with self._queue_lock:
            pending, self._unsent = self._unsent, {}
        if not pending:
            return
        frames = [_frame(_RESYNC, job_id, seq, b"") for job_id, seq in pending.items()]
        if self._publish_frames(frames):
            log.warning("Redis is back; asked subscribers of %d jobs to resync", len(pending))
        else:
            self._merge_unsent(pending.items())  # still away: try again in a second

    # -- listener thread -------------------------------------------------

    def _listen(self) -> None:
        backoff = Backoff(base=0.1, cap=self.timeout)
        reconnecting = False
        lost_at = 0.0
        while not self._closed.is_set():
            pubsub = self._subscriber.pubsub()
            try:
                pubsub.subscribe(self.channel)
                self._confirmed(pubsub)
                if self._closed.is_set():
                    return
                self._ready.set()
                backoff.reset()
                if reconnecting:
                    log.warning(
                        "Redis subscription restored after %.1f s; subscribers resync",
                        time.monotonic() - lost_at,
                    )
                    self._local.resync(None)
                self._pump(pubsub)
            except (redis.RedisError, OSError) as exc:
                self._last_error = exc
                if self._ready.is_set() or not reconnecting:
                    lost_at = time.monotonic()
                    log.warning(
                        "lost the Redis subscription (%s); reconnecting, and meanwhile "
                        "this process's viewers read new events from the database",
                        exc or type(exc).__name__,
                    )
                self._ready.clear()
                reconnecting = True
                # Events of other processes may be passing by unseen: every
                # subscriber fetches what the database has, now and after each
                # failed attempt, until the subscription is back.
                self._local.resync(None)
                self._closed.wait(backoff.next_delay())
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()

    def _confirmed(self, pubsub: Any) -> None:
        """Wait for the subscription's confirmation, at most ``timeout`` seconds.

        Raises
        ------
        redis.TimeoutError
            None came in time.
        """
        deadline = time.monotonic() + self.timeout
        while pubsub.get_message(timeout=min(1.0, self.timeout)) is None:
            if self._closed.is_set():
                return
            if time.monotonic() >= deadline:
                raise redis.TimeoutError(
                    f"Redis did not confirm the subscription within {self.timeout:g} s"
                )

    def _pump(self, pubsub: Any) -> None:
        """Deliver what comes until closed; after ``timeout`` silent seconds send a
        PING, whose answer must come within ``timeout`` more.

        Raises
        ------
        redis.TimeoutError
            The PING was not answered in time (Redis is cut off or stopped).
        """
        heard = time.monotonic()
        pinged: float | None = None
        while not self._closed.is_set():
            message = pubsub.get_message(timeout=min(1.0, self.timeout))
            now = time.monotonic()
            if message is not None:
                heard, pinged = now, None
                if message["type"] == "message":
                    self._dispatch(message["data"])
            elif pinged is not None and now - pinged >= self.timeout:
                raise redis.TimeoutError(f"Redis did not answer a PING within {self.timeout:g} s")
            elif pinged is None and now - heard >= self.timeout:
                pubsub.ping()
                pinged = now

    def _dispatch(self, data: bytes) -> None:
        header, _, body = data.partition(b"\n")
        try:
            kind, job, seq_text = header.split(b" ")
            job_id = job.decode()
            seq = int(seq_text)
        except ValueError:
            log.warning("ignoring a malformed message on %s: %r", self.channel, data[:80])
            return
        if kind == _EVENT:
            self._local.deliver(job_id, seq, body)
        elif kind == _RESYNC:
            self._local.resync(job_id, seq)


def _frame(kind: bytes, job_id: str, seq: int, body: bytes) -> bytes:
    """``KIND JOB SEQ\\n`` + body; job ids hold no spaces or newlines (protocol.valid_job_id)."""
    return b"%s %s %d\n%s" % (kind, job_id.encode(), seq, body)
