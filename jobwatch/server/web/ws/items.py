"""What a WebSocket session's sender thread is asked to do: one small type per task.

:class:`~jobwatch.server.web.ws.session.Session` puts these in its bounded queue (the
route thread, the broker and the fleet feed put; only the sender thread
takes), and the sender dispatches on their type. :func:`size` is what an
item counts against the queue's byte bound: its message's bytes plus
:data:`ITEM_COST`, so that no kind of item is free to queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jobwatch.server.core.ws_session import JobStream

__all__ = [
    "ITEM_COST",
    "Close",
    "Deliver",
    "Flush",
    "Item",
    "Pages",
    "Resync",
    "Send",
    "Start",
    "Stop",
    "size",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (one JSON document, UTF-8) as it is: an answer or a fleet message."""

    message: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """A job's event from the broker: sent in ``seq`` order once its subscription is answered."""

    job_id: str
    seq: int
    message: bytes


@dataclass(frozen=True, slots=True)
class Flush:
    """Write the rest of a frame the broker wrote in part (kept by the
    :class:`~jobwatch.server.web.ws.send_lock.LockedSocket`), waiting as long as it takes."""


@dataclass(frozen=True, slots=True)
class Start:
    """Read the job, answer ``subscribed`` for ``subscription``, then replay its events
    after ``since`` (``None``: none). It holds no job row: the sender reads the row
    when it gets to it, so a queue of these costs :data:`ITEM_COST` each."""

    subscription: JobStream
    since: int | None


@dataclass(frozen=True, slots=True)
class Pages:
    """Send each message of ``messages`` in turn, reading the next only when the one
    before is written (a large fleet's first pages, read from the store page by page)."""

    messages: Iterator[bytes]


@dataclass(frozen=True, slots=True)
class Resync:
    """Check a job against the store: its events up to ``seq`` (0: any) may have been lost."""

    job_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with WebSocket close ``code`` and ``reason``; the sender ends."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The connection has closed: the sender ends without writing."""


Item = Send | Deliver | Flush | Start | Pages | Resync | Close | Stop
"""One task for the sender thread."""


ITEM_COST = 256
"""Bytes one queued item counts besides its message: the item, its place in the
queue and (for :class:`Start`) its subscription's record, rounded up."""


def size(item: Item) -> int:
    """Bytes ``item`` counts against the queue's byte bound: its message's length
    (for :class:`Send` and :class:`Deliver`) plus :data:`ITEM_COST`."""
    message = len(item.message) if isinstance(item, (Send, Deliver)) else 0
    return message + ITEM_COST
