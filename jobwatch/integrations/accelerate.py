"""``JobwatchTracker``: report an Accelerate training loop to jobwatch.

Follows Accelerate's tracker API (``accelerate.tracking.GeneralTracker``):
``Accelerator(log_with=JobwatchTracker())``, then ``init_trackers`` calls
``start`` and ``store_init_configuration``, ``accelerator.log(values,
step=...)`` calls ``log`` and ``accelerator.end_training()`` calls ``finish``,
each on the main process only (``main_process_only``, Accelerate's
``on_main_process``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jobwatch.integrations.environment import ReporterSource, log_config
from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter

try:
    from accelerate.tracking import GeneralTracker, on_main_process
except ImportError as exc:
    raise ImportError(
        'jobwatch.integrations.accelerate needs Accelerate: pip install "jobwatch[frameworks]"'
    ) from exc

__all__ = ["JobwatchTracker"]


class JobwatchTracker(GeneralTracker):  # type: ignore[misc]  # accelerate is read as untyped
    """An Accelerate tracker that reports a training loop as a jobwatch job.

    ``Accelerator(log_with=JobwatchTracker(total_steps=...))`` then, as for any
    tracker, ``accelerator.init_trackers("project", config={...})``,
    ``accelerator.log({...}, step=step)`` and ``accelerator.end_training()``:

    - **configuration**: ``init_trackers``'s ``config``
      (:func:`jobwatch.integrations.environment.log_config`);
    - **training metrics**: each ``accelerator.log`` call's numbers at its
      ``step`` (the Reporter's own counter without one); values that are
      not one number are left out with one warning per name;
    - **progress**: ``100 * step / total_steps`` % with each ``log`` that
      has a step, and the operation ``"step 120/400"``. Accelerate keeps no
      count of the steps to come (the loop is yours), so give
      ``total_steps`` (``epochs * len(train_dataloader)``) for progress and
      time remaining; without it the operation reads ``"step 120"``;
    - **completion**: ``end_training()`` completes the job with the last
      logged numbers as its result. Accelerate has no hook for an exception
      in your loop: use a :class:`~jobwatch.Reporter` as a context manager
      around it (and pass it here) to fail the job.

    Parameters
    ----------
    reporter:
        A :class:`~jobwatch.Reporter`, a job id, or ``None`` (default):
        ``$JOBWATCH_JOB``, else a new id ``accelerate-<date>-<time>-<hex>``.
        A Reporter is made on the main process only, at ``init_trackers``.
    total_steps:
        The steps the loop will take (an integer >= 1), or ``None``.
    complete:
        Complete the job at ``end_training()``.
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` when ``reporter`` is
        not one; those left out come from ``JOBWATCH_*`` variables.

    Raises
    ------
    ValueError
        ``total_steps`` is not an integer >= 1 or ``None``; or as
        :class:`jobwatch.integrations.transformers.JobwatchCallback`.
    """

    name = "jobwatch"
    requires_logging_directory = False
    main_process_only = True

    def __init__(
        self,
        reporter: Reporter | str | None = None,
        *,
        total_steps: int | None = None,
        complete: bool = True,
        **reporter_options: Any,
    ) -> None:
        super().__init__()
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
        ):
            raise ValueError(f"total_steps must be an integer >= 1 or None, got {total_steps!r}")
        self._source = ReporterSource(reporter, reporter_options, "accelerate")
        self._total = total_steps
        self._complete = complete
        self._metrics: MetricsFilter | None = None
        self._last: dict[str, float] = {}

    @property
    def tracker(self) -> Reporter | None:
        """Accelerate: the tracking object, the :class:`~jobwatch.Reporter` (``None``
        before ``init_trackers`` and on the other processes)."""
        return self._source.made

    @on_main_process  # type: ignore[untyped-decorator]
    def start(self) -> None:
        """Accelerate: ``init_trackers`` starts the run; makes the Reporter."""
        self._metrics = MetricsFilter(self._source.get())
        self._metrics.reporter.update(
            0.0, "step 0" if self._total is None else f"step 0/{self._total}"
        )

    @on_main_process  # type: ignore[untyped-decorator]
    def store_init_configuration(self, values: Mapping[str, Any]) -> None:
        """Accelerate: ``init_trackers``'s ``config``."""
        if self._metrics is not None:
            log_config(self._metrics.reporter, values)

    def log(self, values: Mapping[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Accelerate: ``accelerator.log(values, step)``.

        Not behind ``on_main_process`` as the other hooks are: that check builds
        a ``PartialState`` on every call (several microseconds a step), and on
        the other processes :meth:`start` never made the reporter, so this
        returns at once there.
        """
        if self._metrics is None:
            return
        numbers = self._metrics.numbers(values)
        self._last.update({k: v for k, v in numbers.items() if math.isfinite(v)})
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            self._metrics.send(numbers, None)
            return
        self._metrics.send(numbers, step)
        if self._total is None:
            self._metrics.reporter.update(0.0, f"step {step}")
        else:
            progress = min(100.0, 100.0 * step / self._total)
            self._metrics.reporter.update(progress, f"step {min(step, self._total)}/{self._total}")

    @on_main_process  # type: ignore[untyped-decorator]
    def finish(self) -> None:
        """Accelerate: ``end_training()``; completes the job."""
        if self._metrics is not None and self._complete:
            self._metrics.reporter.complete(self._last or None)
            self._metrics = None
