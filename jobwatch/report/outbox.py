"""What a reporter holds between the training loop and its sender thread.

:class:`Outbox` is the only object both threads touch: the training loop
records into it (a lock, a few assignments, no I/O), the sender takes from it
and marks what it delivered, so that a flush can wait for that. No I/O here.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

LogLine = tuple[int, str, str, float]
"""A queued log line: (sequence number, level, message, creation time in epoch seconds).
Sequence 0 marks the reporter's own note about dropped lines."""
ScalarStep = tuple[int, int, dict[str, float]]
"""Queued training metrics: (sequence number, step, {name: finite value})."""


class ReporterJob(NamedTuple):
    """The job a reporter reports on: what its ``PUT /api/jobs/{id}`` sends
    (``price_per_hour`` in ``currency`` per hour). The server validates that body
    as :class:`jobwatch.contract.requests.JobSpec`."""

    job_id: str
    worker_id: str
    name: str | None = None
    price_per_hour: float | None = None
    currency: str | None = None
    world_size: int | None = None  # a distributed job's ranks (PUT's worldSize)
    rank_fields: Mapping[str, Any] | None = None  # rank, worldSize, node... sent in every update
    budget: float | None = None  # most the job should cost, in currency (PUT's budget)

    @property
    def leader(self) -> bool:
        """Whether this reporter speaks for the job: one worker alone, or rank 0."""
        return self.rank_fields is None or self.rank_fields.get("rank") == 0


class BudgetState(NamedTuple):
    """A job's spend against its budget, as the server's last progress reply gave it:
    ``budget`` (``None``: none set), ``cost_so_far`` and ``estimated_total_cost``
    (``None``: unknown) in ``currency``, and ``over_budget`` (the cost so far has
    reached the budget)."""

    budget: float | None
    cost_so_far: float | None
    estimated_total_cost: float | None
    currency: str
    over_budget: bool

    @classmethod
    def of(cls, reply: Mapping[str, Any]) -> BudgetState:
        """The state a ``POST /progress`` reply gives."""
        return cls(
            reply.get("budget"),
            reply.get("costSoFar"),
            reply.get("estimatedTotalCost"),
            str(reply.get("currency", "")),
            bool(reply.get("overBudget")),
        )


class Completion(NamedTuple):
    """The final ``POST /complete``: status ``completed``, ``failed`` or ``cancelled``, result,
    error text (made safe for the wire and cut to 16 KiB by the sender), and ``at``:
    when the job ended, on the sender's worker clock (set by the sender; seconds
    since the epoch)."""

    status: str
    result: Any = None
    error: str | None = None
    at: float | None = None


class Outbox:
    """The newest progress state and the queued log lines, under one lock.

    Parameters
    ----------
    max_log_lines:
        Lines kept at most; when full, the oldest is dropped and counted. The
        same bound holds for queued training-metric steps.

    Notes
    -----
    ``version`` counts state changes (:meth:`record` writes the state without
    the lock, the version last: read the version before the state), ``log_seq`` log lines and ``scalar_seq``
    training-metric steps; the sender raises ``sent_version``,
    ``sent_log_seq`` and ``sent_scalar_seq`` as it delivers (or drops) and
    notifies ``delivered``, on which a flush waits for its mark.
    ``on_record``, when set, is called before the next record, log line,
    training-metric step or alert (a forked child's sender starts its thread then).
    ``on_line``, when set, is called after a log line or an alert is queued
    (the sender wakes, to send it soon).
    """

    def __init__(self, max_log_lines: int) -> None:
        self.lock = threading.Lock()
        self.delivered = threading.Condition(self.lock)
        self.progress: float | None = None
        self.operation: str | None = None
        self.backwards = False  # update(..., allow_backwards=True) since the last send
        self.resumed_from: float | None = None  # percent a track(initial=) loop started at
        self.silence: float | None = None  # expect_silence(): seconds the code may be quiet
        self.version = 0
        self.sent_version = 0
        self.logs: deque[LogLine] = deque()
        self.max_log_lines = max_log_lines
        self.log_seq = 0
        self.sent_log_seq = 0
        self.dropped = 0
        self.alerts: list[dict[str, str]] = []  # at most MAX_ALERTS, the newest dropped
        self.scalars: deque[ScalarStep] = deque()
        self.scalar_seq = 0
        self.sent_scalar_seq = 0
        self.dropped_scalars = 0
        self.scalar_points = 0  # values in the queued steps
        self.dropped_points = 0  # values in the steps dropped (dropped_scalars)
        self.config: dict[str, Any] | None = None  # the job's config, sent with the next PUT
        self.price_per_hour: float | None = None  # a new price (set_price), sent with the next PUT
        self.config_version = 0  # config or price changes; the sender raises sent_config_version
        self.sent_config_version = 0
        self.on_record: Callable[[], None] | None = None  # called before the next record
        self.on_line: Callable[[], None] | None = None  # called after a line or alert is queued

    def record(
        self, progress: float | None, operation: str | None, allow_backwards: bool = False
    ) -> None:
        """Keep the newest state; ``None`` leaves that field as it was (the hot path).

        ``allow_backwards`` lets ``progress`` go below what the job had when the
        reporter attached to it.
        """
        start = self.on_record  # read once: another thread may clear it meanwhile
        if start is not None:
            start()
        if allow_backwards:
            with self.lock:
                self.backwards = True
        # No lock on the hot path (it was most of update()'s cost): each store is
        # atomic under the GIL, and the version goes last, so a sender that reads
        # the version first and the fields after sends a state at least that new.
        if progress is not None:
            self.progress = progress
        if operation is not None:
            self.operation = operation
        self.version += 1

    def add_log(self, level: str, message: str, created: float) -> None:
        """Queue one line; when full, drop the oldest and count it."""
        start = self.on_record  # read once: another thread may clear it meanwhile
        if start is not None:
            start()
        with self.lock:
            if len(self.logs) >= self.max_log_lines:
                self.logs.popleft()
                self.dropped += 1
            self.log_seq += 1
            self.logs.append((self.log_seq, level, message, created))
            first = len(self.logs) == 1
        woken = self.on_line
        if first and woken is not None:
            # Only the first line waiting wakes the sender: it then sends after
            # MIN_GAP with whatever came meanwhile, so the lines behind need no wake.
            woken()

    def add_scalars(self, step: int, values: dict[str, float]) -> None:
        """Queue one step's training metrics; when full, drop the oldest step and count it."""
        start = self.on_record
        if start is not None:
            start()
        with self.lock:
            if len(self.scalars) >= self.max_log_lines:
                gone = len(self.scalars.popleft()[2])
                self.scalar_points -= gone
                self.dropped_points += gone
                self.dropped_scalars += 1
            self.scalar_seq += 1
            self.scalar_points += len(values)
            self.scalars.append((self.scalar_seq, step, values))

    def add_alert(self, alert: dict[str, str], limit: int) -> bool:
        """Queue one alert unless ``limit`` wait already; returns whether it was queued.

        An alert is part of the next state change (``version``)."""
        start = self.on_record
        if start is not None:
            start()
        with self.lock:
            if len(self.alerts) >= limit:
                return False
            self.alerts.append(alert)
            self.version += 1
        woken = self.on_line
        if woken is not None:
            woken()
        return True

    def take_scalars(self, room: int) -> list[ScalarStep]:
        """Remove and return the oldest steps holding at most ``room`` values in
        all (at least one step when any is queued; call under ``lock``)."""
        if room >= self.scalar_points:  # all of them: what the sender takes
            taken = list(self.scalars)
            self.scalars.clear()
            self.scalar_points = 0
            return taken
        taken = []
        while self.scalars and (not taken or len(self.scalars[0][2]) <= room):
            step = self.scalars.popleft()
            room -= len(step[2])
            self.scalar_points -= len(step[2])
            taken.append(step)
        return taken

    def take_logs(self, room: int) -> list[LogLine]:
        """Remove and return up to ``room`` of the oldest lines (call under ``lock``).

        Lines dropped meanwhile are counted in ``dropped`` (the sender says how many)."""
        taken: list[LogLine] = []
        while len(taken) < room and self.logs:
            taken.append(self.logs.popleft())
        return taken

    def full_request_waits(self, lines: int, points: int) -> bool:
        """Whether at least ``lines`` log lines or ``points`` training-metric values
        are queued: a full request's worth, sent without waiting for the interval
        (call under ``lock``)."""
        return len(self.logs) >= lines or self.scalar_points >= points

    def has_news(self) -> bool:
        """Whether anything waits to be taken (call under ``lock``)."""
        return bool(
            self.logs
            or self.dropped
            or self.scalars
            or self.dropped_scalars
            or self.alerts
            or self.version != self.sent_version
        )

    def set_config(self, config: dict[str, Any]) -> None:
        """Keep the job's new config (valid JSON, checked by the caller); the sender
        PUTs it before its next request."""
        start = self.on_record
        if start is not None:
            start()
        with self.lock:
            self.config = config
            self.config_version += 1
        woken = self.on_line
        if woken is not None:
            woken()

    def set_price(self, price_per_hour: float) -> None:
        """Keep the job's new price (checked by the caller); the sender PUTs it before
        its next request, and the server counts it from when it arrives."""
        start = self.on_record
        if start is not None:
            start()
        with self.lock:
            self.price_per_hour = price_per_hour
            self.config_version += 1
        woken = self.on_line
        if woken is not None:
            woken()

    def config_delivered(self, version: int) -> None:
        """The config of ``version`` was stored (or can never be); wake the flushes."""
        with self.delivered:
            self.sent_config_version = max(self.sent_config_version, version)
            self.delivered.notify_all()

    def mark(self) -> tuple[int, int, int]:
        """What is recorded so far: (version, log_seq, scalar_seq) (call under ``lock``)."""
        return self.version, self.log_seq, self.scalar_seq

    def mark_delivered(self, version: int, log_seq: int, scalar_seq: int) -> None:
        """Everything up to this mark was sent or dropped; wake the flushes waiting."""
        with self.delivered:
            self.sent_version = max(self.sent_version, version)
            self.sent_log_seq = max(self.sent_log_seq, log_seq)
            self.sent_scalar_seq = max(self.sent_scalar_seq, scalar_seq)
            self.delivered.notify_all()

    def is_delivered(self, version: int, log_seq: int, scalar_seq: int) -> bool:
        """Whether everything up to this mark was sent or dropped (call under ``lock``)."""
        return (
            self.sent_version >= version
            and self.sent_log_seq >= log_seq
            and self.sent_scalar_seq >= scalar_seq
            and self.sent_config_version >= self.config_version
        )
