"""Group commit: one writer thread runs every write, many per transaction.

Request threads hand the writer an *operation* and wait. The writer takes all
operations waiting at that moment, runs them in one transaction, commits once,
then publishes their events in commit order and wakes the requests. A request
is answered only after its commit, so an acknowledged update survives
``kill -9``, while the commit cost is shared by every request in the batch.

Because one thread applies every write of this process, checks such as "is
the job bound to another worker" and the per-job ``seq`` counter need no
further locking here. Across processes (PostgreSQL) each operation locks its
job's row; a batch runs its operations sorted by job id (stable, so one job's
writes keep their order), so two processes' batches always lock rows in the
same order and cannot deadlock each other.
An operation must raise its :class:`~jobwatch.errors.APIError` before it
writes anything; any other exception rolls the batch back and its operations
are retried one transaction each, so one bad operation never fails the others.

Under gevent (the worker of ``jobwatch serve``) the writer is a greenlet, and
SQLite's commit (its ``fsync``) is a C call that would hold the event loop:
a slow disk would pause every request and WebSocket send for as long. There
the two calls of a SQLite transaction that wait on something outside the
process run in a real OS thread from gevent's thread pool while the writer
greenlet waits cooperatively: ``BEGIN IMMEDIATE`` (it may wait for another
process's write lock) and the commit. The statements between them run in the
greenlet: they only touch the OS's page cache, and running their Python work
in a second thread made the two threads take turns on the GIL. The events are
published and the requests woken from the writer greenlet, after the commit.
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from jobwatch.errors import APIError, StoreClosed, StoreUnavailable, first_line
from jobwatch.server.core.serialize import Event

log = logging.getLogger(__name__)

UNAVAILABLE_WARNING_EVERY = 10.0
"""Seconds between two warnings that the database is unavailable."""

R = TypeVar("R")
Operation = Callable[[Connection], tuple[R, list[Event]]]
"""Runs inside the writer's transaction; returns (result, events to publish after commit)."""


@dataclass
class _Pending(Generic[R]):
    op: Operation[R]
    key: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    abandoned: bool = False


class GroupCommitWriter:
    """Serialises writes through one thread and commits them in batches.

    Parameters
    ----------
    engine:
        The SQLAlchemy engine to write through.
    publish:
        Called with the events of each committed batch, in commit order, from
        the writer thread; must not block (the broker only enqueues).
    lock:
        Held around each transaction; the ``:memory:`` SQLite store shares one
        connection between readers and the writer and passes its lock here.
    max_batch:
        Most operations in one transaction.
    begin:
        Called first in each transaction with the batch's sorted distinct keys
        (the store reads and locks their job rows in one statement).
    finish:
        Called last in each transaction, before the commit (the store writes
        what it queued).
    unavailable:
        Exceptions meaning the database cannot be reached: a batch failing
        with one fails whole, with one warning per
        :data:`UNAVAILABLE_WARNING_EVERY` seconds, instead of being retried.
    wait_timeout:
        Most seconds :meth:`submit` waits for its commit (``None``: no limit);
        then it raises :class:`~jobwatch.errors.StoreUnavailable`.
    """

    def __init__(
        self,
        engine: Engine,
        publish: Callable[[list[Event]], None],
        *,
        lock: Any = None,
        max_batch: int = 512,
        begin: Callable[[Connection, list[str]], None] | None = None,
        finish: Callable[[Connection], None] | None = None,
        unavailable: tuple[type[BaseException], ...] = (),
        wait_timeout: float | None = None,
    ) -> None:
        self._engine = engine
        self._wait_timeout = wait_timeout
        self._unavailable = unavailable
        self._last_warning = -math.inf
        self._begin = begin
        self._finish = finish
        self._publish = publish
        self._lock = lock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._os_thread = _commits_off_the_loop(engine, lock)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="jobwatch-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Operation[R], *, key: str = "") -> R:
        """Run ``op`` in the next batch and return its result once committed.

        ``key`` is the id of the job ``op`` locks: a batch runs in key order.

        Raises
        ------
        APIError
            What ``op`` raised; nothing of it was written.
        StoreClosed
            The writer has stopped.
        StoreUnavailable
            No commit within ``wait_timeout`` seconds. A write not yet begun
            is then never applied; one already sent to the database may still
            be (a retried update with an ``updateId`` is applied once).
        """
        if self._closed:
            raise StoreClosed("the store is closed")
        pending: _Pending[R] = _Pending(op, key)
        self._queue.put(pending)
        if not pending.done.wait(self._wait_timeout):
            pending.abandoned = True
            raise StoreUnavailable(
                f"the database did not commit this write within {self._wait_timeout:g} s;"
                " retry shortly"
            )
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[no-any-return]

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued writes and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                break
        self._fail_rest()

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        for pending in batch:
            if pending.abandoned:  # its request already answered 503: never apply it
                pending.error = StoreClosed("abandoned")
        batch = [p for p in batch if not p.abandoned]
        if not batch:
            return
        batch.sort(key=_lock_order)
        try:
            self._transaction(batch)
        except self._unavailable as exc:
            # The database is away: one by one would fail the same way, and a
            # traceback per batch would bury the log during an outage.
            self._warn_unavailable(exc)
            for pending in batch:
                pending.error = exc
        except Exception:
            log.exception("group commit of %d writes failed; retrying one by one", len(batch))
            for pending in batch:
                pending.error = None
                try:
                    self._transaction([pending])
                except Exception as exc:
                    pending.error = exc
        events = [e for p in batch if p.error is None for e in p.events]
        if events:
            try:
                self._publish(events)
            except Exception:
                log.exception("publishing %d events failed", len(events))
        for pending in batch:
            pending.done.set()

    def _warn_unavailable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= UNAVAILABLE_WARNING_EVERY:
            self._last_warning = now
            log.warning(
                "the database is unavailable; writes answer 503 until it is back: %s",
                first_line(exc),
            )

    def _transaction(self, batch: list[_Pending[Any]]) -> None:
        if self._lock is not None:
            with self._lock:
                self._apply(batch)
        else:
            self._apply(batch)

    def _apply(self, batch: list[_Pending[Any]]) -> None:
        with self._engine.connect() as conn, conn.begin() as transaction:
            if self._os_thread:
                # Take SQLite's write lock first, where waiting for another
                # process's transaction (busy_timeout) holds no greenlet.
                self._off_the_loop(conn.exec_driver_sql, "BEGIN IMMEDIATE")
            if self._begin is not None:
                self._begin(conn, sorted({p.key for p in batch if p.key}))
            for pending in batch:
                try:
                    pending.result, pending.events = pending.op(conn)
                except APIError as exc:
                    pending.error = exc
            if self._finish is not None:
                self._finish(conn)
            self._off_the_loop(transaction.commit)

    def _off_the_loop(self, call: Callable[..., Any], *args: Any) -> None:
        """``call(*args)`` in a native thread of gevent's pool where the store's
        waits would hold the event loop (a SQLite file under gevent), else here."""
        if self._os_thread:
            # The failure comes back here and is raised in the writer: raised in
            # the pool, gevent would also print its traceback, once per commit
            # (a full disk filled the log with them).
            error = _gevent_hub().threadpool.apply(_failure_of, (call, *args))
            if error is not None:
                raise error
        else:
            call(*args)

    def _fail_rest(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.error = StoreClosed("the store is closed")
                item.done.set()


def _failure_of(call: Callable[..., Any], *args: Any) -> BaseException | None:
    """Run ``call(*args)``; return what it raised instead of raising it."""
    try:
        call(*args)
    except BaseException as exc:  # handed back to the writer, which raises it
        return exc
    return None


def _lock_order(pending: _Pending[Any]) -> str:
    return pending.key


def _commits_off_the_loop(engine: Engine, lock: Any) -> bool:
    """Whether transactions run in a native thread: gevent has patched this
    process and the store is a SQLite file. (PostgreSQL's waits already go
    through the event loop; the ``:memory:`` store shares its one connection
    with the readers under ``lock``.)"""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return False
    return lock is None and engine.dialect.name == "sqlite"


def _gevent_hub() -> Any:
    import gevent

    return gevent.get_hub()
