"""The reporter's background thread: it empties the outbox into ``POST /progress``.

The training loop only ever touches the :class:`~jobwatch.report.outbox.Outbox`. One
:class:`Sender` thread per reporter takes the newest state and the queued log
lines from it, at most once per ``interval`` seconds, and retries what fails:
a log line or an alert wakes it and goes out at once when no request was sent
in the last :data:`~jobwatch.report.send_policy.MIN_GAP` seconds (else when
that gap is over, with whatever else came meanwhile), so that a watcher sees it
within a fraction of a second while a reporter still sends at most
``1 / MIN_GAP`` requests a second;
exponential backoff with jitter for an unreachable server, ``Retry-After``
for 429, ``ensure_job`` again for 404. Answers that can never succeed are
logged once (logger ``jobwatch.report.reporter``) and dropped. What to do
when is :class:`~jobwatch.report.send_policy.SendPolicy`'s to say (no I/O);
this thread does the reading, the requests and the logging.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from jobwatch.client.own_io import sender_thread
from jobwatch.contract.basics import (
    MAX_LOG_LINES,
    MAX_SCALAR_POINTS,
    MAX_TEXT,
    format_ts,
    truncate_message,
)
from jobwatch.errors import APIError
from jobwatch.report.outbox import Completion, LogLine, Outbox, ReporterJob
from jobwatch.report.samples import clean_metrics
from jobwatch.report.send_policy import SendPolicy, lines_that_fit, rejected

if TYPE_CHECKING:
    from jobwatch.client.rest import Client

_log = logging.getLogger("jobwatch.report.reporter")

EXIT_TIMEOUT = 5.0
"""Seconds the interpreter's exit waits, in all, for reporters to deliver what they hold."""


class _Request(NamedTuple):
    """One ``POST /progress`` as composed, kept until answered so that a retry
    sends it unchanged; ``line_count`` lines of the carry, up to line ``last_seq``,
    training-metric step ``last_scalar_seq`` and outbox ``version``."""

    progress: float
    operation: str | None
    metrics: dict[str, Any] | None
    lines: list[dict[str, Any]]
    timestamp: str | None
    update_id: str
    scalars: list[dict[str, Any]] | None
    alerts: list[dict[str, str]] | None
    resumed_from: float | None
    line_count: int
    last_seq: int
    last_scalar_seq: int
    version: int


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
    ) -> None:
        self._client = client
        self._http_timeout = client.timeout
        self._job = job
        self._outbox = outbox
        self._metrics = metrics
        self._interval = interval
        self._wake = threading.Event()
        outbox.on_line = self._wake.set  # a line or alert is sent soon, not at the interval
        self._halted = False
        self._alive = True
        self._urgent = 0  # flushes waiting; guarded by outbox.lock
        self._finishing = False
        self._completion: Completion | None = None
        self._deadline: float | None = None  # monotonic, while finishing
        self._at_exit = False
        self._policy = SendPolicy(interval)
        self._carry: list[tuple[int, dict[str, Any], int]] = []  # taken lines: seq, wire, bytes
        self._inflight: _Request | None = None
        self._session = os.urandom(8).hex()
        self._updates = 0
        self._wall_start = time.time()
        self._monotonic_start = time.monotonic()
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
        return Sender(client, self._job, outbox, None, self._interval, start=False)

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
            return self.completed
        with self._outbox.lock:
            return not self._carry and self._outbox.is_delivered(*self._outbox.mark())

    def request_finish(
        self, completion: Completion | None, deadline: float, *, at_exit: bool = False
    ) -> None:
        """Ask the thread to deliver, complete and stop by ``deadline`` (monotonic s).

        ``at_exit``: the interpreter is exiting, so give up at the first sign
        that the server is unreachable rather than retry until the deadline.
        """
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
                while not self._halted:
                    wait = self._step()
                    if wait is None:
                        break
                    if wait > 0:
                        self._wake.wait(wait)
            finally:
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
        step = self._policy.next_step(
            now,
            urgent=self._urgent > 0 or self._finishing,
            finishing=self._finishing,
            completing=self._completion is not None,
            deadline=self._deadline,
            news=self._news,
            lines_waiting=self._lines_waiting,
        )
        if step.action == "wait":
            return step.wait
        if step.action == "end":
            return None
        self._client.timeout = self._policy.http_timeout(now, self._deadline, self._http_timeout)
        try:
            if step.action == "ensure":
                self._ensure()
            elif step.action == "send":
                self._send(now)
            else:
                self._complete()
                return None
        except Exception as exc:  # the sender must outlive any failure
            return self._failed(exc, now)
        self._succeeded()
        return 0.0

    def _news(self) -> bool:
        """Log lines taken but unsent, or new state in the outbox."""
        with self._outbox.lock:
            return bool(self._carry) or self._outbox.has_news()

    def _lines_waiting(self) -> bool:
        """Whether log lines or alerts wait to be sent (they go after ``MIN_GAP``)."""
        with self._outbox.lock:
            return bool(self._carry) or bool(self._outbox.logs) or bool(self._outbox.alerts)

    def _ensure(self) -> None:
        job = self._job
        reply = self._client.ensure_job(
            job.job_id,
            name=job.name,
            worker_id=job.worker_id,
            price_per_hour=job.price_per_hour,
            currency=job.currency,
        )
        self._policy.ensured_job(reply.get("progress"), reply.get("status"))

    def _send(self, now: float) -> None:
        """Send the request in flight, or compose the next one.

        A request whose answer never came (a timeout, a dropped connection, a
        5xx) may have been applied: it stays in flight and is sent again
        unchanged, with its ``updateId``, so the server applies it once.
        """
        if self._inflight is None:
            self._inflight = self._compose()
        request = self._inflight
        try:
            reply = self._client.report_progress(
                self._job.job_id,
                self._job.worker_id,
                request.progress,
                request.operation,
                request.metrics,
                request.lines,
                request.timestamp,
                update_id=request.update_id,
                scalars=request.scalars,
                alerts=request.alerts,
                resumed_from=request.resumed_from,
            )
        except APIError as exc:
            if not rejected(exc):
                raise
            if request.metrics is not None and any(
                d.get("field", "").startswith("metrics") for d in exc.details
            ):
                self._warn("metrics", "the server rejected GPU metrics; sent without them: %s", exc)
                # this update goes again at once without its sample; sampling goes on
                self._inflight = request._replace(metrics=None)
                return
            self._warn(f"reject-{exc.code}", "the server rejected an update; dropping it: %s", exc)
            progress = self._policy.known_progress
        else:
            progress = float(reply.get("progress", request.progress))
        self._inflight = None
        del self._carry[: request.line_count]
        with self._outbox.lock:  # more lines than one request takes: send on at once
            backlog = bool(self._carry) or (
                request.line_count == MAX_LOG_LINES and bool(self._outbox.logs)
            )
        self._policy.delivered(now, progress=progress, backlog=backlog)
        self._outbox.mark_delivered(request.version, request.last_seq, request.last_scalar_seq)

    def _compose(self) -> _Request:
        """The next request: the newest state, queued lines that fit, a GPU sample."""
        with self._outbox.lock:
            version = self._outbox.version
            progress, operation = self._outbox.progress, self._outbox.operation
            declared = self._outbox.resumed_from
            if self._outbox.backwards:
                self._outbox.backwards = False
                self._policy.went_backwards()
            taken = self._outbox.take_logs(MAX_LOG_LINES - len(self._carry))
            steps = self._outbox.take_scalars(MAX_SCALAR_POINTS)
            alerts, self._outbox.alerts = self._outbox.alerts, []
            dropped_steps, self._outbox.dropped_scalars = self._outbox.dropped_scalars, 0
        if dropped_steps:
            self._warn(
                "scalars-dropped",
                "%d steps of training metrics were dropped: the reporter's buffer was full "
                "while the server could not keep up or was unreachable",
                dropped_steps,
            )
        scalars = [{"step": step, "values": values} for _, step, values in steps]
        self._carry += [_carry_line(line) for line in taken]
        progress = self._policy.progress(progress)
        operation = None if operation is None else _utf8(operation[:MAX_TEXT])
        timestamp = format_ts(self._worker_clock())
        metrics = self._sample()
        self._updates += 1
        update_id = f"{self._session}-{self._updates}"
        base = {"workerId": self._job.worker_id, "progress": progress, "logLines": []}
        base.update(
            currentOperation=operation, metrics=metrics, timestamp=timestamp, updateId=update_id
        )
        if scalars:
            base["scalars"] = scalars
        if alerts:
            base["alerts"] = alerts
        resumed_from = self._policy.resumed_from(declared)
        if resumed_from is not None:
            base["resumedFrom"] = resumed_from
        count = lines_that_fit(len(json.dumps(base)), (size for _, _, size in self._carry))
        return _Request(
            progress=progress,
            operation=operation,
            metrics=metrics,
            lines=[wire for _, wire, _ in self._carry[:count]],
            timestamp=timestamp,
            update_id=update_id,
            scalars=scalars or None,
            alerts=alerts or None,
            resumed_from=resumed_from,
            line_count=count,
            last_seq=max((seq for seq, _, _ in self._carry[:count]), default=0),
            last_scalar_seq=steps[-1][0] if steps else 0,
            version=version,
        )

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
            self._warn("metrics-error", "GPU metrics failed; this sample is skipped: %r", exc)
            self._policy.sampled(ok=False, metrics_sent=False)  # try again in one interval
            return None
        if metrics != sample:
            self._warn(
                "metrics-cleaned",
                "GPU metrics had values or keys outside the contract; such values are sent as "
                "null and unknown keys dropped: %.300r",
                sample,
            )
        self._policy.sampled(ok=True, metrics_sent=metrics is not None)
        return metrics

    def _complete(self) -> None:
        assert self._completion is not None
        done = self._completion
        try:
            error = None if done.error is None else truncate_message(_utf8(done.error))
            self._client.complete_job(
                self._job.job_id, self._job.worker_id, done.status, done.result, error
            )
        except APIError as exc:
            if not rejected(exc):
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
        elif failure.kind == "rejected":
            _log.warning("jobwatch cannot create job %r: %s", job_id, exc)
        elif failure.kind == "unreachable_at_exit":
            with self._outbox.lock:
                lines = len(self._carry) + len(self._outbox.logs)
            _log.warning(
                "jobwatch: %s is unreachable at exit; the last update and %d log lines "
                "of job %r were not delivered (%s)",
                url,
                lines,
                job_id,
                exc,
            )
        elif failure.kind == "unreachable" and failure.first:
            _log.warning("jobwatch cannot reach %s (%s); retrying", url, exc)
        elif failure.kind == "error":
            _log.warning("jobwatch reporter error; retrying", exc_info=exc)
        return failure.wait

    def _warn(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("jobwatch: " + message, *args)


def _carry_line(line: LogLine) -> tuple[int, dict[str, Any], int]:
    seq, level, message, created = line
    wire = {
        "level": level,
        "message": truncate_message(_utf8(message)),
        "timestamp": format_ts(created),
    }
    return seq, wire, len(json.dumps(wire)) + 2


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
    with _running_lock:
        senders = list(_running)
    deadline = time.monotonic() + EXIT_TIMEOUT
    for sender in senders:
        sender.request_finish(None, deadline, at_exit=True)
    for sender in senders:
        sender.join(deadline - time.monotonic())
    for sender in senders:
        sender.halt()
