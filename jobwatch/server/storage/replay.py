"""What a subscriber missed, read from the store page by page while it is sent.

A job may hold hundreds of megabytes of log lines; a subscriber asking for
them with ``since: 0`` must cost the server one page at a time, not the whole
history. Each page is read with its own connection (under the in-memory
store's lock only while it is read), so a slow reader holds neither the
database nor the writers.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from jobwatch.server.core.job_row import JobRow
from jobwatch.server.core.rules import completed_event
from jobwatch.server.core.serialize import Event
from jobwatch.server.storage import queries
from jobwatch.server.storage.store import Store

REPLAY_PAGE = 256
"""Log lines read per query while replaying: at most 4 MiB of messages (16 KiB each)."""


def replay(store: Store, job: JobRow, since: int, upto: int, now: float) -> Iterator[Event]:
    """Events a client that has seen ``since`` missed up to ``upto``, in seq order:
    the newest progress, every log line and alert, the completion.

    ``job`` is the job row read when the replay began; ``now`` is server time
    for the completion's cost. Lines are read :data:`REPLAY_PAGE` at a time,
    as the iterator is consumed.

    Raises
    ------
    jobwatch.errors.StoreUnavailable
        The database could not be read for a page (503).
    """
    progress_seq, progress_event = job["progress_seq"], job["progress_event"]
    progress = None
    if progress_seq is not None and progress_event is not None and since < progress_seq <= upto:
        progress = Event(job["id"], progress_seq, "JOB_PROGRESS", progress_event)
    logs = queries.log_events(job["id"], _pages(store, job["id"], since, upto))
    alerts = _alerts(store, job["id"], since, upto)
    for event in heapq.merge(logs, alerts, key=lambda e: e.seq):
        if progress is not None and progress.seq < event.seq:
            yield progress
            progress = None
        yield event
    if progress is not None:
        yield progress
    completed_seq = job["completed_seq"]
    if completed_seq is not None and since < completed_seq <= upto:
        yield completed_event(job, now)


def _alerts(store: Store, job_id: str, since: int, upto: int) -> Iterator[Event]:
    while True:
        with store.read() as conn:
            page = queries.alert_events_after(conn, job_id, since, upto, REPLAY_PAGE)
        yield from page
        if len(page) < REPLAY_PAGE:
            return
        since = page[-1].seq


def _pages(store: Store, job_id: str, since: int, upto: int) -> Iterator[list[dict[str, Any]]]:
    after_id = 0
    while True:
        with store.read() as conn:
            rows = queries.log_rows_after(conn, job_id, since, upto, after_id, REPLAY_PAGE)
        yield rows
        if len(rows) < REPLAY_PAGE:
            return
        after_id = rows[-1]["id"]
