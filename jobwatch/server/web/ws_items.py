"""What a WebSocket session's sender thread is asked to do: one small type per task.

:class:`~jobwatch.server.web.ws.Session` puts these in its bounded queue (the
route thread, the broker and the fleet feed put; only the sender thread
takes), and the sender dispatches on their type. :func:`size` is what an
item counts against the queue's byte bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobwatch.server.core.job_row import JobRow
from jobwatch.server.core.ws_session import JobStream

__all__ = [
    "Close",
    "Deliver",
    "Flush",
    "Item",
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
    :class:`~jobwatch.server.web.wslock.LockedSocket`), waiting as long as it takes."""


@dataclass(frozen=True, slots=True)
class Start:
    """Answer ``subscribed`` for ``subscription``, then replay ``job``'s events after ``since``
    (``None``: none)."""

    subscription: JobStream
    job: JobRow
    since: int | None


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


Item = Send | Deliver | Flush | Start | Resync | Close | Stop
"""One task for the sender thread."""


def size(item: Item) -> int:
    """Bytes ``item`` holds (its message), for the queue's byte bound; 0 for the others."""
    return len(item.message) if isinstance(item, (Send, Deliver)) else 0
