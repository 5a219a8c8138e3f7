"""Which threads are doing jobwatch's own I/O, so that log records it causes are never shipped.

A :meth:`Reporter.logging_handler <jobwatch.Reporter.logging_handler>` on the
root logger sees every record of the process, including those jobwatch's own
requests cause: urllib3 logs each request at DEBUG (``"POST /api/... 200"``).
Shipped, each becomes a log line that the next request carries, which logs
again: the job's log grows forever. So the handler drops (see :func:`is_own`)

- every record emitted by a reporter's sender thread (any reporter's), and
- records of the HTTP and WebSocket libraries and of jobwatch itself emitted by
  a thread while it is inside a jobwatch request (:func:`doing_io`): a
  :class:`~jobwatch.client.rest.Client` call or a subscription's ``next()``.

Records are matched by ``LogRecord.thread`` (the emitting thread's ident), so
a handler behind a ``QueueHandler`` decides the same way. No I/O here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["OWN_THREADS", "doing_io", "is_own", "is_own_thread", "own_output", "sender_thread"]

_LIBRARIES = frozenset({"urllib3", "requests", "websocket", "jobwatch"})
"""Top-level logger names whose records jobwatch's own requests cause."""

# Each thread changes only its own entries; single dict and set operations are
# atomic in CPython, so readers on other threads need no lock.
_senders: set[int] = set()
_in_io: dict[int, int] = {}  # thread ident -> depth of nested jobwatch requests
_writers: set[int] = set()  # threads printing jobwatch's own output (own_output)
OWN_THREADS: dict[int, int] = {}
"""Thread ident -> how many of the three marks above it holds now: the threads
doing jobwatch's own work (see :func:`is_own_thread`). Read-only outside this
module; a membership test needs no call (an output capture tests it on every
write)."""


def _enter(ident: int) -> None:
    OWN_THREADS[ident] = OWN_THREADS.get(ident, 0) + 1


def _leave(ident: int) -> None:
    depth = OWN_THREADS.pop(ident) - 1
    if depth:
        OWN_THREADS[ident] = depth


@contextmanager
def sender_thread() -> Iterator[None]:
    """Mark the calling thread, for the ``with`` block, as a reporter's sender thread."""
    ident = threading.get_ident()
    _senders.add(ident)
    _enter(ident)
    try:
        yield
    finally:
        _senders.discard(ident)
        _leave(ident)


@contextmanager
def doing_io() -> Iterator[None]:
    """Mark the calling thread, for the ``with`` block, as inside a jobwatch request."""
    ident = threading.get_ident()
    _in_io[ident] = _in_io.get(ident, 0) + 1
    _enter(ident)
    try:
        yield
    finally:
        depth = _in_io.pop(ident) - 1
        if depth:
            _in_io[ident] = depth
        _leave(ident)


@contextmanager
def own_output() -> Iterator[None]:
    """Mark the calling thread, for the ``with`` block, as printing jobwatch's own
    output (the live text view of ``track()``): an output capture
    (:mod:`jobwatch.report.capture`) prints it but never ships it."""
    ident = threading.get_ident()
    _writers.add(ident)
    _enter(ident)
    try:
        yield
    finally:
        _writers.discard(ident)
        _leave(ident)


def is_own_thread(ident: int) -> bool:
    """Whether the thread ``ident`` is doing jobwatch's own work now: a sender
    thread, one inside a jobwatch request, or one printing jobwatch's output.
    What such a thread prints is never captured as the run's output."""
    return ident in OWN_THREADS


def is_own(record: logging.LogRecord) -> bool:
    """Whether ``record`` was caused by jobwatch's own work (see the module docstring)."""
    thread = record.thread
    if thread is None:  # logging.logThreads is off: nothing to tell threads apart by
        return record.name.partition(".")[0] in _LIBRARIES
    if thread in _senders:
        return True
    return thread in _in_io and record.name.partition(".")[0] in _LIBRARIES


def _forget_threads() -> None:
    """In a forked child only the forking thread exists; its new threads may reuse idents."""
    _senders.clear()
    _in_io.clear()
    _writers.clear()
    OWN_THREADS.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_threads)
