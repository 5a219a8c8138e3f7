"""The order of one job's events on a connection (``JobStream``), without sockets.

Each event is written as ``b"<seq>"``; what a test checks is the sequence of
messages the stream tells the connection to send, and when it asks for a
store read. The socket-level behaviour is tests/contract/test_ws_protocol.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobwatch.errors import StoreUnavailable
from jobwatch.server.core.ws_session import GAP_WAIT, JobStream, Next


def m(seq: int) -> bytes:
    return str(seq).encode()


def acked(upto: int = 0, **kwargs: int) -> JobStream:
    stream = JobStream("job", **kwargs)
    assert stream.acknowledged(upto, now=0.0) == Next([])
    return stream


def test_events_before_the_answer_are_held_then_sent_in_order() -> None:
    stream = JobStream("job")
    assert stream.offer(4, m(4), now=0.0) == Next([])
    assert stream.offer(3, m(3), now=0.0) == Next([])
    assert not stream.sends_now(3)
    # the answer covered seq 2 (replayed): 3 and 4 follow it
    assert stream.acknowledged(2, now=0.0) == Next([m(3), m(4)])
    assert stream.last_sent == 4 and stream.held == {} and stream.gap_due_at() is None


def test_an_event_the_answer_or_replay_covered_is_dropped() -> None:
    stream = JobStream("job")
    stream.offer(2, m(2), now=0.0)
    assert stream.acknowledged(5, now=0.0) == Next([])
    assert stream.held == {}
    assert stream.offer(5, m(5), now=1.0) == Next([])  # a repeat after the answer
    assert stream.offer(6, m(6), now=1.0) == Next([m(6)])


def test_the_next_event_may_be_written_at_once_only_in_sequence_with_nothing_held() -> None:
    stream = acked(3)
    assert stream.sends_now(4) and not stream.sends_now(5) and not stream.sends_now(3)
    stream.sent(4)
    stream.offer(6, m(6), now=0.0)  # 5 missing: 6 waits
    assert not stream.sends_now(5)  # 5 must go through the held path, before 6
    assert stream.offer(5, m(5), now=0.0) == Next([m(5), m(6)])
    assert stream.sends_now(7)


def test_a_gap_is_timed_and_due_after_gap_wait() -> None:
    stream = acked(1)
    assert stream.offer(3, m(3), now=10.0) == Next([])
    assert stream.gap_due_at() == 10.0 + GAP_WAIT
    stream.offer(4, m(4), now=10.5)  # the gap's clock does not restart
    assert stream.gap_due_at() == 10.0 + GAP_WAIT
    assert stream.offer(2, m(2), now=10.7) == Next([m(2), m(3), m(4)])
    assert stream.gap_due_at() is None


def test_a_held_backlog_over_the_queue_bounds_asks_for_a_fill() -> None:
    stream = acked(0, max_held=3)
    assert stream.offer(2, m(2), now=0.0) == Next([])
    assert stream.offer(3, m(3), now=0.0) == Next([])
    assert stream.offer(4, m(4), now=0.0) == Next([], fill=True)
    by_bytes = acked(0, max_held_bytes=5)
    assert by_bytes.offer(2, b"abc", now=0.0) == Next([])
    assert by_bytes.offer(3, b"abc", now=0.0) == Next([], fill=True)


def test_a_fill_merges_the_store_with_what_is_held() -> None:
    stream = acked(1)
    stream.offer(3, m(3), now=0.0)  # held beyond the gap (2 missing)
    stream.offer(7, m(7), now=0.0)  # held beyond upto
    # the store: 2 and 4 (a superseded progress event 5 is not replayed), up to 6
    sent = list(stream.merge(6, [(2, m(2)), (4, m(4)), (6, m(6))]))
    assert sent == [m(2), m(3), m(4), m(6)]
    assert stream.last_sent == 6 and stream.gap_due_at() is None
    assert stream.drain(now=1.0) == Next([m(7)])


def test_a_held_event_the_store_also_has_is_sent_once() -> None:
    stream = acked(1)
    stream.offer(3, m(3), now=0.0)
    assert list(stream.merge(3, [(2, m(2)), (3, m(3))])) == [m(2), m(3)]
    assert stream.held == {}


def test_a_store_that_fails_part_way_leaves_the_stream_right_and_retries_later() -> None:
    stream = acked(1)
    stream.offer(4, m(4), now=0.0)

    def stored() -> Iterator[tuple[int, bytes]]:
        yield 2, m(2)
        raise StoreUnavailable("down")

    sent = []
    with pytest.raises(StoreUnavailable):
        for message in stream.merge(5, stored()):
            sent.append(message)
    stream.fill_failed(now=3.0)
    assert sent == [m(2)] and stream.last_sent == 2
    assert stream.gap_due_at() == 3.0 + GAP_WAIT
    assert list(stream.merge(5, [(3, m(3)), (5, m(5))])) == [m(3), m(4), m(5)]


def test_a_job_gone_from_the_store_drops_what_is_held() -> None:
    stream = acked(1)
    stream.offer(3, m(3), now=0.0)
    stream.gone()
    assert stream.held == {} and stream.gap_due_at() is None


def test_a_resync_fills_when_events_up_to_its_seq_may_be_missing() -> None:
    stream = acked(5)
    assert stream.resync(0)  # any
    assert stream.resync(6)
    assert not stream.resync(5)  # all sent


def test_a_resync_before_the_answer_fills_once_acked() -> None:
    stream = JobStream("job")
    assert not stream.resync(3)
    assert stream.acknowledged(2, now=0.0) == Next([], fill=True)
    assert not stream.needs_fill


@given(
    upto=st.integers(0, 5),
    arrivals=st.lists(st.integers(1, 30), max_size=40),
    gaps=st.sets(st.integers(1, 30)),
)
def test_whatever_the_order_each_event_is_sent_once_in_order(
    upto: int, arrivals: list[int], gaps: set[int]
) -> None:
    """Events from the broker in any order, repeated, some lost (``gaps``); a
    fill from the store (which has every event up to 30) completes the stream."""
    stream = JobStream("job")
    sent: list[int] = []
    acked_ = False
    for i, seq in enumerate(a for a in arrivals if a not in gaps):
        if not acked_ and i == len(arrivals) // 2:
            sent += [int(x) for x in stream.acknowledged(upto, now=0.0).send]
            acked_ = True
        sent += [int(x) for x in stream.offer(seq, m(seq), now=0.0).send]
    if not acked_:
        sent += [int(x) for x in stream.acknowledged(upto, now=0.0).send]
    store = [(s, m(s)) for s in range(stream.last_sent + 1, 31)]
    sent += [int(x) for x in stream.merge(30, store)]
    sent += [int(x) for x in stream.drain(now=0.0).send]
    assert sent == list(range(upto + 1, 31))
