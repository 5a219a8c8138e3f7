"""The order of one job's events on one WebSocket connection, without I/O.

A subscriber must get a job's events once each, in ``seq`` order, with none
missing, although they reach a connection from several places: the replay
after ``since``, the broker (in process, or over Redis from other processes,
where one may come late or be lost) and reads of the store that fill a gap.
:class:`JobStream` is that bookkeeping for one subscription: it says which
messages to send now and when the store must be read, and the connection
(:class:`jobwatch.server.web.ws.session.Session`) does the sending and the reading, as
:mod:`jobwatch.server.core.rules` is driven by the store. Nothing here reads a
clock, a socket or the store; times are passed in (monotonic seconds).

The rules:

- Until the ``subscribed`` answer and its replay are out, every event is held.
- After it, an event that continues the sequence is sent at once, with the
  held ones that follow it; one already sent is dropped.
- An event beyond a gap is held. A gap open for :data:`GAP_WAIT` seconds (its
  events were committed elsewhere but not yet published here, or were lost),
  a held backlog over the connection's queue bounds, or a resync asked by the
  broker (it may have lost events between processes) fills from the store:
  the store's events beyond what was sent, merged in ``seq`` order with those
  held.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from jobwatch.server.core.event_view import EventView

__all__ = ["GAP_WAIT", "JobStream", "Next"]

GAP_WAIT = 1.0
"""Seconds a session holds a job's later events while an earlier ``seq`` is missing
(another process has committed it but not yet published it) before reading the
missing events from the store."""


class Next(NamedTuple):
    """What to do after a step: ``send`` these messages in order, then read the
    store (:meth:`JobStream.merge`) if ``fill``."""

    send: list[bytes]
    fill: bool = False


_NOTHING = Next([])


@dataclass
class JobStream:
    """One job subscribed on one connection: what was sent, what is held, and gaps.

    Parameters
    ----------
    job_id:
        The job.
    max_held, max_held_bytes:
        The connection's queue bounds (messages, bytes): a held backlog that
        reaches either is filled from the store at once rather than after
        :data:`GAP_WAIT`.

    Attributes
    ----------
    acked:
        The ``subscribed`` answer (and its replay) is out.
    last_sent:
        The ``seq`` of the newest event sent.
    held:
        Events that cannot be sent yet, by ``seq``: all of them until ``acked``,
        then those beyond a gap.
    gap_since:
        Monotonic seconds since when a gap has been open (or a store read
        failed and waits to be tried again); ``None`` without one.
    needs_fill:
        A resync came before ``acked``: fill once acked.
    view:
        What the subscriber asked to see (:class:`~jobwatch.server.core.event_view.EventView`);
        the connection applies it to each event it sends.
    """

    job_id: str
    max_held: int = 1024
    max_held_bytes: int = 8 * 1024 * 1024
    acked: bool = False
    last_sent: int = 0
    held: dict[int, bytes] = field(default_factory=dict)
    gap_since: float | None = None
    needs_fill: bool = False
    view: EventView = field(default_factory=EventView)

    def sends_now(self, seq: int) -> bool:
        """Whether event ``seq`` may be written at once, bypassing any queue: the
        stream is acked, holds nothing and ``seq`` is the next one. The caller
        that writes it (through :attr:`view`) calls :meth:`sent`."""
        return self.acked and not self.held and seq == self.last_sent + 1

    def sent(self, seq: int) -> None:
        """Event ``seq`` was written (by the caller, after :meth:`sends_now`)."""
        self.last_sent = seq

    def offer(self, seq: int, message: bytes, now: float) -> Next:
        """An event from the broker: hold it, and say what can be sent now."""
        if self.acked and seq <= self.last_sent:
            return _NOTHING
        self.held[seq] = message
        return self.drain(now) if self.acked else _NOTHING

    def acknowledged(self, upto: int, now: float) -> Next:
        """The ``subscribed`` answer with ``seq`` ``upto`` and its replay are out."""
        self.last_sent = upto
        self.acked = True
        if self.needs_fill:
            self.needs_fill = False
            return Next([], fill=True)
        return self.drain(now)

    def resync(self, seq: int) -> bool:
        """The broker may have lost events up to ``seq`` (0: any): whether to
        fill from the store now (before the answer, it is noted for then)."""
        if not self.acked:
            self.needs_fill = True
            return False
        return seq == 0 or seq > self.last_sent

    def gap_due_at(self) -> float | None:
        """Monotonic time at which the open gap is due for a store read; ``None``: no gap."""
        return None if self.gap_since is None else self.gap_since + GAP_WAIT

    def drain(self, now: float) -> Next:
        """Take the held events that continue the sequence; time any gap left."""
        out: list[bytes] = []
        while (message := self.held.pop(self.last_sent + 1, None)) is not None:
            out.append(message)
            self.last_sent += 1
        for seq in [s for s in self.held if s <= self.last_sent]:
            del self.held[seq]
        if not self.held:
            self.gap_since = None
        elif self.gap_since is None:
            self.gap_since = now
        held = self.held
        over = len(held) >= self.max_held or sum(map(len, held.values())) > self.max_held_bytes
        return Next(out, fill=over)

    def fill_failed(self, now: float) -> None:
        """The store could not be read: try again in :data:`GAP_WAIT` seconds."""
        self.gap_since = now

    def gone(self) -> None:
        """The store no longer has the job (pruned): nothing held can be sent."""
        self.gap_since = None
        self.held.clear()

    def merge(self, upto: int, stored: Iterable[tuple[int, bytes]]) -> Iterator[bytes]:
        """The messages to send, in order, to bring the stream up to ``upto``.

        ``stored`` is the store's events after :attr:`last_sent` up to ``upto``
        (``(seq, message)``, in ``seq`` order; the store keeps every log line
        and the newest progress, so a progress event lost and since superseded
        is not among them). Held events up to ``upto`` are merged in. Each
        message is counted sent when the next is asked for, so the stream stays
        right if ``stored`` raises part-way (call :meth:`fill_failed`); once
        exhausted, call :meth:`drain` for what was held beyond ``upto``.
        """
        self.gap_since = None
        held = sorted(s for s in self.held if s <= upto)
        for seq, message in stored:
            while held and held[0] < seq:
                yield from self._held(held.pop(0))
            self.held.pop(seq, None)
            yield message
            self.last_sent = seq
        for seq in held:
            yield from self._held(seq)
        self.last_sent = max(self.last_sent, upto)

    def _held(self, seq: int) -> Iterator[bytes]:
        message = self.held.pop(seq, None)
        if message is not None and seq > self.last_sent:
            yield message
            self.last_sent = seq
