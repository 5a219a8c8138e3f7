"""``jobwatch_callback()``: report LightGBM training (``lightgbm.train`` or the
scikit-learn estimators) to jobwatch.

Follows LightGBM's callback API (``lightgbm/callback.py``): a callable with
``order`` and ``before_iteration`` attributes, called after each boosting
round with a ``CallbackEnv`` (``iteration``, ``begin_iteration``,
``end_iteration`` and the round's ``evaluation_result_list``). LightGBM calls
no callback when training ends: its early stopping raises
``EarlyStopException`` out of the callbacks and ``lightgbm/engine.py`` leaves
its loop.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

from jobwatch.integrations.environment import ReporterSource
from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter

try:
    import lightgbm  # noqa: F401  # the message below, rather than a failure at the first round
except ImportError as exc:
    raise ImportError(
        'jobwatch.integrations.lightgbm needs LightGBM: pip install "jobwatch[frameworks]"'
    ) from exc

__all__ = ["JobwatchCallback", "jobwatch_callback"]

ORDER = 25
"""Where the callback runs among LightGBM's: after ``record_evaluation`` (20),
before ``early_stopping`` (30), so the round that stops training is reported."""


class JobwatchCallback:
    """LightGBM's callback reporting training as a jobwatch job; made by
    :func:`jobwatch_callback`, which documents it."""

    def __init__(self, source: ReporterSource, complete: bool) -> None:
        self.order = ORDER  # on the instance: lightgbm.train sets a missing one on it
        self.before_iteration = False
        self._source = source
        self._complete = complete
        self._metrics: MetricsFilter | None = None
        self._last: dict[str, float] = {}

    @property
    def reporter(self) -> Reporter | None:
        """The Reporter, once training started."""
        return self._source.made

    def __call__(self, env: Any) -> None:
        """LightGBM: round ``env.iteration`` is done."""
        if self._metrics is None:
            self._metrics = MetricsFilter(self._source.get())
        rounds = env.end_iteration - env.begin_iteration
        done = env.iteration - env.begin_iteration + 1
        latest = {f"{r[0]}/{r[1]}": r[2] for r in env.evaluation_result_list or ()}
        numbers = self._metrics.numbers(latest)
        self._last = {k: v for k, v in numbers.items() if math.isfinite(v)}
        self._metrics.send(numbers, done)
        progress = min(100.0, 100.0 * done / rounds) if rounds > 0 else 0.0
        self._metrics.reporter.update(progress, f"round {done}/{rounds}")
        if done >= rounds:
            self.finish()

    def finish(self, error: BaseException | None = None) -> None:
        """Complete the job with the last round's results (or fail it with
        ``error``); later calls do nothing. Called by itself after the last
        round, and by ``with`` at the end of its block."""
        if self._metrics is None or not self._complete:
            return
        reporter, self._metrics = self._metrics.reporter, None
        if error is None:
            reporter.complete(self._last or None)
        else:
            reporter.fail(error)

    def __enter__(self) -> JobwatchCallback:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    def __repr__(self) -> str:
        return f"jobwatch_callback(job_id={self._source.job_id!r})"


def jobwatch_callback(
    reporter: Reporter | str | None = None, *, complete: bool = True, **reporter_options: Any
) -> JobwatchCallback:
    """A LightGBM callback that reports training as a jobwatch job.

    ``lgb.train(..., callbacks=[jobwatch_callback()])`` or
    ``LGBMClassifier().fit(..., callbacks=[jobwatch_callback()])`` needs no
    arguments (the server, job and price come from ``JOBWATCH_*`` variables):

    - **progress**: ``100 * rounds done / num_boost_round`` % after each round
      (from LightGBM's ``begin_iteration`` and ``end_iteration``), and the
      operation ``"round 12/100"``;
    - **training metrics**: each round's evaluation results as
      ``<data>/<metric>`` (``valid_0/binary_logloss``) at the round's number
      (1-based);
    - **completion**: after the last round the job is completed with that
      round's results. LightGBM calls no callback when training stops early
      or raises, so for those use the callback as a context manager around
      training: the end of the ``with`` block completes the job at 100 %
      (early stopping) or fails it with the exception::

          with jobwatch_callback() as callback:
              lgb.train(params, data, 500, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(10), callback])

    Parameters
    ----------
    reporter:
        A :class:`~jobwatch.Reporter`, a job id, or ``None`` (default):
        ``$JOBWATCH_JOB``, else a new id ``lightgbm-<date>-<time>-<hex>``,
        made at the first round.
    complete:
        Complete (or fail) the job when training ends.
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` when ``reporter`` is
        not one; those left out come from ``JOBWATCH_*`` variables.

    Returns
    -------
    JobwatchCallback
        The callback, also a context manager.

    Raises
    ------
    ValueError
        As :class:`jobwatch.integrations.transformers.JobwatchCallback`.
    """
    return JobwatchCallback(ReporterSource(reporter, reporter_options, "lightgbm"), complete)
