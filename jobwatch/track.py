"""``jobwatch.track``: tqdm's one-liner, reporting to jobwatch and showing the job live.

``for batch in jobwatch.track(loader): ...`` is all a training loop needs:
a :class:`~jobwatch.report.reporter.Reporter` reports progress after each item, a
:class:`~jobwatch.notebook.JobMonitor` shows the job in the running cell (in
a terminal, the live text view of ``jobwatch watch``), and the job completes
when the loop ends or fails with the exception that ended it. Without a
server URL it starts the embedded one (:func:`jobwatch.serve`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from jobwatch.report.reporter import Reporter

__all__ = ["Tracked", "track"]

_log = logging.getLogger("jobwatch.track")
T = TypeVar("T")

REPORT_INTERVAL = 0.5
"""Seconds between two progress requests of a tracked loop (its Reporter's ``interval``)."""
FINAL_VIEW_TIMEOUT = 5.0
"""Seconds the end of a loop waits for the monitor to show the job's end."""


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
        Price of the machine per hour, for the cost (QUBIC by default).
    description:
        Prefix of the current operation: ``"epoch 3/10"``.
    initial:
        Items already done (a resumed run): counting starts there.
    metrics:
        Training metrics logged after each item (see
        :meth:`jobwatch.Reporter.track`): a dict the loop body fills, or a
        function returning one. :meth:`Tracked.log_metrics` logs them explicitly.
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
    The job completes when the loop runs to its end (also after ``break``),
    fails with the exception's text when the iterable raises, and is
    cancelled on Ctrl-C. An exception raised by the loop's body cannot be seen
    from the iterator: in a notebook the cell's error fails the job; elsewhere
    write ``with jobwatch.track(...) as items: for item in items: ...`` to
    have it failed.
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
        capture_output: bool = True,
    ) -> None:
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
            capture_output=capture_output,
        )
        try:
            self._items = self.reporter.track(
                iterable, total, description, initial=initial, metrics=metrics
            )
        except ValueError:
            self.reporter.close(timeout=0)
            raise
        self._total = total
        self._iterable = iterable
        self._started = False
        self._in_with = False
        self._ended = False
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
            self._left_early()
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

    def _end(self, error: BaseException | None) -> None:
        """Complete, cancel (Ctrl-C) or fail the job, once; then let the view show the end."""
        if self._ended:
            return
        self._ended = True
        # The Reporter's own exit: complete, cancelled on KeyboardInterrupt, else failed.
        self.reporter.__exit__(type(error) if error is not None else None, error, None)
        self._wait_for_view()

    def _left_early(self) -> None:
        if self._in_with:
            return
        shell = _kernel_shell()
        if shell is None:
            self._end(None)
            return

        # The cell's outcome says whether the body raised: decide when it ends.
        def after_cell(result: Any) -> None:
            shell.events.unregister("post_run_cell", after_cell)
            self._end(getattr(result, "error_in_exec", None))

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
