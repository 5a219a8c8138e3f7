"""When the reporter's sender sends, retries or stops, and what an update says: no I/O.

The :class:`~jobwatch.report.sender.Sender` thread reads the outbox and talks
to the server; :class:`SendPolicy` decides for it, from the clock it is
given: what to do next (:meth:`SendPolicy.next_step`), what a failure means
(:meth:`SendPolicy.failed`), which progress and ``resumedFrom`` an update
carries and how many queued log lines fit in one body. The policy:

- at most one request per ``interval`` seconds, more only to catch up a log
  backlog or while a flush, close or completion waits;
- GPU samples every ``interval`` once the job has reported with metrics (the
  charts stay live between progress updates);
- exponential backoff with half jitter for an unreachable server
  (:data:`BACKOFF_BASE` doubling to :data:`BACKOFF_CAP`), at most
  :data:`URGENT_RETRY` while a flush waits, ``Retry-After`` for 429;
- ``ensure_job`` again at once for 404 (the server lost the job), then backoff;
- stop on answers that can never succeed for this reporter (a finished job,
  another worker's job, a wrong token); drop an update the server refuses;
- never report less progress than the running job this reporter attached to;
- a busy server paces its workers: while its last answer carried ``minInterval``
  (seconds, at most :data:`MAX_PACE`), requests go at most that often, log lines
  and a backlog included (a flush, close or completion still goes at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from jobwatch.contract.backoff import Backoff
from jobwatch.contract.basics import MAX_BODY_BYTES, MAX_LOG_LINES
from jobwatch.errors import (
    APIError,
    AuthenticationError,
    Forbidden,
    JobFinished,
    JobNotFound,
    JobwatchError,
    RateLimited,
    WorkerMismatch,
)

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "MAX_PACE",
    "URGENT_RETRY",
    "Failure",
    "SendPolicy",
    "Step",
    "rejected",
]

BACKOFF_BASE = 0.5
"""Seconds before the first retry; doubled per failure up to :data:`BACKOFF_CAP`, with
half jitter (:class:`jobwatch.contract.backoff.Backoff`)."""
BACKOFF_CAP = 30.0
"""Longest wait between retries, in seconds."""
URGENT_RETRY = 1.0
"""Longest wait between retries, in seconds, while a flush, close or completion waits."""
MIN_GAP = 0.15
"""Least time between two requests, in seconds, when log lines or alerts wait (the rest
waits for ``interval``): a line reaches a watcher within about this, and a worker sends
at most 1 / MIN_GAP requests a second (tqdm's ``mininterval`` is 0.1 s)."""
MAX_PACE = 300.0
"""Most seconds a server's ``minInterval`` may space requests (a larger one counts as this)."""
BODY_SLACK = 4096
"""Bytes kept free in a request body beyond what is measured."""

FATAL = (WorkerMismatch, JobFinished, AuthenticationError, Forbidden)
"""Answers after which this reporter can never report to its job: it stops (a
token that may only read, or a worker token of another job, is 403 ``forbidden``)."""


class Step(NamedTuple):
    """The sender's next step: ``wait`` seconds, ``ensure`` the job, ``send`` an
    update, ``complete`` the job and end, or ``end``."""

    action: Literal["wait", "ensure", "send", "complete", "end"]
    wait: float = 0.0


class Failure(NamedTuple):
    """What a failed request means: ``kind`` (for the sender's log) and the
    seconds to wait before the next step, or ``None`` to stop.

    Kinds: ``rate_limited``, ``not_found`` (the job is ensured again),
    ``fatal`` and ``rejected`` (stop: the job cannot be reported to or
    created), ``unreachable`` (``first``: the first failure since the last
    success), ``unreachable_at_exit`` (stop) and ``error`` (not jobwatch's
    own: a bug, retried).
    """

    kind: str
    wait: float | None
    first: bool = False


def rejected(exc: APIError) -> bool:
    """Whether an answer can never succeed on retry (so its payload is dropped)."""
    retry = (RateLimited, JobNotFound, *FATAL)
    return not isinstance(exc, retry) and 400 <= exc.status < 500


@dataclass
class SendPolicy:
    """The sender's timing, retry and compose state; see the module docstring.

    Parameters
    ----------
    interval:
        Seconds between requests.
    backoff:
        Retry delays for an unreachable server.

    Times are monotonic seconds, given by the caller.
    """

    interval: float
    backoff: Backoff = field(
        default_factory=lambda: Backoff(BACKOFF_BASE, BACKOFF_CAP, jitter="half")
    )
    ensured: bool = False
    started_job: bool = False  # ensured once: a re-ensure (404) never sets a floor
    known_progress: float = 0.0  # the server's, sent while update() was never called
    floor: float = 0.0  # progress of the running job this reporter attached to
    next_send: float = 0.0
    sent_at: float = -MIN_GAP  # when the last request was answered
    beating: bool = False  # the last request carried GPU metrics: keep sending them
    backlog: bool = False  # more log lines than one request takes: send on at once
    retry_at: float = 0.0
    failed_at: float = 0.0
    rate_limited: bool = False
    down: bool = False
    paced: float = 0.0  # the server's last minInterval, seconds (0: not paced)

    @property
    def spacing(self) -> float:
        """Seconds between two requests while nothing is urgent: ``interval``, or the
        server's ``minInterval`` when longer."""
        return max(self.interval, self.paced)

    @property
    def line_gap(self) -> float:
        """Least seconds between two requests while log lines wait: :data:`MIN_GAP`, or
        the server's ``minInterval`` when longer."""
        return max(MIN_GAP, self.paced)

    # -- what next ------------------------------------------------------------

    def next_step(
        self,
        now: float,
        *,
        urgent: bool,
        finishing: bool,
        completing: bool,
        deadline: float | None,
        news: Callable[[], bool],
        lines_waiting: Callable[[], bool] = lambda: False,
    ) -> Step:
        """The next thing due at ``now``.

        Parameters
        ----------
        urgent:
            A flush, close or completion waits.
        finishing:
            The reporter is closing: deliver, complete if ``completing``, end.
        deadline:
            Monotonic time by which to have ended, or ``None``.
        news:
            Whether the outbox holds something unsent (asked only when needed).
        lines_waiting:
            Whether log lines or alerts wait: they go :data:`MIN_GAP` after the
            last request rather than ``interval`` after it.
        """
        if deadline is not None and now >= deadline:
            return Step("end")
        retry_at = self.retry_at
        if urgent and not self.rate_limited:
            retry_at = min(retry_at, self.failed_at + URGENT_RETRY)
        if now < retry_at:
            return Step("wait", retry_at - now)
        if not self.ensured:
            return Step("ensure")
        if (self.beating and now >= self.next_send) or news():
            if not (urgent or self.backlog) and now < self.next_send:
                if not lines_waiting():
                    return Step("wait", self.next_send - now)
                if now < self.sent_at + self.line_gap:
                    return Step("wait", self.sent_at + self.line_gap - now)
            return Step("send")
        if finishing:
            return Step("complete" if completing else "end")
        if self.beating:
            return Step("wait", max(0.0, min(self.interval, self.next_send - now)))
        return Step("wait", self.interval)

    @staticmethod
    def http_timeout(now: float, deadline: float | None, timeout: float) -> float:
        """Seconds one request may take: ``timeout``, less near ``deadline`` (at least 0.05)."""
        if deadline is None:
            return timeout
        return max(0.05, min(timeout, deadline - now))

    # -- answers --------------------------------------------------------------

    def ensured_job(self, progress: float | None, status: str | None) -> None:
        """``ensure_job`` answered the job with this ``progress`` and ``status``."""
        self.known_progress = float(progress or 0.0)
        if status == "running" and not self.started_job:
            # attached to a job another reporter moved: never report less than it had
            self.floor = max(self.floor, self.known_progress)
        self.started_job = True
        self.ensured = True

    def delivered(
        self, now: float, *, progress: float, backlog: bool, min_interval: object = None
    ) -> None:
        """An update was answered (or dropped as refused): the next one in
        ``interval`` seconds, at once while ``backlog``; ``progress``: the server's.

        ``min_interval``: the answer's ``minInterval`` (seconds; absent: ``None``). A
        busy server asks for no request sooner than that, backlog and log lines
        included; a value that is not a finite number >= 0 is ignored, one over
        :data:`MAX_PACE` counts as :data:`MAX_PACE`.
        """
        self.paced = _pace(min_interval)
        self.known_progress = progress
        self.next_send = now + self.spacing
        self.sent_at = now
        self.backlog = backlog and not self.paced

    def sampled(self, ok: bool, metrics_sent: bool) -> None:
        """A GPU sample was taken (``ok``) or failed: keep sampling every interval
        while the job reports metrics, and after a failure to try again."""
        self.beating = metrics_sent if ok else True

    def succeeded(self) -> bool:
        """A request succeeded; whether the server was unreachable before it."""
        was_down = self.down
        self.down = self.rate_limited = False
        self.backoff.reset()
        self.retry_at = 0.0
        return was_down

    def failed(self, exc: Exception, now: float, *, at_exit: bool) -> Failure:
        """What the failure ``exc`` of a request at ``now`` means; see :class:`Failure`."""
        self.failed_at = now
        self.rate_limited = isinstance(exc, RateLimited)
        if isinstance(exc, RateLimited):
            self.retry_at = now + exc.retry_after
            return Failure("rate_limited", 0.0)
        if isinstance(exc, FATAL):
            return Failure("fatal", None)
        first = False
        if isinstance(exc, JobNotFound):  # e.g. the server restarted with an empty database
            self.ensured = False
            first_try = self.backoff.failures == 0
            delay = self.backoff.next_delay()
            if first_try:  # re-create the job at once, back off if that fails too
                delay = 0.0
            kind = "not_found"
        elif isinstance(exc, APIError) and rejected(exc):  # only ensure_job raises these
            return Failure("rejected", None)
        elif isinstance(exc, JobwatchError):
            if at_exit:
                return Failure("unreachable_at_exit", None)
            first, self.down = not self.down, True
            delay = self.backoff.next_delay()
            kind = "unreachable"
        else:
            delay = self.backoff.next_delay()
            kind = "error"
        self.retry_at = now + delay
        return Failure(kind, 0.0, first)

    # -- composing an update ----------------------------------------------------

    def progress(self, recorded: float | None) -> float:
        """The progress an update carries: the recorded one, never below the floor;
        the server's while none was recorded."""
        return self.known_progress if recorded is None else max(recorded, self.floor)

    def went_backwards(self) -> None:
        """The training code moved progress back on purpose: the floor no longer holds."""
        self.floor = 0.0

    def resumed_from(self, declared: float | None) -> float | None:
        """``resumedFrom`` of every update (any one may be the first the server
        applies): the declared start (``track(initial=)``) or the floor, ``None``
        for a run that started from scratch."""
        resumed = max(declared or 0.0, self.floor)
        return resumed if resumed > 0 else None


def _pace(value: object) -> float:
    """A ``minInterval`` from an answer as seconds to obey (0 for none or nonsense)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    if not 0 <= value < float("inf"):  # NaN fails this too
        return 0.0
    return min(float(value), MAX_PACE)


def lines_that_fit(base_bytes: int, line_bytes: Iterable[int]) -> int:
    """How many of the queued log lines (their JSON sizes, in order) one request
    takes: at most :data:`~jobwatch.contract.basics.MAX_LOG_LINES`, within
    :data:`~jobwatch.contract.basics.MAX_BODY_BYTES` less :data:`BODY_SLACK`
    beside a body of ``base_bytes`` without lines; always at least one, so a
    line alone over the room still goes (cut to size when it was queued)."""
    room = MAX_BODY_BYTES - BODY_SLACK - base_bytes
    count = 0
    for size in line_bytes:
        room -= size
        if count == MAX_LOG_LINES or (room < 0 and count > 0):
            break
        count += 1
    return count
