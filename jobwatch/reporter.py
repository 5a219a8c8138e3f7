"""Reporter: what training code calls to report progress, GPU metrics and log lines.

Calls made in a training loop only record into an :class:`~jobwatch._outbox.Outbox`
and return; the :class:`~jobwatch._sender.Sender` thread talks to the server.
Server trouble never raises into the training loop (it is logged, logger
``jobwatch.reporter``); bad arguments raise :class:`ValueError` at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeAlias, TypeVar

from jobwatch import gpu as _gpu
from jobwatch._outbox import Completion, JobSpec, Outbox
from jobwatch._sender import Sender
from jobwatch.client import Client
from jobwatch.protocol import (
    CURRENCY_RULE,
    LOG_LEVELS,
    MAX_BODY_BYTES,
    MAX_TEXT,
    CompleteRequest,
    currency_code,
    truncate_message,
    valid_job_id,
)

__all__ = ["Reporter"]

_log = logging.getLogger("jobwatch.reporter")
T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
"""Seconds :meth:`Reporter.complete`, :meth:`~Reporter.fail` and :meth:`~Reporter.close` wait."""
MAX_WAIT = 1e6
"""Longest ``interval`` or ``timeout`` accepted, in seconds (about 11 days)."""

GpuOption: TypeAlias = "bool | Literal['auto'] | Callable[[], Mapping[str, Any] | None]"
"""What ``gpu=`` takes: ``"auto"``/``True`` (NVML), ``False``, or a metrics callable."""


class Reporter:
    """Report one job's progress, GPU metrics and log lines to a jobwatch server.

    Parameters
    ----------
    job_id:
        The job to report to; created on first contact (``PUT /api/jobs/{id}``)
        if it does not exist. 1-128 letters, digits and ``. _ : @ -``.
    url:
        Base URL of the server; default ``$JOBWATCH_URL`` or ``http://127.0.0.1:8765``.
    worker_id:
        Who reports; default this machine's hostname, so a worker restarted on
        the same machine can go on reporting (a job binds to its first worker).
    price_per_hour:
        Price of the machine in ``currency`` per hour (>= 0), for cost estimates.
    gpu:
        ``"auto"`` or ``True``: send :func:`jobwatch.gpu.sample` with each update
        (nothing on a machine without an NVIDIA GPU); ``False``: no metrics; or a
        callable returning the contract's metrics dict (or ``None``).
    interval:
        Seconds between requests (> 0); updates in between are coalesced.
    token:
        Bearer token for the server, or ``None``.
    name, currency:
        The job's display name and the currency of its price (default QUBIC).
    max_log_lines:
        Log lines kept while the server cannot take them; beyond, the oldest are
        dropped and a warning line saying how many is sent in their place. One
        batch of up to 1000 lines being sent is held besides.
    timeout:
        Seconds to wait for each HTTP answer.

    Raises
    ------
    ValueError
        An argument is invalid. The server is not contacted here: an
        unreachable server never raises.

    Notes
    -----
    As a context manager it calls :meth:`complete` on normal exit and
    :meth:`fail` with the exception on error (which then propagates). At
    interpreter exit, an unclosed reporter gets a few seconds (in all, see
    :data:`jobwatch._sender.EXIT_TIMEOUT`) to deliver what it holds; the job
    is not completed then. Delivery is at least once: a request whose answer
    was lost (the server died after storing it) is sent again.
    """

    def __init__(
        self,
        job_id: str,
        *,
        url: str | None = None,
        worker_id: str | None = None,
        price_per_hour: float | None = None,
        gpu: GpuOption = "auto",
        interval: float = 1.0,
        token: str | None = None,
        name: str | None = None,
        currency: str | None = None,
        max_log_lines: int = 10_000,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(job_id, str) or not valid_job_id(job_id):
            raise ValueError(
                "job_id must be 1-128 letters, digits and . _ : @ -, starting with a letter "
                f"or digit; got {job_id!r}"
            )
        worker_id = (socket.gethostname() or "worker") if worker_id is None else worker_id
        _check_text("worker_id", worker_id, 1, MAX_TEXT)
        _check_text("name", name, 0, MAX_TEXT)
        currency = _checked_currency(currency)
        if price_per_hour is not None and not _is_number(price_per_hour, 0.0, 1e9):
            raise ValueError(
                f"price_per_hour must be a number from 0 to 1e9, got {price_per_hour!r}"
            )
        if not _is_number(interval, 0.0, MAX_WAIT) or interval == 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if (
            isinstance(max_log_lines, bool)
            or not isinstance(max_log_lines, int)
            or max_log_lines < 1
        ):
            raise ValueError(f"max_log_lines must be an integer >= 1, got {max_log_lines!r}")
        _check_timeout(timeout)
        self.job_id = job_id
        self.worker_id = worker_id
        client = Client(url, token=token, timeout=timeout)  # ValueError for a bad url or timeout
        self.url = client.url
        self._outbox = Outbox(max_log_lines)
        self._closed = False
        self._warned_closed = False
        self._finish_lock = threading.Lock()
        job = JobSpec(job_id, worker_id, name, price_per_hour, currency)
        self._sender = Sender(client, job, self._outbox, _metrics_source(gpu), float(interval))
        finalizer = weakref.finalize(self, _abandoned, self._sender)
        finalizer.atexit = False  # the sender's own exit hook delivers at exit

    def update(self, progress: float, operation: str | None = None) -> None:
        """Record the newest progress; returns at once (no I/O, no logging).

        Parameters
        ----------
        progress:
            Percent done, 0 to 100.
        operation:
            What the job is doing, e.g. ``"epoch 3/10"``; ``None`` keeps the last one.
            Sent cut to 1024 characters; NUL characters become U+FFFD.

        Raises
        ------
        ValueError
            ``progress`` is not a number from 0 to 100, or ``operation`` not a string.
            After :meth:`close` nothing raises: the call is ignored (warned once).
        """
        if self._closed:
            self._warn_closed()
            return
        try:
            valid = 0.0 <= progress <= 100.0
        except TypeError:
            valid = False
        if not valid or type(progress) is bool:  # the server refuses booleans too
            raise ValueError(f"progress must be a number from 0 to 100 (percent), got {progress!r}")
        if operation is not None and not isinstance(operation, str):
            raise ValueError(f"operation must be a string or None, got {type(operation).__name__}")
        if operation is not None:
            operation = operation.replace("\x00", "\ufffd")  # the server refuses NUL
        self._outbox.record(float(progress), operation)

    def log(self, message: object, level: str = "info") -> None:
        """Queue one log line (timestamped now); it travels with the next update.

        Parameters
        ----------
        message:
            The text (anything else is turned into ``str``); over 16 KiB of
            UTF-8 it is cut with a marker. NUL characters, which the server
            refuses (PostgreSQL cannot store them), become U+FFFD.
        level:
            ``"info"``, ``"warning"`` or ``"error"`` (any case).

        Raises
        ------
        ValueError
            ``level`` is not one of those. After :meth:`close` the call is ignored.
        """
        if self._closed:
            self._warn_closed()
            return
        lowered = level.lower() if isinstance(level, str) else None
        if lowered not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}; got {level!r}")
        self._outbox.add_log(lowered, str(message).replace("\x00", "\ufffd"), time.time())

    def track(
        self, iterable: Iterable[T], total: float | None = None, description: str | None = None
    ) -> Iterator[T]:
        """Yield the items of ``iterable``, reporting progress after each (like tqdm).

        Parameters
        ----------
        iterable:
            The items to go through.
        total:
            How many items to expect; default ``len(iterable)`` where it has one.
            Progress is ``100 * done / total`` %, at most 100. Without a total,
            progress is left as it was and only the operation counts.
        description:
            Prefix of the operation, which reads ``"description 3/10"``
            (``"description 3/?"`` without a total).

        Raises
        ------
        ValueError
            ``total`` is negative or not a number, or ``description`` not a string
            (raised here, before iterating).
        """
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        elif not _is_number(total, 0.0, math.inf):
            raise ValueError(f"total must be a number >= 0, got {total!r}")
        if description is not None and not isinstance(description, str):
            raise ValueError(f"description must be a string, got {type(description).__name__}")
        return self._track(iterable, total, f"{description} " if description else "")

    def _track(self, iterable: Iterable[T], total: float | None, prefix: str) -> Iterator[T]:
        self._count(0, total, prefix)
        for done, item in enumerate(iterable, 1):
            yield item
            self._count(done, total, prefix)

    def _count(self, done: int, total: float | None, prefix: str) -> None:
        if self._closed:
            self._warn_closed()
        elif total is None:
            self._outbox.record(None, f"{prefix}{done}/?")
        else:
            progress = 100.0 if total == 0 else min(100.0, 100.0 * done / total)
            self._outbox.record(progress, f"{prefix}{done}/{total:g}")

    def logging_handler(self, level: int | str = logging.NOTSET) -> logging.Handler:
        """A :class:`logging.Handler` that forwards records as log lines.

        DEBUG and INFO become ``info``, WARNING ``warning``, ERROR and CRITICAL
        ``error``; the text is the handler's formatted record (with the
        traceback when there is one) and the timestamp the record's. Records
        emitted by the reporter's own thread are not forwarded, so its warnings
        cannot feed back. Attach it with ``logging.getLogger().addHandler(...)``.

        Parameters
        ----------
        level:
            The handler's threshold (default: everything that reaches it).
        """
        return _ReporterHandler(self, level)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far has been sent.

        Parameters
        ----------
        timeout:
            Seconds to wait at most; ``None`` waits as long as it takes (while
            the server is down that may be forever).

        Returns
        -------
        bool
            ``True`` when all was delivered (or dropped as the server refused
            it), ``False`` on timeout or once the reporter has stopped.

        Raises
        ------
        ValueError
            ``timeout`` is negative or over :data:`MAX_WAIT`.
        """
        if timeout is not None:
            _check_timeout(timeout)
        return self._sender.flush(timeout)

    def complete(self, result: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deliver what is pending, mark the job ``completed`` (progress 100), and close.

        Parameters
        ----------
        result:
            Any JSON value to store with the job (finite numbers only).
        timeout:
            Seconds to wait at most for the server, retries included.

        Returns
        -------
        bool
            Whether the server recorded the completion in time. ``False`` also
            after :meth:`close` (the call is then ignored) or when the job had
            finished already.

        Raises
        ------
        ValueError
            ``result`` is not portable JSON (finite numbers, 64-bit integers, at
            most 64 levels deep) or over 512 KiB, or ``timeout`` is
            negative or over :data:`MAX_WAIT`.
        """
        try:
            text = json.dumps(result, allow_nan=False)
            CompleteRequest.model_validate({"workerId": self.worker_id, "result": json.loads(text)})
        except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(f"result must be portable JSON: {exc}") from exc
        if len(text) > MAX_BODY_BYTES // 2:
            raise ValueError(
                f"result must be under {MAX_BODY_BYTES // 2} bytes as JSON, got {len(text)}"
            )
        return self._finish(Completion("completed", result=result), timeout)

    def fail(self, error: BaseException | str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deliver what is pending, mark the job ``failed`` with ``error``'s text, and close.

        An exception is stored as ``"Type: message"`` and its traceback is sent
        as an ``error`` log line first.

        Parameters
        ----------
        error:
            The exception or a message (cut to 16 KiB).
        timeout:
            Seconds to wait at most for the server, retries included.

        Returns
        -------
        bool
            Whether the server recorded the failure in time (see :meth:`complete`).

        Raises
        ------
        ValueError
            ``error`` is neither an exception nor a string, or ``timeout`` is
            negative or over :data:`MAX_WAIT`.
        """
        if isinstance(error, BaseException):
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        elif isinstance(error, str):
            text = detail = error
        else:
            raise ValueError(f"error must be an exception or a string, got {type(error).__name__}")
        if not self._closed:
            self._outbox.add_log("error", detail.rstrip(), time.time())
        return self._finish(Completion("failed", error=truncate_message(text)), timeout)

    def close(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deliver what is pending (waiting at most ``timeout`` seconds), then stop the thread.

        The job stays as it is (not completed). Idempotent; later calls return
        ``False`` at once. A request still in flight at the timeout ends by
        itself within the reporter's HTTP ``timeout`` and sends nothing more.

        Returns
        -------
        bool
            Whether everything recorded was delivered.

        Raises
        ------
        ValueError
            ``timeout`` is negative or over :data:`MAX_WAIT`.
        """
        return self._finish(None, timeout)

    def _finish(self, completion: Completion | None, timeout: float) -> bool:
        _check_timeout(timeout)
        with self._finish_lock:
            closed, self._closed = self._closed, True
        if closed:
            if completion is not None:
                self._warn_closed()
            return False
        return self._sender.finish(completion, timeout)

    def _warn_closed(self) -> None:
        if not self._warned_closed:
            self._warned_closed = True
            _log.warning("jobwatch: reporter for job %r is closed; ignoring calls", self.job_id)

    def _forward(self, level: str, message: str, created: float, thread: int | None) -> None:
        if not self._closed and thread != self._sender.ident:
            self._outbox.add_log(level, message, created)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._closed:
            return
        if exc is None:
            self.complete()
        elif isinstance(exc, KeyboardInterrupt):
            self._finish(
                Completion("cancelled", error="interrupted (KeyboardInterrupt)"), DEFAULT_TIMEOUT
            )
        else:
            self.fail(exc)

    def __repr__(self) -> str:
        return f"Reporter(job_id={self.job_id!r}, url={self.url!r}, worker_id={self.worker_id!r})"


class _ReporterHandler(logging.Handler):
    """Forwards log records to a :class:`Reporter` as log lines."""

    def __init__(self, reporter: Reporter, level: int | str) -> None:
        super().__init__(level)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        levelno = record.levelno
        level = (
            "error"
            if levelno >= logging.ERROR
            else "warning"
            if levelno >= logging.WARNING
            else "info"
        )
        try:
            self._reporter._forward(level, self.format(record), record.created, record.thread)
        except Exception:
            self.handleError(record)


def _metrics_source(gpu: GpuOption) -> Callable[[], Mapping[str, Any] | None] | None:
    if gpu is False:
        return None
    if gpu is True or (isinstance(gpu, str) and gpu == "auto"):
        return _gpu.sample
    if callable(gpu):
        return gpu
    raise ValueError(f"gpu must be 'auto', True, False or a callable, got {gpu!r}")


def _abandoned(sender: Sender) -> None:
    """A reporter was garbage-collected unclosed: deliver what it holds, then stop."""
    sender.request_finish(None, time.monotonic() + DEFAULT_TIMEOUT)


def _is_number(value: object, low: float, high: float) -> bool:
    """A real number (not a bool, not NaN) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return low <= value <= high and not math.isnan(value)


def _check_timeout(timeout: object) -> None:
    if not _is_number(timeout, 0.0, MAX_WAIT):
        raise ValueError(
            f"timeout must be a number of seconds from 0 to {MAX_WAIT:g}, got {timeout!r}"
        )


def _checked_currency(value: object) -> str | None:
    """``value`` as the server stores it (see :func:`~jobwatch.protocol.currency_code`)."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return currency_code(value)
    raise ValueError(f"currency {CURRENCY_RULE}; got {value!r}")


def _check_text(what: str, value: object, shortest: int, longest: int) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        raise ValueError(
            f"{what} must be a string of {shortest}-{longest} characters, got {value!r}"
        )
