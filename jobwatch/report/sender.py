"""The reporter's background thread: it empties the outbox into ``POST /progress``.

The training loop only ever touches the :class:`~jobwatch.report.outbox.Outbox`. One
:class:`Sender` thread per reporter composes requests from it, at most once
per ``interval`` seconds (sooner for a flush, for a full request's worth of
log lines or training metrics, and
:data:`~jobwatch.report.send_policy.MIN_GAP` after the last request when log
lines or alerts wait), also while the server is away. Composed requests queue
in order, each with its ``updateId``, and are appended to the reporter's
spool (:mod:`jobwatch.report.spool`) in one write per interval before they
are sent; the queue goes out request after request, so a backlog catches up
without waiting for the interval, and each acknowledged one leaves the spool.
The queue is bounded in bytes (``spool_bytes``): past it the oldest requests
are dropped and counted.

Retries: exponential backoff with jitter for an unreachable server,
``Retry-After`` for 429, ``ensure_job`` again for 404
(:class:`~jobwatch.report.send_policy.SendPolicy` decides). A refusal that can
never succeed (a quota, 507; a validation error, 400 or 422) drops only what
was refused: the request goes again without its log lines, training metrics
and GPU sample. What was dropped (refused, a full outbox, a full spool) is
told on the job once per cause as a log line ``"jobwatch: N log lines / M
metric points dropped: <why>"`` (an alert when that line itself is refused),
then what was dropped since at the end, and warned locally (logger
``jobwatch.report.reporter``) with the server's message.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from jobwatch.client.own_io import sender_thread
from jobwatch.contract.basics import (
    MAX_BODY_BYTES,
    MAX_LOG_LINES,
    MAX_MESSAGE_BYTES,
    MAX_SCALAR_POINTS,
    MAX_TEXT,
    format_ts,
    parse_ts,
    sent_late,
    truncate_message,
)
from jobwatch.contract.metrics import GPU_FIELDS, SYSTEM_FIELDS
from jobwatch.errors import APIError, QuotaExceeded
from jobwatch.report import spool as spool_mod
from jobwatch.report.outbox import BudgetState, Completion, LogLine, Outbox, ReporterJob
from jobwatch.report.samples import clean_metrics
from jobwatch.report.send_policy import BODY_SLACK, URGENT_RETRY, SendPolicy, rejected
from jobwatch.report.spool import DEFAULT_SPOOL_BYTES

if TYPE_CHECKING:
    from jobwatch.client.rest import Client

_log = logging.getLogger("jobwatch.report.reporter")

EXIT_TIMEOUT = 5.0
"""Seconds the interpreter's exit waits, in all, for reporters to deliver what they hold."""


class _Request(NamedTuple):
    """One ``POST /progress`` as composed, kept (and spooled) until answered so that
    a retry sends it unchanged: ``data`` is its JSON body. ``lines``, ``points``,
    ``samples`` and ``alerts`` count what it carries of the user's (a note of
    ours not included), ``note`` and ``alert_note`` the drop counts its note
    line and its note alert tell, and
    ``version``, ``last_seq``, ``last_scalar_seq`` the outbox mark it delivers."""

    update_id: str
    data: bytes
    lines: int = 0
    points: int = 0
    samples: int = 0
    alerts: int = 0
    note: dict[str, list[int]] | None = None
    alert_note: dict[str, list[int]] | None = None
    version: int = 0
    last_seq: int = 0
    last_scalar_seq: int = 0
    progress: float = 0.0
    composed: float | None = None


_KINDS = ("log lines", "metric points", "machine samples", "alerts")
"""What a request carries, as warnings count it; a machine sample (the request's
``metrics``) is named by what this reporter sampled: see :meth:`Sender.samples_label`."""
"""What a drop count counts, in the order of :class:`_Request`'s counts."""
WARN_EVERY = 60.0
"""Seconds between two local warnings with the running totals of what was dropped."""


_running: set[Sender] = set()
_running_lock = threading.Lock()
_forked = False  # this process is a fork of one that imported jobwatch
_mp_hooked = False  # _deliver_at_exit is registered with multiprocessing's exit hooks


class Sender:
    """The background thread of one reporter; see the module docstring.

    Parameters
    ----------
    client:
        Used by this thread only.
    job:
        The job to ensure and report to.
    outbox:
        Shared with the training loop.
    metrics:
        Called for each request: the contract's metrics object, or ``None`` to send none.
    interval:
        Seconds between requests (more only to catch up a log backlog).
    start:
        Start the thread now; otherwise :meth:`start` does, at the first
        record into ``outbox`` (a forked child's sender, see :meth:`forked`).
    spool_root:
        Where to spool what the server has not acknowledged
        (:mod:`jobwatch.report.spool`); ``None``: memory only.
    spool_bytes:
        Bytes of requests kept while the server does not take them; beyond,
        the oldest are dropped and counted.
    """

    def __init__(
        self,
        client: Client,
        job: ReporterJob,
        outbox: Outbox,
        metrics: Callable[[], Mapping[str, Any] | None] | None,
        interval: float,
        *,
        start: bool = True,
        spool_root: Path | None = None,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        on_over_budget: Callable[[BudgetState], object] | None = None,
    ) -> None:
        self._client = client
        self.budget_state: BudgetState | None = None  # from the last progress reply
        self._on_over_budget = on_over_budget
        self._http_timeout = client.timeout
        self._job = job
        self._outbox = outbox
        self._metrics = metrics
        self._sampled: set[str] = set()  # "GPU", "system": what the samples carried
        self._interval = interval
        self._wake = threading.Event()
        outbox.on_line = self._wake.set  # a line or alert goes soon, not at the interval
        self._halted = False
        self._alive = True
        self._urgent = 0  # flushes waiting; guarded by outbox.lock
        self._finishing = False
        self._completion: Completion | None = None
        self._deadline: float | None = None  # monotonic, while finishing
        self._at_exit = False
        self._policy = SendPolicy(interval)
        self._state = threading.RLock()  # the queue and the spool (the thread; a timed-out finish)
        self._queue: deque[_Request] = deque()  # composed, not yet answered; the first is sent
        self._queued_bytes = 0
        self._capacity = spool_bytes
        self._spool_root = spool_root
        self._spool: spool_mod.Spool | None = None
        self._completion_spooled = False
        self._told_kept = False
        self._fatal = False  # the server will never take this job's updates
        self._next_drain = 0.0
        # what was dropped, by cause (buffer, spool, refused-<status>): the first message,
        # counts not yet told the server, counts since the start (for local warnings)
        self._messages: dict[str, str] = {}
        self._dropped: dict[str, list[int]] = {}
        self._dropped_total: dict[str, list[int]] = {}
        self._told: set[str] = set()  # causes told once already: the rest is told at the end
        self._as_alert: set[str] = set()  # causes whose note line was refused: told as an alert
        self._drop_warned_at = 0.0
        self._drop_warned: dict[str, list[int]] = {}  # the totals each cause last warned
        self._session = os.urandom(8).hex()
        self._updates = 0
        self._wall_start = time.time()
        self._monotonic_start = time.monotonic()
        # when the training code last called the reporter, as this thread saw it: at
        # each drain, a changed outbox mark means a call since the last (the reporter's
        # creation counts as one); update() itself does no more than before
        self._seen_mark = outbox.mark()
        self._called_at = self._wall_start
        self._warned: set[str] = set()
        self.completed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        if start:
            self.start()
        else:
            outbox.on_record = self.start

    def start(self) -> None:
        """Start the thread, unless it was started already. Never raises: where no
        thread can start, warns once and delivers nothing (flushes return ``False``)."""
        with self._start_lock:
            if self._thread is not None or self._halted:
                return
            self._outbox.on_record = None
            thread = threading.Thread(
                target=self._run, name=f"jobwatch-reporter-{self._job.job_id}", daemon=True
            )
            with _running_lock:
                _running.add(self)
            try:
                thread.start()
            except RuntimeError as exc:  # e.g. "can't start new thread" (thread limit, exiting)
                with _running_lock:
                    _running.discard(self)
                self._halted, self._alive = True, False
                self._warn(
                    "start",
                    "reporter of job %r cannot start its thread (%s); "
                    "nothing more is sent from this process",
                    self._job.job_id,
                    exc,
                )
                return
            self._thread = thread
        if _forked:
            _deliver_at_multiprocessing_exit()

    def forked(self, outbox: Outbox) -> Sender:
        """This sender's twin for a forked child: call it in the child, right after ``fork()``.

        The twin reports the same job as the same worker with the same
        settings, from ``outbox`` and a client of its own (the parent's
        connections are the parent's); its thread starts at the first record.
        It sends no GPU metrics: the parent still samples the machine's GPUs,
        and NVML and CUDA state must not be used across a fork.
        """
        client = type(self._client)(
            self._client.url, token=self._client.token, timeout=self._http_timeout
        )
        return Sender(
            client,
            self._job,
            outbox,
            None,
            self._interval,
            start=False,
            spool_root=self._spool_root,
            spool_bytes=self._capacity,
        )

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything recorded so far is delivered; ``False`` after ``timeout`` s."""
        outbox = self._outbox
        deadline = None if timeout is None else time.monotonic() + timeout
        with outbox.delivered:
            mark = outbox.mark()
            self._urgent += 1
        self._wake.set()
        try:
            with outbox.delivered:
                while not outbox.is_delivered(*mark):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if not self._alive or (remaining is not None and remaining <= 0):
                        return False
                    outbox.delivered.wait(remaining)
                return True
        finally:
            with outbox.delivered:
                self._urgent -= 1

    def finish(self, completion: Completion | None, timeout: float) -> bool:
        """Deliver what is held, then ``completion`` if given, then stop; wait ``timeout`` s.

        Returns whether the completion (or, without one, everything held) was delivered.
        """
        if completion is not None:
            self.start()
        self.request_finish(completion, time.monotonic() + timeout)
        self.join(timeout)
        self.halt()
        if completion is not None:
            delivered = self.completed
        else:
            with self._outbox.lock:
                delivered = not self._queue and self._outbox.is_delivered(*self._outbox.mark())
        if not delivered:  # the thread waits on the wire or gave up: keep the rest on disk
            with self._state:
                if self._spool is not None:
                    with self._outbox.lock:
                        news = self._outbox.has_news()
                    if news:
                        self._compose_all(time.monotonic())
                    self._keep(self._spool)
        return delivered

    def request_finish(
        self, completion: Completion | None, deadline: float, *, at_exit: bool = False
    ) -> None:
        """Ask the thread to deliver, complete and stop by ``deadline`` (monotonic s).

        ``at_exit``: the interpreter is exiting, so give up at the first sign
        that the server is unreachable rather than retry until the deadline.
        """
        if completion is not None and completion.at is None:
            completion = completion._replace(at=self._worker_clock())
        with self._outbox.lock:
            if not self._finishing:
                self._finishing, self._completion, self._deadline = True, completion, deadline
            self._at_exit = at_exit
        self._wake.set()

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for the thread to end (if it ever started)."""
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))

    def halt(self) -> None:
        """Stop after the request in flight, if any, delivering nothing more."""
        self._halted = True
        self._wake.set()

    # -- the thread -------------------------------------------------------------

    def _run(self) -> None:
        with sender_thread():  # nothing this thread logs is shipped by a logging handler
            try:
                self._open_spool()
                while not self._halted:
                    wait = self._step()
                    if wait is None:
                        break
                    if wait > 0:
                        self._wake.wait(wait)
            finally:
                for key in list(self._dropped_total):
                    self._warn_dropped(key, final=True)
                self._close_spool()
                with self._outbox.delivered:
                    self._alive = False
                    self._outbox.delivered.notify_all()
                with _running_lock:
                    _running.discard(self)
                self._client.close()

    def _step(self) -> float | None:
        """Do the next thing due; return seconds to wait before the next step, or None to end."""
        self._wake.clear()
        now = time.monotonic()
        # Read once: a finish asked for during this step must first drain what was
        # recorded before it (the next step does), never complete ahead of it.
        finishing = self._finishing
        urgent = self._urgent > 0 or finishing
        if self._deadline is not None and now >= self._deadline:
            return None
        # local work, also while the server is away (once the job's floor is known)
        policy = self._policy
        if (policy.ensured or policy.down) and self._drain_due(now, urgent):
            self._drain(now)
        retry_at = policy.retry_at
        if urgent and not policy.rate_limited:
            retry_at = min(retry_at, policy.failed_at + URGENT_RETRY)
        if now < retry_at:
            return _wait_until(min(retry_at, self._drain_at()), now)
        self._client.timeout = policy.http_timeout(now, self._deadline, self._http_timeout)
        try:
            if (
                not policy.ensured
                or self._outbox.config_version != self._outbox.sent_config_version
            ):
                self._ensure()
            elif self._queue:
                self._send()
            elif finishing:
                if self._completion is not None:
                    self._complete()
                return None
            else:
                return _wait_until(self._drain_at(), now)
        except Exception as exc:  # the sender must outlive any failure
            return self._failed(exc, now)
        self._succeeded()
        return 0.0

    def _drain_due(self, now: float, urgent: bool) -> bool:
        """Whether to compose requests from the outbox now: once per interval when
        there is news (or a GPU sample is due, every interval once the job has
        reported with metrics, so the charts stay live between progress updates),
        at once for a flush or finish, and whenever a full request's worth waits
        (a backlog of log lines or training metrics catches up without waiting)."""
        with self._outbox.lock:
            news = self._outbox.has_news() or bool(self._notes_due())
            if news and self._outbox.full_request_waits(MAX_LOG_LINES, MAX_SCALAR_POINTS):
                return True
        if urgent:
            return news
        return now >= self._drain_at() and (news or self._policy.beating)

    def _drain_at(self) -> float:
        """When the next requests are due (monotonic s): the interval after the last,
        or :data:`~jobwatch.report.send_policy.MIN_GAP` after the last request while
        log lines or alerts wait, so that a watcher sees a line within a fraction of
        a second."""
        with self._outbox.lock:
            lines = bool(self._outbox.logs) or bool(self._outbox.alerts)
        if lines:
            return min(self._next_drain, self._policy.sent_at + self._policy.line_gap)
        return self._next_drain

    def _ensure(self) -> None:
        """PUT the job (and its newest config and price: a change of either is PUT again)."""
        job = self._job
        with self._outbox.lock:
            config, version = self._outbox.config, self._outbox.config_version
            price = self._outbox.price_per_hour
        reply = self._client.ensure_job(
            job.job_id,
            name=job.name,
            worker_id=job.worker_id,
            price_per_hour=job.price_per_hour if price is None else price,
            currency=job.currency,
            world_size=job.world_size,
            budget=job.budget,
            config=config,
        )
        self._outbox.config_delivered(version)
        self._policy.ensured_job(reply.get("progress"), reply.get("status"))

    def _send(self) -> None:
        """Send the oldest request not yet answered.

        A request whose answer never came (a timeout, a dropped connection, a
        5xx) may have been applied: it stays first and is sent again
        unchanged, with its ``updateId``, so the server applies it once. One
        the server refuses for good (a quota, 507; a validation error, 400 or
        422) loses what was refused only: it goes again without its log lines,
        training metrics and GPU sample, and the next request says on the job
        how many were dropped and why.
        """
        request = self._queue[0]
        path = f"/api/jobs/{quote(self._job.job_id, safe='')}/progress"
        data = request.data
        if request.composed is not None:
            late = sent_late(request.composed, self._worker_clock())
            if late:  # its sentAt joins the body as composed
                data = b"".join((data[:-1], b',"sentAt":"', late["sentAt"].encode(), b'"}'))
        try:
            # sent as composed: decoding and encoding again cost more than composing
            reply = self._client.request("POST", path, json_data=data)
        except APIError as exc:
            if not (rejected(exc) or isinstance(exc, QuotaExceeded)):
                raise
            self._refused(request, json.loads(request.data), exc)
            return
        progress = float(reply.get("progress", request.progress))
        self._budget_reply(reply)
        self._policy.delivered(
            time.monotonic(),
            progress=progress,
            backlog=False,
            min_interval=reply.get("minInterval"),
        )
        self._done(request)

    def _budget_reply(self, reply: Mapping[str, Any]) -> None:
        """Keep the reply's budget state; call ``on_over_budget`` once, when the
        budget is first spent (its exceptions are logged, never raised)."""
        before, state = self.budget_state, BudgetState.of(reply)
        self.budget_state = state
        if not state.over_budget or (before is not None and before.over_budget):
            return
        callback = self._on_over_budget
        if callback is not None:
            self._on_over_budget = None
            try:
                callback(state)
            except Exception as exc:  # the sender must outlive the user's callback
                _log.warning("jobwatch: on_over_budget of job %r raised %r", self._job.job_id, exc)

    def _done(self, request: _Request) -> None:
        """``request`` (the first) was answered: forget it, here and in the spool."""
        self._told.update(request.note or ())
        self._told.update(request.alert_note or ())
        with self._state:
            self._queue.popleft()
            self._queued_bytes -= len(request.data)
            if self._spool is not None:
                self._spool.done(request.update_id)
                if not self._queue:
                    self._spool_write(empty=True)
        self._outbox.mark_delivered(request.version, request.last_seq, request.last_scalar_seq)

    def _refused(self, request: _Request, body: dict[str, Any], exc: APIError) -> None:
        """Drop what the server refused of the first request; keep the rest first."""
        metrics_only = body.get("metrics") is not None and any(
            str(d.get("field", "")).startswith("metrics") for d in exc.details
        )
        if metrics_only:
            self._warn(
                "metrics", "the server rejected the metrics sample; sent without it: %s", exc
            )
            counts = [0, 0, 0, 0]  # a sample the contract refuses: warned, not counted
            del body["metrics"]
        else:
            counts = [request.lines, request.points, request.samples, 0]
            stripped = {k: body.pop(k) for k in ("logLines", "scalars", "metrics") if k in body}
            if not stripped or stripped == {"logLines": []}:
                counts[3] = request.alerts  # nothing to take out: the whole request goes
                body = {}
        if request.note:  # the note line went too: tell it again, as an alert (never refused)
            for key, note in request.note.items():
                self._as_alert.add(key)
                self._count_dropped(key, self._messages[key], note, total=False)
        if request.alert_note and not body:  # the whole request goes, its note alert too
            for key, note in request.alert_note.items():
                self._count_dropped(key, self._messages[key], note, total=False)
        key = f"refused-{exc.status}"
        if any(counts):
            self._count_dropped(key, str(exc), counts)  # the fields it names too
            self._warn_dropped(key)
        with self._state:
            if body:
                body.pop("updateId", None)
                self._updates += 1
                body["updateId"] = f"{self._session}-{self._updates}"
                data = _dumps(body)
                self._queue[0] = request._replace(
                    update_id=body["updateId"], data=data, lines=0, points=0, samples=0, note=None
                )  # alerts stay, the note alert with them
                self._queued_bytes += len(data) - len(request.data)
                if self._spool is not None:  # the refused one is done; its remainder goes on
                    self._spool.done(request.update_id)
                    self._spool.add(body["updateId"], data)
                    self._spool_write()
                return
        self._done(request)

    def _count_dropped(
        self, key: str, message: str, counts: list[int], *, total: bool = True
    ) -> None:
        """Count ``counts`` (log lines, metric points, machine samples, alerts) dropped
        for cause ``key``, whose first ``message`` the job and the local warnings
        quote; ``total``: new drops (not a note told again)."""
        self._messages.setdefault(key, message)
        untold = self._dropped.setdefault(key, [0, 0, 0, 0])
        running = self._dropped_total.setdefault(key, [0, 0, 0, 0])
        for i, n in enumerate(counts):
            untold[i] += n
            if total:
                running[i] += n

    def _notes_due(self) -> list[str]:
        """Causes whose drops to tell the job now: each once when it first drops
        something, then what it dropped since at the end (a flush, close or completion)."""
        end = self._finishing or self._urgent > 0
        return [k for k, c in self._dropped.items() if any(c) and (end or k not in self._told)]

    def _note_text(self, note: Mapping[str, list[int]]) -> str:
        """``"N log lines / M metric points dropped: <why>"`` per cause (machine samples
        and alerts named only when some were dropped)."""
        return _note_text(
            {self._messages[key]: counts for key, counts in note.items()}, self.samples_label()
        )

    def _warn_dropped(self, key: str, *, final: bool = False) -> None:
        """Warn locally with the server's (or our) own message: the first time for
        each cause, then with the running totals at most every :data:`WARN_EVERY` s,
        and (``final``) when the reporter stops, if more was dropped since."""
        now = time.monotonic()
        counts = self._dropped_total[key]
        if final and self._drop_warned.get(key) == counts:
            return
        if not final and key in self._warned and now - self._drop_warned_at < WARN_EVERY:
            return
        self._warned.add(key)
        self._drop_warned_at = now
        self._drop_warned[key] = list(counts)
        _log.warning(
            "jobwatch: job %r: %s (in all so far)",
            self._job.job_id,
            self._note_text({key: self._dropped_total[key]}),
        )

    def _drain(self, now: float) -> None:
        """Compose requests from everything the outbox holds, queue them and spool
        them in one write: the newest state in each, the log lines and training
        metrics split so each request stays within the contract's limits, one
        GPU sample, the alerts and a note of what was dropped in the first."""
        with self._state:
            self._compose_all(now)
            self._bound()
            self._spool_write()

    def _compose_all(self, now: float) -> None:
        outbox = self._outbox
        with outbox.lock:
            version = outbox.version
            progress, operation = outbox.progress, outbox.operation
            declared = outbox.resumed_from
            if outbox.backwards:
                outbox.backwards = False
                self._policy.went_backwards()
            lines = outbox.take_logs(len(outbox.logs))
            steps = outbox.take_scalars(outbox.scalar_points)
            alerts, outbox.alerts = outbox.alerts, []
            dropped_lines, outbox.dropped = outbox.dropped, 0
            dropped_points, outbox.dropped_points = outbox.dropped_points, 0
            outbox.dropped_scalars = 0
            log_seq, scalar_seq = outbox.log_seq, outbox.scalar_seq
            mark, silence = outbox.mark(), outbox.silence
        if mark != self._seen_mark:
            self._seen_mark, self._called_at = mark, self._worker_clock()
        called_at = format_ts(self._called_at)
        if dropped_lines or dropped_points:
            message = (
                f"the reporter's buffer was full (max_log_lines={outbox.max_log_lines}) "
                "while the server could not keep up or was unreachable"
            )
            self._count_dropped("buffer", message, [dropped_lines, dropped_points, 0, 0])
            self._warn_dropped("buffer")
        self._next_drain = now + self._policy.spacing
        progress = self._policy.progress(progress)
        operation = None if operation is None else _utf8(operation[:MAX_TEXT])
        composed = self._worker_clock()
        timestamp = format_ts(composed)
        metrics = self._sample()
        resumed = self._policy.resumed_from(declared) or 0.0
        user_alerts = len(alerts)
        note = {key: self._dropped.pop(key) for key in self._notes_due()}
        line_note = {k: c for k, c in note.items() if k not in self._as_alert}
        alert_note = {k: c for k, c in note.items() if k in self._as_alert}
        if alert_note:
            text = "jobwatch: " + self._note_text(alert_note)
            alerts = [*alerts, {"title": "jobwatch dropped data", "text": text[:4096]}]
            alerts[-1]["level"] = "warning"
        first = True
        taken_lines = 0
        last_seq = last_scalar_seq = 0
        taken_steps = 0
        while first or taken_lines < len(lines) or taken_steps < len(steps):
            self._updates += 1
            update_id = f"{self._session}-{self._updates}"
            body: dict[str, Any] = {"workerId": self._job.worker_id, "progress": progress}
            if self._job.rank_fields:
                body.update(self._job.rank_fields)
            if operation is not None:
                body["currentOperation"] = operation
            body["timestamp"] = timestamp
            body["updateId"] = update_id
            body["lastCallAt"] = called_at
            if silence is not None:
                body["expectSilenceFor"] = silence
            # a run that started part-way says so in every update (any one may be the
            # first the server applies): a track(initial=) loop, or attached to a running job
            if resumed > 0:
                body["resumedFrom"] = resumed
            wire_lines: list[str] = []  # each line as its JSON text (see _carry_line)
            if first and line_note:
                note_line = ("warning", "jobwatch: " + self._note_text(line_note), time.time())
                wire_lines.append(_carry_line((0, *note_line))[1])
            if first and metrics is not None:
                body["metrics"] = metrics
            if first and alerts:
                body["alerts"] = alerts
            scalars: list[dict[str, Any]] = []
            points = 0
            while taken_steps < len(steps) and (
                not scalars or points + len(steps[taken_steps][2]) <= MAX_SCALAR_POINTS
            ):
                seq, step, values = steps[taken_steps]
                taken_steps += 1
                scalars.append({"step": step, "values": values})
                points += len(values)
                last_scalar_seq = seq
            if scalars:
                body["scalars"] = scalars
            head = _dumps(body)
            room = MAX_BODY_BYTES - BODY_SLACK - len(head) - len(_LINES_KEY) - 2
            room -= sum(len(wire) + 1 for wire in wire_lines)
            count = 0
            while taken_lines < len(lines) and len(wire_lines) < MAX_LOG_LINES:
                seq, wire = _carry_line(lines[taken_lines])
                room -= len(wire) + 1  # ASCII: characters are bytes; 1 for the comma
                if room < 0 and wire_lines:
                    break
                wire_lines.append(wire)
                taken_lines += 1
                count += 1
                last_seq = seq
            # the body with "logLines" last, as json.dumps would write it: the
            # lines were encoded one by one as they were measured
            data = b"".join((head[:-1], _LINES_KEY, ",".join(wire_lines).encode("ascii"), b"]}"))
            done = taken_lines >= len(lines) and taken_steps >= len(steps)
            self._queue.append(
                _Request(
                    update_id=update_id,
                    data=data,
                    lines=count,
                    points=points,
                    samples=int(first and metrics is not None),
                    alerts=user_alerts if first else 0,
                    note=(line_note or None) if first else None,
                    alert_note=(alert_note or None) if first else None,
                    version=version,
                    last_seq=log_seq if done else last_seq,
                    last_scalar_seq=scalar_seq if done else last_scalar_seq,
                    progress=progress,
                    composed=composed,
                )
            )
            self._queued_bytes += len(data)
            if self._spool is not None:
                self._spool.add(update_id, data)
            first = False

    def _bound(self) -> None:
        """Past :attr:`_capacity` bytes queued, drop the oldest requests (never the
        first, which may be on the wire) down to three quarters, counted per kind;
        the next request says how many."""
        if self._queued_bytes <= self._capacity or len(self._queue) < 2:
            return
        head = self._queue.popleft()
        counts = [0, 0, 0, 0]
        while self._queue and self._queued_bytes > self._capacity * 3 // 4:
            gone = self._queue.popleft()
            self._queued_bytes -= len(gone.data)
            for i, n in enumerate((gone.lines, gone.points, gone.samples, gone.alerts)):
                counts[i] += n
            for key, note in {**(gone.note or {}), **(gone.alert_note or {})}.items():
                self._count_dropped(key, self._messages[key], note, total=False)
        self._queue.appendleft(head)
        message = (
            f"the reporter's spool was full (spool_bytes={self._capacity}) while the "
            "server was unreachable; the oldest were dropped"
        )
        self._count_dropped("spool", message, counts)
        self._warn_dropped("spool")
        if self._spool is not None:
            try:
                self._spool.rewrite([(r.update_id, r.data) for r in self._queue])
            except OSError as exc:
                self._spool_failed(exc)

    # -- the spool ----------------------------------------------------------------

    def _open_spool(self) -> None:
        """Open this reporter's spool and take over what an ended process of the same
        job and worker left on this machine (sent first: it is older)."""
        if self._spool_root is None:
            return
        job = self._job
        header: dict[str, Any] = {
            "url": self._client.url,
            "jobId": job.job_id,
            "workerId": job.worker_id,
            "name": job.name,
            "pricePerHour": job.price_per_hour,
            "currency": job.currency,
        }
        if self._outbox.config is not None:  # as given at the start; a later change is not kept
            header["config"] = self._outbox.config
        with self._state:
            self._spool = spool_mod.open_spool(
                self._spool_root, job.job_id, self._session, header, self._interval
            )
            if self._spool is None:
                return
            adopted: list[Path] = []
            for path in spool_mod.orphans(self._spool_root, job.job_id):
                if path == self._spool.path:
                    continue
                try:
                    pending = spool_mod.read(path)
                except (OSError, ValueError):
                    continue
                if pending.header.get("workerId") != job.worker_id:
                    continue  # another worker's: only jobwatch sync sends it
                for update_id, body in pending.requests:
                    data = _dumps(body)
                    counts = _counts(body)
                    composed = parse_ts(body.get("timestamp"))
                    self._queue.append(_Request(update_id, data, *counts, composed=composed))
                    self._queued_bytes += len(data)
                    self._spool.add(update_id, data)
                adopted.append(path)
            if adopted:
                self._spool_write()
                _log.info(
                    "jobwatch: sending %d requests of job %r that an ended process left in %s",
                    len(self._queue),
                    job.job_id,
                    ", ".join(map(str, adopted)),
                )
                for path in adopted:
                    spool_mod.remove(path)

    def _spool_write(self, *, empty: bool = False) -> None:
        if self._spool is not None:
            try:
                self._spool.write(empty=empty)
            except OSError as exc:
                self._spool_failed(exc)

    def _spool_failed(self, exc: OSError) -> None:
        self._warn(
            "spool",
            "cannot write the spool (%s); what the server has not taken is kept in memory only",
            exc,
        )

    def _close_spool(self) -> None:
        """Remove the spool when nothing is left, else keep it and say where it is."""
        with self._state:
            if self._spool is None:
                return
            with self._outbox.lock:
                news = self._outbox.has_news() and not self._halted
            if news and (self._completion is not None or self._queue or not self._fatal):
                self._compose_all(time.monotonic())  # what was never composed is kept too
            spool, self._spool = self._spool, None
            pending = bool(self._queue) or self._completion is not None
            if pending:
                self._keep(spool)
            spool.close(remove=not pending)

    def _keep(self, spool: spool_mod.Spool) -> None:
        if self._completion is not None and not self._completion_spooled:
            self._completion_spooled = True
            spool.add_completion(self._completion_body(self._completion))
        try:
            spool.write()
        except OSError as exc:
            self._spool_failed(exc)
            return
        if not self._told_kept:
            self._told_kept = True
            _log.warning(
                "jobwatch: %s is unreachable%s; %d updates (%d log lines, %d metric points, "
                "%d %s)%s of job %r were not delivered; they are kept in %s and sent "
                "by `jobwatch sync %s` or by the next Reporter of this job on this machine",
                self._client.url,
                " at exit" if self._at_exit else "",
                len(self._queue),
                sum(r.lines for r in self._queue),
                sum(r.points for r in self._queue),
                sum(r.samples for r in self._queue),
                self.samples_label(),
                " and the completion" if self._completion is not None else "",
                self._job.job_id,
                spool.path,
                spool.path,
            )

    def spool_path(self) -> Path | None:
        """The folder of this reporter's spool, or ``None`` without one."""
        spool = self._spool
        return None if spool is None else spool.path

    def _worker_clock(self) -> float:
        """Seconds since the epoch that never go back within this reporter: the
        wall clock at its start plus monotonic time since, so an NTP step of the
        wall clock cannot make a later update look older than an earlier one."""
        return self._wall_start + (time.monotonic() - self._monotonic_start)

    def _sample(self) -> dict[str, Any] | None:
        """A fresh metrics sample cleaned to the contract, or ``None`` to send none this time.

        A value the contract refuses is sent as null (:func:`~jobwatch.report.samples.clean_metrics`);
        a source that raises or returns something else than a dict costs this
        one sample (warned once) and is called again for the next request.
        """
        if self._metrics is None:
            return None
        try:
            sample = self._metrics()
            metrics = clean_metrics(sample)
        except Exception as exc:  # a metrics callable must not stop reporting
            self._warn("metrics-error", "metrics sampling failed; this sample is skipped: %r", exc)
            self._policy.sampled(ok=False, metrics_sent=False)  # try again in one interval
            return None
        if metrics != sample:
            self._warn(
                "metrics-cleaned",
                "metrics had values or keys outside the contract; such values are sent as "
                "null and unknown keys dropped: %.300r",
                sample,
            )
        self._policy.sampled(ok=True, metrics_sent=metrics is not None)
        if metrics is not None and len(self._sampled) < 2:  # both seen: nothing to learn
            self._sampled.update(_sample_kinds(metrics))
        return metrics

    def samples_label(self) -> str:
        """What this reporter's machine samples are, for people: ``"GPU samples"``,
        ``"system samples"`` (CPU, memory, disk, network: ``Reporter(gpu=False)`` or a
        machine without GPUs), ``"GPU and system samples"``; ``"machine samples"``
        before the first."""
        kinds = " and ".join(k for k in ("GPU", "system") if k in self._sampled)
        return f"{kinds or 'machine'} samples"

    def _completion_body(self, done: Completion) -> dict[str, Any]:
        """The ``POST /complete`` body of ``done``."""
        body: dict[str, Any] = {"workerId": self._job.worker_id, "status": done.status}
        if done.at is not None:
            body["timestamp"] = format_ts(done.at)
        if done.result is not None:
            body["result"] = done.result
        if done.error is not None:
            body["error"] = truncate_message(_utf8(done.error))
        return body

    def _complete(self) -> None:
        assert self._completion is not None
        if not self._job.leader:
            # rank 0 finishes a distributed job; another rank only stops reporting
            self._completion = None
            self.completed = True
            return
        body = self._completion_body(self._completion)
        if self._completion.at is not None:
            body.update(sent_late(self._completion.at, self._worker_clock()))
        path = f"/api/jobs/{quote(self._job.job_id, safe='')}/complete"
        try:
            self._client.request("POST", path, json_body=body)
        except APIError as exc:
            if not (rejected(exc) or isinstance(exc, QuotaExceeded)):
                raise
            self._warn("complete", "the server rejected the completion: %s", exc)
        else:
            self.completed = True
        self._completion = None

    def _succeeded(self) -> None:
        if self._policy.succeeded():
            _log.info("jobwatch server %s is reachable again", self._client.url)

    def _failed(self, exc: Exception, now: float) -> float | None:
        """Log what the policy makes of a failed request; return the wait as :meth:`_step` does."""
        failure = self._policy.failed(exc, now, at_exit=self._at_exit)
        url, job_id = self._client.url, self._job.job_id
        if failure.kind == "fatal":
            _log.warning("jobwatch stops reporting job %r: %s", job_id, exc)
            with self._state:  # it can never be delivered: nothing to keep
                self._fatal = True
                self._queue.clear()
                self._completion = None
        elif failure.kind == "rejected":
            _log.warning("jobwatch cannot create job %r: %s", job_id, exc)
        elif failure.kind == "unreachable_at_exit" and self._spool is None:
            with self._outbox.lock:
                lines = len(self._outbox.logs) + sum(r.lines for r in self._queue)
            _log.warning(
                "jobwatch: %s is unreachable at exit; the last update and %d log lines "
                "of job %r were not delivered (%s)",
                url,
                lines,
                job_id,
                exc,
            )  # with a spool, closing it says where they are kept
        elif failure.kind == "unreachable" and failure.first:
            _log.warning("jobwatch cannot reach %s (%s); retrying", url, exc)
        elif failure.kind == "error":
            _log.warning("jobwatch reporter error; retrying", exc_info=exc)
        return failure.wait

    def _warn(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("jobwatch: " + message, *args)


IDLE_POLL = 0.1
"""Seconds between two looks at the outbox while the next drain time has passed
with nothing due (nothing recorded since the last request, no GPU sample to
send): a progress update or training metrics wake no one (that would cost the
training loop's hot path), so the first one after a quiet spell goes within this."""


def _wait_until(due: float, now: float) -> float:
    """Seconds to wait for ``due`` (monotonic s); :data:`IDLE_POLL` once it has passed
    (it has passed with nothing to do: waiting 0 would spin the thread)."""
    return due - now if due > now else IDLE_POLL


def _dumps(body: dict[str, Any]) -> bytes:
    """``body`` as compact JSON bytes (what is spooled and sent)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _counts(body: dict[str, Any]) -> tuple[int, int, int, int]:
    """What a spooled body carries: log lines, metric points, machine samples, alerts."""
    return (
        len(body.get("logLines") or ()),
        sum(len(s.get("values", {})) for s in body.get("scalars") or ()),
        int(body.get("metrics") is not None),
        len(body.get("alerts") or ()),
    )


def _sample_kinds(metrics: Mapping[str, Any]) -> set[str]:
    """``{"GPU", "system"}``, or part of it: which metrics a sample has values of."""
    kinds = set()
    if any(metrics.get(f) is not None for f in GPU_FIELDS) or metrics.get("gpus"):
        kinds.add("GPU")
    if any(metrics.get(f) is not None for f in SYSTEM_FIELDS):
        kinds.add("system")
    return kinds


def _note_text(note: Mapping[str, list[int]], samples: str = _KINDS[2]) -> str:
    """``"N log lines / M metric points dropped: <why>"`` per cause (machine samples,
    named ``samples``, and alerts named only when some were dropped)."""
    parts = []
    for message, counts in note.items():
        what = [f"{counts[0]} log lines", f"{counts[1]} metric points"]
        kinds = (samples, _KINDS[3])
        what += [f"{n} {kind}" for n, kind in zip(counts[2:], kinds, strict=True) if n]
        parts.append(" / ".join(what) + f" dropped: {message}")
    return "; ".join(parts)


_LINES_KEY = b',"logLines":['
_json_text = json.encoder.encode_basestring_ascii  # what json.dumps writes a str as (C)


def _carry_line(line: LogLine) -> tuple[int, str]:
    """``(seq, the line's wire object as JSON text)``, written exactly as
    :func:`_dumps` would write it (compact, ASCII, keys in this order), so that
    its length is what it adds to the body."""
    seq, level, message, created = line
    # the common case, a short ASCII line, needs neither: no NUL, no surrogate,
    # and as many bytes as characters
    if not message.isascii() or "\x00" in message or len(message) > MAX_MESSAGE_BYTES:
        message = truncate_message(_utf8(message))
    wire = (
        f'{{"level":{_json_text(level)},"message":{_json_text(message)},'
        f'"timestamp":"{format_ts(created)}"}}'
    )
    return seq, wire


def _utf8(text: str) -> str:
    """``text`` as the server takes it: NUL (which PostgreSQL text cannot hold)
    becomes U+FFFD and lone surrogates (which JSON parsers refuse) ``?``.

    Every text from user code (log lines, operation, error) passes here, so that
    one stray character never costs the update it travels in.
    """
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _deliver_at_multiprocessing_exit() -> None:
    """In a multiprocessing child, deliver at its exit too: it ends with ``os._exit()``
    after multiprocessing's own exit hooks, so ``atexit`` never runs there."""
    global _mp_hooked
    util = sys.modules.get("multiprocessing.util")  # imported where multiprocessing forked us
    if util is not None and not _mp_hooked:
        _mp_hooked = True
        util.Finalize(None, _deliver_at_exit, exitpriority=10)


def _after_fork_in_child() -> None:
    """The parent's threads do not exist in a child: forget them and their lock,
    which one of them may have held at the fork."""
    global _running_lock, _forked, _mp_hooked
    _running_lock = threading.Lock()
    _running.clear()
    _forked, _mp_hooked = True, False


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _deliver_at_exit() -> None:
    """Give every running reporter :data:`EXIT_TIMEOUT` seconds in all to deliver."""
    deliver_by(time.monotonic() + EXIT_TIMEOUT)


def deliver_by(deadline: float) -> None:
    """Have every running sender deliver what it holds (and a completion asked for
    already) by ``deadline`` (monotonic s), giving up at the first sign that the
    server is unreachable, then stop them all."""
    with _running_lock:
        senders = list(_running)
    for sender in senders:
        sender.request_finish(None, deadline, at_exit=True)
    for sender in senders:
        sender.join(deadline - time.monotonic())
    for sender in senders:
        sender.halt()
