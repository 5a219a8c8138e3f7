"""Following one job for a front-end: what the notebook monitor and ``jobwatch watch`` share.

:class:`JobFollower` starts from ``/monitor``, then follows the job's
WebSocket stream from that snapshot's ``seq`` (nothing between the two is
missed; the :class:`~jobwatch.client.subscription.Subscription` reconnects and
resumes with ``since`` by itself). A job that does not exist yet is waited
for: the state says ``"waiting"`` and ``/monitor`` is asked again every
``wait_interval`` seconds. A reader thread turns what arrives into typed
:data:`Update` values; the render loop applies them to the pure
:class:`~jobwatch.view.state.MonitorState` and hands the state to a
:class:`JobView`: a change after a quiet moment at once, a steady stream of
changes at most once per ``refresh`` seconds on average beyond a ``burst``
(:class:`~jobwatch.view.render_pace.RenderPace`; tqdm's ``mininterval`` idea),
and at least every ``tick`` seconds so elapsed time moves on.

The render loop runs in the caller's thread (:meth:`JobFollower.run`, for
``jobwatch watch``) or in a thread of its own (:meth:`JobFollower.start`,
for the notebook, whose kernel thread must stay free).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jobwatch.contract.answers import (
    JobEvent,
    LogLine,
    Monitor,
    Sample,
    ScalarValue,
    WorkersPage,
)
from jobwatch.contract.basics import FINISHED_STATUSES
from jobwatch.errors import ConnectionError, JobNotFound, RetryLater
from jobwatch.view.log_filter import LogFilter
from jobwatch.view.render_pace import RenderPace
from jobwatch.view.state import MonitorState

if TYPE_CHECKING:
    from jobwatch.client.rest import Client
    from jobwatch.client.subscription import Subscription

__all__ = [
    "ConnectionChanged",
    "HistoryLoaded",
    "JobFollower",
    "JobView",
    "ScalarsLoaded",
    "Snapshot",
    "StreamEnded",
    "StreamEvent",
    "Update",
    "WorkersLoaded",
]

log = logging.getLogger(__name__)

NEWEST = 2**62
"""``beforeId`` that asks ``GET /logs`` for the newest lines (beyond any line id)."""
WORKERS_PER_SECOND = 64
"""Ranks of ``/workers`` a follower reads a second at most, spread over its reads (see
:meth:`JobFollower._workers_wait`)."""
WORKER_ALERTS = ("worker_silent", "straggler")
"""Alert sources that say a worker changed: ``/workers`` is read again at once."""


# -- what the reader (and the user's actions) hand the render loop ------------


@dataclass(frozen=True)
class Snapshot:
    """A ``/monitor`` answer for a job that was waited for and now exists."""

    data: Monitor


@dataclass(frozen=True)
class StreamEvent:
    """One stream event (``{type, jobId, seq, data}``) to apply."""

    event: JobEvent


@dataclass(frozen=True)
class ConnectionChanged:
    """The subscription's state: ``connecting``, ``live``, ``reconnecting`` or ``closed``."""

    state: str


@dataclass(frozen=True)
class ScalarsLoaded:
    """The job's training metrics from ``/scalars``, by name, to merge with those events brought."""

    series: Mapping[str, Sequence[ScalarValue]]


@dataclass(frozen=True)
class HistoryLoaded:
    """``/metrics`` rows (oldest first) that replace the chart samples (a new time range)."""

    rows: Sequence[Sample]


@dataclass(frozen=True)
class SnapshotHistory:
    """The first ``/monitor`` answer's samples (oldest first), applied after the first
    render and put before the samples that arrived meanwhile."""

    rows: Sequence[Sample]


@dataclass(frozen=True)
class WorkersLoaded:
    """A ``/workers`` answer: a distributed job's ranks."""

    answer: WorkersPage


@dataclass(frozen=True)
class StreamEnded:
    """The reader has stopped: after the job's end, on :meth:`JobFollower.close`, or on
    ``error``."""

    error: Exception | None = None


Update = (
    Snapshot
    | StreamEvent
    | ConnectionChanged
    | ScalarsLoaded
    | HistoryLoaded
    | SnapshotHistory
    | WorkersLoaded
    | StreamEnded
)
"""One thing for the render loop to apply to the state."""


class JobView(Protocol):
    """What shows a followed job."""

    def render(self, state: MonitorState, connection: str) -> None:
        """Show ``state``; ``connection`` is the link's label to show instead of
        ``state.connection`` (``"ended"`` once the job has ended, ``"offline"`` after a
        long reconnection)."""


# -- the follower ---------------------------------------------------------------


class JobFollower:
    """Keep a :class:`~jobwatch.view.state.MonitorState` of one job current and show it.

    The ``/monitor`` snapshot is read at once, in the constructor.

    Parameters
    ----------
    client:
        The server: ``monitor``, ``subscribe`` and (with ``load_scalars``) ``scalars``.
    job_id:
        The job to follow.
    wait:
        Wait for a job that does not exist yet (:attr:`waiting`) instead of raising
        :class:`~jobwatch.errors.JobNotFound`. A server whose database is away
        (503 ``store_unavailable``) is waited for either way, the connection
        shown as ``"reconnecting"``.
    wait_interval:
        Seconds between two looks for that job (or for the database).
    refresh:
        Seconds per render of changes under sustained load (0: render as soon as
        something came); ticks do not count.
    burst:
        Renders of changes that go at once after a quiet moment, before ``refresh``
        paces them.
    tick:
        Seconds between two renders at most, while nothing comes (elapsed time moves on).
    load_scalars:
        Load the job's training metrics (``/scalars``, at most ``scalar_points`` a
        metric) each time the stream goes live, and once for a job already ended: a
        resumed stream replays only the newest progress event.
    scalar_points:
        Points per training metric asked of ``/scalars``.
    log_tail:
        Keep only the newest ``log_tail`` of a snapshot's log lines as new (``None``: all).
    log_filter:
        With ``log_tail``: the lines a view keeps (one rank or node); the newest
        ``log_tail`` of those are read from ``/logs`` to start with, since the
        snapshot's last lines may hold few of them.
    offline_after:
        Seconds of failed reconnection after which the label says ``"offline"``
        (``None``: never).
    workers_interval:
        Seconds between two reads of ``/workers`` while a distributed job runs (its
        ranks' status, progress and rate; at once after a worker alert, and once
        more at the job's end; a job of more than ``64 x workers_interval`` ranks
        is read every ranks / 64 seconds), in a thread of its own; ``None``: never read. A job
        is known to be distributed by its ``worldSize``, or by a log line with a
        rank or a GPU with a node.
    distributed_view:
        Once the job shows it is distributed, ask the server for the progress events
        that change what a viewer shows only (``progress: "changes"``: the other
        ranks repeat rank 0's figures); see also :meth:`change_view`.
    raise_errors:
        End :meth:`run` with the stream's or the view's error instead of logging it
        (the stream's: showing the connection ``"offline"`` and carrying on).
    name:
        Thread names: ``{name}-read-{job_id}`` and ``{name}-render-{job_id}``.

    Raises
    ------
    jobwatch.errors.JobNotFound
        The job does not exist (not with ``wait``).
    jobwatch.errors.APIError
        The server refused ``/monitor`` otherwise.
    jobwatch.errors.ConnectionError
        The server cannot be reached.
    """

    def __init__(
        self,
        client: Client,
        job_id: str,
        *,
        wait: bool = True,
        wait_interval: float = 0.5,
        refresh: float = 0.0,
        burst: int = 1,
        tick: float = 1.0,
        load_scalars: bool = False,
        scalar_points: int = 2_000,
        log_tail: int | None = None,
        log_filter: LogFilter | None = None,
        offline_after: float | None = None,
        workers_interval: float | None = None,
        distributed_view: bool = False,
        raise_errors: bool = False,
        name: str = "jobwatch-follow",
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.wait_interval = wait_interval
        self.refresh = refresh
        self.burst = burst
        self.tick = tick
        self.load_scalars = load_scalars
        self.scalar_points = scalar_points
        self.log_tail = log_tail
        self.log_filter = log_filter
        self.offline_after = offline_after
        self.workers_interval = workers_interval
        self.distributed_view = distributed_view
        self._view_logs = LogFilter()  # the log lines asked of the server
        self._view_changes = False  # progress: "changes" asked of the server
        self.raise_errors = raise_errors
        self.name = name
        self.state = MonitorState()
        self.subscription: Subscription | None = None
        self.error: Exception | None = None
        """What stopped the stream, once it has."""
        self.wake = threading.Event()
        """Set it to render soon (the view changed something of its own)."""
        self.shown_final = threading.Event()
        """Set once the job has ended and its end has been rendered."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[Update] = []
        self._stream_ended = False
        self._reconnecting_since: float | None = None
        self._view: JobView | None = None
        self._wait_for_missing = wait
        self._reader: threading.Thread | None = None
        self._loop_thread: threading.Thread | None = None
        self._workers_thread: threading.Thread | None = None
        self._distributed = threading.Event()  # /workers is worth reading
        self._workers_due = threading.Event()  # read /workers now (a worker alert)
        self.waiting = not self._first_snapshot(wait)
        self._note_distributed()

    # -- life cycle ---------------------------------------------------------------

    def start(self, view: JobView) -> JobFollower:
        """Render once now, then follow in two threads (reader and render loop); returns ``self``."""
        self._begin(view)
        self._loop_thread = threading.Thread(
            target=self._loop_logged, name=f"{self.name}-render-{self.job_id}", daemon=True
        )
        self._loop_thread.start()
        return self

    def run(self, view: JobView) -> MonitorState:
        """Render now and follow in this thread until the job's end is rendered (or
        :meth:`close`); returns the state.

        Raises
        ------
        Exception
            With ``raise_errors``: what stopped the stream (e.g.
            :class:`~jobwatch.errors.JobNotFound` when the job was deleted,
            :class:`~jobwatch.errors.ConnectionError`), or what the view raised.
        KeyboardInterrupt
            After closing the stream.
        """
        try:
            self._begin(view)
            self._loop()
        finally:
            self._stop_reader(2.0)
        return self.state

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job's end is rendered; ``False`` on timeout (seconds; ``None``:
        no limit) or when closed before."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.shown_final.is_set():
            if self._stop.is_set():
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.shown_final.wait(0.1 if left is None else min(0.1, left))
        return True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._stop.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop following: the threads end (waited for up to ``timeout`` seconds each)
        and the socket closes; then a last render says ``"closed"`` unless the job has
        ended. Idempotent."""
        if self._stop.is_set():
            return
        self._stop_reader(timeout)
        loop = self._loop_thread
        if loop is not None and loop is not threading.current_thread():
            loop.join(timeout)
        if not self.state.finished:
            self.put(ConnectionChanged("closed"))
        if self._view is not None:
            with contextlib.suppress(Exception):  # a kernel may be shutting down
                self.render_now()

    def change_view(
        self, *, log_filter: LogFilter | None = None, changes: bool | None = None
    ) -> None:
        """Ask the server for another view of the stream (from any thread): only the log
        lines of ``log_filter``, and with ``changes`` only the progress events that
        change what is shown (docs/api.md "Streaming"). A live subscription changes
        at once and resumes from the last event delivered."""
        with self._lock:
            if log_filter is not None:
                self._view_logs = log_filter
            if changes is not None:
                self._view_changes = changes
            subscription = self.subscription
            view = self._view_keywords()
        if subscription is not None:
            subscription.change_view(**view)

    def _view_keywords(self) -> dict[str, Any]:
        """The keywords of ``subscribe`` for the view asked for (lock held)."""
        shown = self._view_logs
        return {
            "log_rank": shown.rank,
            "log_node": shown.node,
            "progress": "changes" if self._view_changes else "all",
        }

    def put(self, update: Update) -> None:
        """Hand ``update`` to the render loop (from any thread)."""
        with self._lock:
            self._pending.append(update)
        self.wake.set()

    def render_now(self) -> None:
        """Apply what has come and render (the render loop does this by itself)."""
        self._apply_pending()
        if self._view is not None:
            self._view.render(self.state, self.connection())

    def connection(self) -> str:
        """The label of the link: ``state.connection``, ``"ended"`` once the job ended,
        ``"offline"`` after ``offline_after`` seconds of reconnection."""
        state = self.state.connection
        if self.state.finished:
            return "ended"
        if state != "reconnecting" or self.offline_after is None:
            self._reconnecting_since = None
            return state
        now = time.monotonic()
        self._reconnecting_since = self._reconnecting_since or now
        return "offline" if now - self._reconnecting_since > self.offline_after else state

    # -- the snapshot and the reader ------------------------------------------------

    def _first_snapshot(self, wait: bool) -> bool:
        """Load ``/monitor``; ``False`` (the state "waiting") while the job does not exist."""
        try:
            snapshot = self.client.monitor(self.job_id)
        except JobNotFound:
            if not wait:
                raise
            self.state.job = {"id": self.job_id}
            self.state.set_connection("waiting")
            return False
        except RetryLater as exc:  # the server's database away for a moment: wait for it
            log.info("jobwatch: the server cannot answer for %r yet (%s)", self.job_id, exc)
            self.state.job = {"id": self.job_id}
            self.state.set_connection("reconnecting")
            return False
        # The first render shows the job at once; the render loop adds the history.
        self._load(snapshot, history=False)
        rows = (snapshot.get("metrics") or {}).get("history") or []
        if rows:
            self.put(SnapshotHistory(rows))
        return True

    def _load(self, snapshot: Monitor, *, history: bool = True) -> None:
        self.state.load_snapshot(snapshot, history=history)
        if self.log_tail is None:
            return
        if self.log_filter is not None and self.log_filter.active:
            self.state.new_logs = self._filtered_tail(self.log_tail)
        del self.state.new_logs[: -self.log_tail or None]  # the snapshot's newest only

    def _filtered_tail(self, most: int) -> list[LogLine]:
        """The newest ``most`` lines of :attr:`log_filter` up to the snapshot's newest line
        (newer ones come with the stream); the snapshot's own on failure."""
        assert self.log_filter is not None
        held = [line for line in self.state.new_logs if self.log_filter.matches(line)]
        if most <= 0 or not self.state.logs:  # no line before the snapshot: all to come
            return held
        newest = self.state.logs[-1]["id"]
        try:
            page = self.client.logs(
                self.job_id, limit=min(most, 1000), before_id=NEWEST, **self.log_filter.params()
            )
        except Exception as exc:  # the snapshot's lines of that rank will do
            log.debug("jobwatch: reading the log lines of %r: %s", self.job_id, exc)
            return held
        return [line for line in page["logs"] if (line.get("id") or 0) <= (newest or 0)]

    def _begin(self, view: JobView) -> None:
        self._view = view
        # What is pending (the first snapshot's history) waits for the render loop.
        view.render(self.state, self.connection())
        self._reader = threading.Thread(
            target=self._read, name=f"{self.name}-read-{self.job_id}", daemon=True
        )
        self._reader.start()
        if self._distributed.is_set() and self.workers_interval is not None:
            self._start_workers()

    def _start_workers(self) -> None:
        """Start reading ``/workers`` in a thread of its own (once; a job of one worker
        never has that thread)."""
        if self._workers_thread is not None or self._view is None or self._stop.is_set():
            return
        self._workers_thread = threading.Thread(
            target=self._poll_workers, name=f"{self.name}-workers-{self.job_id}", daemon=True
        )
        self._workers_thread.start()

    def _stop_reader(self, timeout: float) -> None:
        self._stop.set()
        with self._lock:
            subscription = self.subscription
        if subscription is not None:
            subscription.close()
        self.wake.set()
        self._workers_due.set()
        for thread in (self._reader, self._workers_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    def _poll_workers(self) -> None:
        """Read ``/workers`` every ``workers_interval`` seconds while the distributed job
        runs (sooner when a worker alert asks), and once more after its end."""
        assert self.workers_interval is not None
        while not self._stop.is_set():
            self._workers_due.clear()  # an alert from now on asks for another read
            if self._distributed.is_set():
                ended = self.state.finished
                try:
                    answer = self.client.workers(self.job_id)
                except Exception as exc:  # the stream says what is wrong with the server
                    log.debug("jobwatch: reading the workers of %r: %s", self.job_id, exc)
                else:
                    self.put(WorkersLoaded(answer))
                    if ended:
                        return
            self._workers_due.wait(self._workers_wait())

    def _workers_wait(self) -> float:
        """Seconds to the next read of ``/workers``: ``workers_interval``, longer for a
        job of many ranks (one second per :data:`WORKERS_PER_SECOND` ranks listed: 8 s
        for 512), whose list is read, decoded and shown in full each time."""
        assert self.workers_interval is not None
        return max(self.workers_interval, len(self.state.workers) / WORKERS_PER_SECOND)

    def _note_distributed(self, event: JobEvent | None = None) -> None:
        """Start reading ``/workers`` once the job shows it is distributed, and read it
        at once after an event that changes its workers."""
        if self.workers_interval is None and not self.distributed_view:
            return
        kind = event.get("type") if event is not None else None
        data: Any = (event.get("data") if event is not None else None) or {}
        if not self._distributed.is_set():
            first: Any = {}
            if kind == "JOB_LOGS":
                first = (data.get("logs") or [{}])[0]
            elif kind == "JOB_PROGRESS":
                first = ((data.get("metrics") or {}).get("gpus") or [{}])[0]
            if self.state.distributed or "rank" in first or "node" in first:
                self._distributed.set()
                self._workers_due.set()
                if self.distributed_view:
                    self.change_view(changes=True)
                if self.workers_interval is not None:
                    self._start_workers()
        source = (data.get("alert") or {}).get("source") if kind == "JOB_ALERT" else None
        if kind == "JOB_COMPLETED" or source in WORKER_ALERTS:
            self._workers_due.set()

    def _read(self) -> None:
        error: Exception | None = None
        try:
            since, finished = self.state.seq, self.state.finished
            if self.waiting:
                snapshot = self._wait_for_job()
                if snapshot is None:
                    return
                since = int(snapshot.get("seq", 0))
                finished = snapshot["job"].get("status") in FINISHED_STATUSES
            if finished:  # nothing more will come: no stream to follow
                if self.load_scalars:
                    self._load_scalars()
                return
            with self._lock:
                if self._stop.is_set():
                    return
                viewed = self._view_logs.active or self._view_changes
                self.subscription = self.client.subscribe(
                    self.job_id,
                    since,
                    on_state=self._on_state,
                    **(self._view_keywords() if viewed else {}),
                )
            for event in self.subscription:
                self.put(StreamEvent(event))
        except Exception as exc:  # a dead stream must not end the thread silently
            error = exc
        finally:
            self.put(StreamEnded(error))

    def _wait_for_job(self) -> Monitor | None:
        """Look for the job every ``wait_interval`` seconds; ``None`` if closed first."""
        while not self._stop.wait(self.wait_interval):
            try:
                snapshot = self.client.monitor(self.job_id)
            except JobNotFound:
                if not self._wait_for_missing:
                    raise
                continue
            except Exception as exc:  # the server away for a moment: keep waiting
                log.debug("jobwatch: looking for job %r: %s", self.job_id, exc)
                continue
            self.put(Snapshot(snapshot))
            return snapshot
        return None

    def _on_state(self, state: str) -> None:
        """The subscription's state; each time it goes live, the training metrics
        posted before (a resumed stream replays only the newest progress event, so
        points carried by earlier ones come from ``/scalars``)."""
        self.put(ConnectionChanged(state))
        if state == "live" and self.load_scalars:
            self._load_scalars()

    def _load_scalars(self) -> None:
        try:
            series = self.client.scalars(self.job_id, max_points=self.scalar_points)
        except Exception as exc:
            log.warning("jobwatch: could not load the training metrics of %r: %s", self.job_id, exc)
            return
        self.put(ScalarsLoaded(series))

    # -- the render loop -------------------------------------------------------------

    def _loop_logged(self) -> None:
        try:
            self._loop()
        except Exception:  # only with raise_errors; a thread has no caller to tell
            log.exception("jobwatch: following job %r failed", self.job_id)

    def _loop(self) -> None:
        pace = RenderPace(self.refresh, self.burst)
        while not self._stop.is_set():
            # A tick (nothing came) only moves elapsed time on: it is not paced.
            if self.wake.wait(self.tick):
                wait = pace.wait(time.monotonic())
                if wait > 0 and self._stop.wait(wait):
                    break
                pace.drew(time.monotonic())
            self.wake.clear()
            self._apply_pending()
            if self.error is not None and self.raise_errors:
                raise self.error
            done = self.state.finished and self._stream_ended
            if done:
                self.state.set_connection("ended")
            try:
                self.render_now()
            except Exception:
                if self.raise_errors:
                    raise
                log.exception("jobwatch: rendering job %r failed", self.job_id)
            if done:
                self.shown_final.set()
                return

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for update in pending:
            self._apply(update)

    def _apply(self, update: Update) -> None:
        state = self.state
        if isinstance(update, StreamEvent):
            state.apply(update.event)
            self._note_distributed(update.event)
        elif isinstance(update, WorkersLoaded):
            state.set_workers(update.answer)
        elif isinstance(update, ConnectionChanged):
            state.set_connection(update.state)
        elif isinstance(update, ScalarsLoaded):
            state.merge_scalars(update.series)
        elif isinstance(update, HistoryLoaded):
            state.replace_samples(update.rows)
        elif isinstance(update, SnapshotHistory):
            state.add_history(update.rows)
        elif isinstance(update, Snapshot):
            self._load(update.data)
            state.set_connection("connecting")
            self._note_distributed()
        else:
            self._stream_ended = True
            self.error = update.error
            if self.error is None and not state.finished and not self._stop.is_set():
                self.error = ConnectionError(f"the event stream of {self.job_id!r} ended early")
            if self.error is not None and not self.raise_errors:  # run() raises it
                log.warning("jobwatch: the stream of job %r stopped: %s", self.job_id, self.error)
                state.set_connection("offline")
