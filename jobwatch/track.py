"""``jobwatch.track``: tqdm's one-liner, reporting to jobwatch and showing the job live.

``for batch in jobwatch.track(loader): ...`` is all a training loop needs:
a :class:`~jobwatch.report.reporter.Reporter` reports progress after each item, a
:class:`~jobwatch.notebook.JobMonitor` shows the job in the running cell (in
a terminal, the live text view of ``jobwatch watch``), and the job completes
when the loop ends or fails with the exception that ended it. Without a
server URL it starts the embedded one (:func:`jobwatch.serve`).
"""

from __future__ import annotations

import atexit
import dis
import logging
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from jobwatch.report.reporter import Reporter, track_total

__all__ = ["Tracked", "track"]

_log = logging.getLogger("jobwatch.track")
T = TypeVar("T")

REPORT_INTERVAL = 0.5
"""Seconds between two progress requests of a tracked loop (its Reporter's ``interval``)."""
FINAL_VIEW_TIMEOUT = 5.0
"""Seconds the end of a loop waits for the monitor to show the job's end."""
EARLY_END_WAIT = 30.0
"""Seconds a loop left by an exception waits to learn whether the exception ends the
program (``sys.excepthook``, ``threading.excepthook``: the job fails) before
completing its job (the exception was caught). Unwinding runs the ``finally``
blocks and ``with`` exits on the way (a checkpoint saved, ``wandb.finish()``),
which may take seconds; at interpreter exit it is decided at once."""

_LEFT_BY_STATEMENT = frozenset(
    dis.opmap[name]
    for name in (
        "POP_TOP",
        "STORE_FAST",
        "STORE_NAME",
        "STORE_GLOBAL",
        "DELETE_FAST",
        "DELETE_NAME",
        "DELETE_GLOBAL",
    )
    if name in dis.opmap
)
"""Instructions at which the code that drops a tracked loop's generator has no
exception in flight: ``POP_TOP`` is how ``break`` and ``return`` leave a ``for``
loop (CPython 3.10 to 3.13), the stores and deletes drop an iterator kept in a
name. Any other instruction may be one that raised."""


def track(
    iterable: Iterable[T],
    total: float | None = None,
    *,
    job: str | None = None,
    name: str | None = None,
    url: str | None = None,
    price_per_hour: float | None = None,
    description: str | None = None,
    initial: int = 0,
    metrics: Mapping[str, float] | Callable[[], Mapping[str, float] | None] | None = None,
    budget: float | None = None,
    stop_over_budget: bool = False,
    capture_output: bool = True,
) -> Tracked[T]:
    """Wrap ``iterable`` like ``tqdm.auto.tqdm``, reporting each item to jobwatch and showing it live.

    In a Jupyter kernel a :class:`~jobwatch.notebook.JobMonitor` appears in the
    running cell's output (progress, time remaining, cost, GPU charts, logs);
    elsewhere a live text view goes to standard error.

    Parameters
    ----------
    iterable:
        The items to go through (a data loader, ``range(epochs)``, ...).
    total:
        How many items to expect; default ``len(iterable)`` where it has one.
    job:
        The job id; default a new one from ``name`` (``"resnet-3f9a1c"``).
    name:
        The job's display name.
    url:
        The server; default ``$JOBWATCH_URL``, else an embedded server started
        in this process (:func:`jobwatch.serve`, needs ``jobwatch[server]``).
    price_per_hour:
        Price of the machine per hour, for the cost; default
        ``$JOBWATCH_PRICE_PER_HOUR``, in ``$JOBWATCH_CURRENCY`` (else the
        server's default currency, QUBIC unless its operator set another).
    description:
        Prefix of the current operation: ``"epoch 3/10"``.
    initial:
        Items already done (a resumed run): counting starts there.
    metrics:
        Training metrics logged after each item (see
        :meth:`jobwatch.Reporter.track`): a dict the loop body fills, or a
        function returning one. :meth:`Tracked.log_metrics` logs them explicitly.
    budget:
        The most the job should cost (see :class:`~jobwatch.Reporter`): alerts at
        a projected overrun, at 80 % and at 100 % spent.
    stop_over_budget:
        End the loop cleanly at the next item once the budget is spent, and
        mark the job cancelled with the reason (see :meth:`jobwatch.Reporter.track`).
    capture_output:
        What the process prints while the loop runs becomes the job's log
        (stdout as ``info``, stderr as ``warning``; see the Reporter's
        ``capture_output``); the live text view's own output is not captured.

    Returns
    -------
    Tracked
        Iterate over it once. It also has ``job_id``, ``url``, ``reporter``,
        ``monitor``, :meth:`Tracked.log` and :meth:`Tracked.log_metrics`.

    Raises
    ------
    ValueError
        A bad argument (before anything starts).
    jobwatch.errors.MissingExtra
        No ``url`` and the server extra is not installed.

    Notes
    -----
    The job completes when the loop runs to its end, fails with the
    exception's text when the iterable or the loop's body raises, and is
    cancelled on Ctrl-C (KeyboardInterrupt). A ``break`` (or ``return``) is an
    early stop that completes the job at once, as every completed job at
    100 %; its operation keeps where the loop stopped (``"epoch 4/10"``) and
    its log says ``jobwatch: the loop stopped early at epoch 4/10``.

    The loop's generator cannot see an exception of the body (CPython sets it
    aside while closing the generator), so when the body raises the job's end
    waits for what the exception does: it fails the job when it reaches
    ``sys.excepthook`` (a script), ``threading.excepthook`` (a thread) or ends
    the cell (a kernel's ``post_run_cell``); caught by your code, the job
    completes when the cell ends (in a kernel), else after
    :data:`EARLY_END_WAIT` seconds or at interpreter exit, whichever comes
    first. ``with jobwatch.track(...) as items:`` ends the job at the block's
    end instead, without waiting.
    """
    return Tracked(
        iterable,
        total,
        job=job,
        name=name,
        url=url,
        price_per_hour=price_per_hour,
        description=description,
        initial=initial,
        metrics=metrics,
        budget=budget,
        stop_over_budget=stop_over_budget,
        capture_output=capture_output,
    )


class Tracked(Generic[T]):
    """The iterable :func:`track` returns; see there for the parameters.

    Attributes
    ----------
    job_id, url:
        The job and its server.
    reporter:
        The :class:`~jobwatch.report.reporter.Reporter` that reports the job.
    monitor:
        The :class:`~jobwatch.notebook.JobMonitor` in the cell, or ``None`` outside
        a kernel.
    """

    def __init__(
        self,
        iterable: Iterable[T],
        total: float | None,
        *,
        job: str | None,
        name: str | None,
        url: str | None,
        price_per_hour: float | None,
        description: str | None,
        initial: int,
        metrics: Mapping[str, float] | Callable[[], Mapping[str, float] | None] | None = None,
        budget: float | None = None,
        stop_over_budget: bool = False,
        capture_output: bool = True,
    ) -> None:
        track_total(iterable, total, initial, description, metrics)  # before anything starts
        if job is None:
            job = _new_job_id(name or description)
        self.url = url or os.environ.get("JOBWATCH_URL") or _embedded_url()
        self.job_id = job
        self.reporter = Reporter(
            job,
            url=self.url,
            name=name,
            price_per_hour=price_per_hour,
            interval=REPORT_INTERVAL,
            budget=budget,
            capture_output=capture_output,
        )
        self._items = self.reporter.track(  # its arguments were checked above
            iterable,
            total,
            description,
            initial=initial,
            metrics=metrics,
            stop_over_budget=stop_over_budget,
        )
        self._total = total
        self._iterable = iterable
        self._started = False
        self._in_with = False
        self._ended = False
        self._end_lock = threading.Lock()
        self.monitor: Any = None
        self._watcher: threading.Thread | None = None
        self._show()

    def __len__(self) -> int:
        if self._total is not None:
            return int(self._total)
        return len(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[T]:
        if self._started:
            raise RuntimeError(f"jobwatch.track of job {self.job_id!r} can be iterated once")
        self._started = True
        try:
            yield from self._items
        except GeneratorExit:  # left early: `break`, or the loop's body raised
            self._left_early(sys._getframe().f_back)
            raise
        except BaseException as exc:  # the iterable itself raised
            self._end(exc)
            raise
        self._end(None)

    def __enter__(self) -> Tracked[T]:
        self._in_with = True  # the block's end decides how the job ends
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._end(exc)

    def log(self, message: object, level: str = "info") -> None:
        """Send a log line with the job (see :meth:`Reporter.log`)."""
        self.reporter.log(message, level)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Record training metrics for one step, charted live in the monitor (see
        :meth:`Reporter.log_metrics`)."""
        self.reporter.log_metrics(values, step)

    # -- the end ----------------------------------------------------------------

    def _end(self, error: BaseException | None, *, early: bool = False) -> None:
        """Complete, cancel (Ctrl-C) or fail the job, once; then let the view show the end.

        ``early``: the loop was left before its end without an error, said in the log."""
        with self._end_lock:
            ended, self._ended = self._ended, True
        if ended:
            return
        _early_ends.discard(self)
        if early and error is None:
            where = self.reporter._outbox.operation
            self.reporter.log(f"jobwatch: the loop stopped early at {where}")
        # The Reporter's own exit: complete, cancelled on KeyboardInterrupt, else failed.
        self.reporter.__exit__(type(error) if error is not None else None, error, None)
        self._wait_for_view()

    def _left_early(self, closer: types.FrameType | None) -> None:
        """The loop's generator was closed before its end, by ``closer``'s code: a
        ``break``, or an exception of the body unwinding (which the generator cannot
        see): end the job now, or once the exception's fate is known."""
        if self._in_with:
            return
        if closer is not None and closer.f_code.co_code[closer.f_lasti] in _LEFT_BY_STATEMENT:
            self._end(None, early=True)
            return
        shell = _kernel_shell()
        on_main = threading.current_thread() is threading.main_thread()
        _early_ends.add(self, threading.get_ident(), wait=shell is None or not on_main)
        if shell is None or not on_main:
            return

        # The cell's outcome says whether the body raised: decide when it ends.
        def after_cell(result: Any) -> None:
            shell.events.unregister("post_run_cell", after_cell)
            error = getattr(result, "error_in_exec", None)
            self._end(error, early=error is None)

        shell.events.register("post_run_cell", after_cell)

    def _wait_for_view(self) -> None:
        if self.monitor is not None:
            self.monitor.wait(FINAL_VIEW_TIMEOUT)
        if self._watcher is not None:
            self._watcher.join(FINAL_VIEW_TIMEOUT)

    # -- the view ---------------------------------------------------------------

    def _show(self) -> None:
        if _kernel_shell() is not None:
            from jobwatch.notebook import JobMonitor

            try:
                self.monitor = JobMonitor(self.job_id, self.url, wait_interval=0.2)
            except Exception as exc:  # no view must stop the training
                _log.warning("jobwatch: cannot show job %r: %s", self.job_id, exc)
                return
            self.monitor.display()
            return
        self._watcher = threading.Thread(
            target=_watch, args=(self.url, self.job_id), name="jobwatch-track-view", daemon=True
        )
        self._watcher.start()


class _EarlyEnds:
    """Tracked loops left while an exception may be unwinding, by thread, until
    that exception's fate ends each: ``sys.excepthook`` (the main thread's) or
    ``threading.excepthook`` (its thread's) fails it, and a timer of
    :data:`EARLY_END_WAIT` seconds or the interpreter's exit completes it.

    The hooks are put in front of the ones in place at the first loop left so,
    and call them after; the process has one of each, hence one of these.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Tracked[Any], int] = {}
        self._hooked = False

    def add(self, tracked: Tracked[Any], thread: int, *, wait: bool) -> None:
        """Wait for the fate of an exception unwinding in ``thread``; ``wait``: complete
        after :data:`EARLY_END_WAIT` seconds if none comes (not in a kernel's cell,
        whose end decides)."""
        with self._lock:
            self._waiting[tracked] = thread
            if not self._hooked:
                self._hooked = True
                self._previous_hook = sys.excepthook
                self._previous_thread_hook = threading.excepthook
                sys.excepthook = self._excepthook
                threading.excepthook = self._thread_excepthook
                atexit.register(self._at_exit)
        if wait:
            timer = threading.Timer(EARLY_END_WAIT, tracked._end, (None,), {"early": True})
            timer.daemon = True
            timer.name = "jobwatch-track-end"
            timer.start()

    def discard(self, tracked: Tracked[Any]) -> None:
        with self._lock:
            self._waiting.pop(tracked, None)

    def _fail(self, thread: int | None, error: BaseException | None) -> None:
        """End the loops left in ``thread`` with ``error`` (the exception that ends it)."""
        with self._lock:
            ended = [t for t, ident in self._waiting.items() if ident == thread]
        for tracked in ended:
            try:
                tracked._end(error)
            except Exception as exc:  # the traceback is still to be printed
                _log.warning("jobwatch: cannot end job %r: %s", tracked.job_id, exc)

    def _excepthook(
        self, kind: type[BaseException], error: BaseException, tb: types.TracebackType | None
    ) -> None:
        self._fail(threading.main_thread().ident, error)
        self._previous_hook(kind, error, tb)

    def _thread_excepthook(self, args: Any) -> None:
        self._fail(args.thread.ident if args.thread is not None else None, args.exc_value)
        self._previous_thread_hook(args)

    def _at_exit(self) -> None:
        """No exception ended the program: what was left early completes."""
        with self._lock:
            left = list(self._waiting)
        for tracked in left:
            tracked._end(None, early=True)


_early_ends = _EarlyEnds()


def _watch(url: str, job_id: str) -> None:
    """The terminal view of the job, on standard error, until the job ends."""
    from jobwatch.client.own_io import own_output
    from jobwatch.client.rest import Client
    from jobwatch.terminal.watch import Watcher

    try:
        with own_output(), Client(url) as client:  # the view is not the run's output
            Watcher(client, job_id, out=sys.stderr, wait=True, wait_interval=0.2).run()
    except Exception as exc:  # the view ends; the training goes on
        _log.warning("jobwatch: the view of job %r stopped: %s", job_id, exc)


def _kernel_shell() -> Any:
    """The IPython shell of a Jupyter kernel we run in, or ``None``."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    shell = ipython.get_ipython()
    return shell if shell is not None and "IPKernelApp" in getattr(shell, "config", {}) else None


def _embedded_url() -> str:
    import jobwatch

    return str(jobwatch.serve().url)


def _new_job_id(name: str | None) -> str:
    """``"resnet-3f9a1c"``: the name made id-safe (or ``"track"``), then 6 random hex digits."""
    stem = re.sub(r"[^A-Za-z0-9._:@-]+", "-", name or "").strip("-._:@")[:40] or "track"
    return f"{stem}-{os.urandom(3).hex()}"
