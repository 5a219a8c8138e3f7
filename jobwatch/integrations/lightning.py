"""``JobwatchCallback`` and ``JobwatchLogger``: report a Lightning ``Trainer.fit`` to jobwatch.

The callback follows Lightning's ``Callback`` API and reads the trainer's own
counters: ``global_step`` (optimizer steps done) over
``estimated_stepping_batches`` (the steps ``fit`` will take, epochs, limits
and gradient accumulation included) for progress, ``current_epoch`` and
``max_epochs`` for the operation. The logger follows Lightning's ``Logger``
API (``log_metrics``, ``log_hyperparams``, ``finalize``), so what a
``LightningModule`` logs with ``self.log`` reaches jobwatch as training
metrics. Given both, they report to one job. Only global rank zero reports,
as Lightning's own loggers do (``rank_zero_only``).

This module works with the ``lightning`` package (``import lightning``), not
with the older ``pytorch_lightning`` one, whose ``Trainer`` takes only its own
callback and logger classes.
"""

from __future__ import annotations

import math
import sys
import warnings
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from jobwatch.integrations.environment import ReporterSource, log_config
from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as exc:
    raise ImportError(
        'jobwatch.integrations.lightning needs Lightning 2: pip install "jobwatch[frameworks]"'
    ) from exc

__all__ = ["JobwatchCallback", "JobwatchLogger"]


class JobwatchLogger(Logger):  # type: ignore[misc]  # lightning is read as untyped
    """A Lightning ``Logger`` that sends what is logged to a jobwatch job.

    ``Trainer(logger=JobwatchLogger())`` needs no arguments (the server, job
    and price come from ``JOBWATCH_*`` variables, as for
    :class:`JobwatchCallback`):

    - ``self.log("loss", ...)`` in a ``LightningModule`` becomes the training
      metric ``loss`` at Lightning's step (the 0-based index of the last
      optimizer step, as its CSV and TensorBoard loggers write it), every
      ``log_every_n_steps`` steps and at epoch ends, as Lightning logs it;
      values that are not one number are left out with one warning per name;
    - ``save_hyperparameters()`` (``log_hyperparams``) sends the
      configuration (:func:`jobwatch.integrations.environment.log_config`);
    - when ``fit`` ends the job is completed with the last logged metrics as
      its result, and when it raises it is failed with the exception
      (``"RuntimeError: out of memory"``), or cancelled on Ctrl-C
      (``KeyboardInterrupt``), as :class:`~jobwatch.Reporter` does as a context
      manager (Lightning's ``finalize("success")`` and ``finalize("failed")``;
      ``finalize`` is told no exception, so it is read from the one Lightning is
      handling, ``sys.exc_info()``; without one the error is "Lightning's fit
      failed"); with a :class:`JobwatchCallback` as well, the callback does both
      instead.

    Progress needs the callback: a logger is not told how far training is.

    Parameters
    ----------
    reporter:
        A :class:`~jobwatch.Reporter`, a job id, or ``None`` (``$JOBWATCH_JOB``,
        else a new id ``lightning-<date>-<time>-<hex>``); a Reporter is made on
        rank zero at the first thing logged.
    complete:
        Finish the job when ``fit`` ends (completed or failed).
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` when ``reporter`` is
        not one; those left out come from ``JOBWATCH_*`` variables.

    Raises
    ------
    ValueError
        As :class:`JobwatchCallback`.
    """

    def __init__(
        self,
        reporter: Reporter | str | None = None,
        *,
        complete: bool = True,
        **reporter_options: Any,
    ) -> None:
        super().__init__()
        self._source = ReporterSource(reporter, reporter_options, "lightning")
        self._complete = complete
        self._metrics: MetricsFilter | None = None
        self._last: dict[str, float] = {}
        self.finished_by_callback = False

    @property
    def name(self) -> str:
        """Lightning: the logger's name, ``"jobwatch"``."""
        return "jobwatch"

    @property
    def version(self) -> str:
        """Lightning: the run's version, the job id."""
        return self._source.job_id

    @property
    def experiment(self) -> Reporter:
        """The :class:`~jobwatch.Reporter` (made on first use)."""
        return self._filter().reporter

    def _filter(self) -> MetricsFilter:
        if self._metrics is None:
            self._metrics = MetricsFilter(self._source.get())
        return self._metrics

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Lightning: ``metrics`` logged at ``step`` (``trainer.global_step``)."""
        metrics_filter = self._filter()
        numbers = metrics_filter.numbers(metrics)
        self._last.update({k: v for k, v in numbers.items() if math.isfinite(v)})
        metrics_filter.send(numbers, step or 0)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Lightning: the run's hyperparameters (``save_hyperparameters()``)."""
        log_config(self.experiment, vars(params) if isinstance(params, Namespace) else params)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def finalize(self, status: str) -> None:
        """Lightning: the run ended with ``status`` (``"success"``, ``"failed"``,
        ``"finished"``); finishes the job unless a :class:`JobwatchCallback` did."""
        if not self._complete or self.finished_by_callback or self._metrics is None:
            return
        if status == "failed":
            _end_with(self._metrics.reporter, sys.exc_info()[1] or "Lightning's fit failed")
        else:
            self._metrics.reporter.complete(self._last or None)
        self._metrics = None


class JobwatchCallback(Callback):  # type: ignore[misc]  # lightning is read as untyped
    """A Lightning ``Callback`` that reports ``Trainer.fit`` as a jobwatch job.

    ``Trainer(callbacks=[JobwatchCallback()])`` needs no arguments: the server,
    token, job id, name and price come from ``JOBWATCH_*`` variables. Reports,
    each call returning at once (:meth:`jobwatch.Reporter.update`):

    - **progress**: ``100 * trainer.global_step / trainer.estimated_stepping_batches`` %
      after each training batch (a fit resumed from a checkpoint starts where
      it was);
    - **operation**: ``"epoch 2/5, step 120/300"`` (``current_epoch + 1`` of
      ``max_epochs``; ``"epoch 2"`` without ``max_epochs``), ``"epoch 2/5,
      validation"`` while validating;
    - **training metrics**: with a :class:`JobwatchLogger` among the
      trainer's loggers, what the module logs comes through it to the same
      job; without one, ``trainer.callback_metrics`` at the end of each
      training epoch, at the step Lightning's loggers would give them
      (``trainer.global_step - 1``, the index of the epoch's last step);
    - **completion**: at the end of ``fit`` (early stopping too) the job is
      completed with ``trainer.callback_metrics`` as its result; an exception
      in ``fit`` fails it with that exception, and Ctrl-C (``KeyboardInterrupt``,
      which Lightning catches and turns into ``sys.exit(1)``) cancels it, as
      :class:`~jobwatch.Reporter` does as a context manager (Lightning's
      ``on_exception``).

    One callback reports one ``fit``: a second ``fit`` given the same callback
    is not reported and warns (``UserWarning``) to make a new callback, which
    reports a new job (a new id, unless ``reporter`` or ``$JOBWATCH_JOB`` names
    the finished one).

    Parameters
    ----------
    reporter:
        A :class:`~jobwatch.Reporter`, a job id, or ``None`` (default): the
        :class:`JobwatchLogger`'s Reporter where the trainer has one, else
        ``$JOBWATCH_JOB``, else a new id ``lightning-<date>-<time>-<hex>``.
        A Reporter is made on global rank zero only, when ``fit`` starts.
    complete:
        Complete (or fail) the job when ``fit`` ends.
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` when ``reporter`` is
        not one; those left out come from ``JOBWATCH_*`` variables.

    Raises
    ------
    ValueError
        Options come with a Reporter, the job id or ``$JOBWATCH_PRICE_PER_HOUR``
        is invalid (here), or another option is (when ``fit`` starts). Nothing
        raises once training runs.
    """

    def __init__(
        self,
        reporter: Reporter | str | None = None,
        *,
        complete: bool = True,
        **reporter_options: Any,
    ) -> None:
        self._given = reporter is not None or bool(reporter_options)
        self._source = ReporterSource(reporter, reporter_options, "lightning")
        self._complete = complete
        self._reporter: Reporter | None = None
        self._metrics: MetricsFilter | None = None
        self._started = False

    @property
    def reporter(self) -> Reporter | None:
        """The Reporter, once ``fit`` started on this process (``None`` on other ranks)."""
        return self._reporter

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Lightning: ``fit`` starts; makes (or finds) the Reporter on rank zero."""
        if not trainer.is_global_zero:
            return
        if self._started:
            warnings.warn(
                f"JobwatchCallback: this callback reported job {self._source.job_id!r}, already "
                "finished; this fit is not reported. Give each fit a new JobwatchCallback.",
                UserWarning,
                stacklevel=2,
            )
            return
        self._started = True
        logger = next((lg for lg in trainer.loggers if isinstance(lg, JobwatchLogger)), None)
        if logger is not None:
            logger.finished_by_callback = self._complete
        if logger is not None and not self._given:
            self._reporter = logger.experiment
        else:
            self._reporter = self._source.get()
            self._metrics = MetricsFilter(self._reporter)
        self._report(trainer)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Lightning: a training batch is done."""
        if self._reporter is not None:
            self._report(trainer)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Lightning: validation starts (also the sanity check before training)."""
        if self._reporter is not None and trainer.state.fn == "fit":
            self._reporter.update(self._progress(trainer), f"{_epoch(trainer)}, validation")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Lightning: validation is done."""
        if self._reporter is not None:
            self._report(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Lightning: a training epoch is done; logs its metrics when no logger does."""
        if self._metrics is not None:
            # the step Lightning's own loggers give epoch-end metrics: the last step's index
            self._metrics.log(trainer.callback_metrics, max(0, trainer.global_step - 1))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Lightning: ``fit`` finished (early stopping too); completes the job."""
        # no new operation here: Lightning counts an epoch cut short by max_steps as done
        if self._reporter is not None and self._complete:
            numbers = MetricsFilter(self._reporter).numbers(trainer.callback_metrics)
            self._reporter.complete({k: v for k, v in numbers.items() if math.isfinite(v)} or None)
            self._reporter = None

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Lightning: ``fit`` raised ``exception``; fails the job with it (cancels it
        on ``KeyboardInterrupt``)."""
        if self._reporter is not None and self._complete:
            _end_with(self._reporter, exception)
            self._reporter = None

    def _report(self, trainer: Any) -> None:
        assert self._reporter is not None
        total = trainer.estimated_stepping_batches
        steps = (
            f"step {trainer.global_step}/{total}"
            if math.isfinite(total)
            else f"step {trainer.global_step}"
        )
        self._reporter.update(self._progress(trainer), f"{_epoch(trainer)}, {steps}")

    @staticmethod
    def _progress(trainer: Any) -> float:
        total = trainer.estimated_stepping_batches
        if not total or not math.isfinite(total):
            return 0.0
        return min(100.0, max(0.0, 100.0 * float(trainer.global_step) / float(total)))

    def __repr__(self) -> str:
        return f"JobwatchCallback(job_id={self._source.job_id!r})"


def _end_with(reporter: Reporter, error: BaseException | str) -> None:
    """Finish the job as a Reporter's ``with`` block ending in ``error`` would: failed
    with it, cancelled on Ctrl-C (one rule for both, :meth:`Reporter.__exit__`)."""
    if isinstance(error, str):
        reporter.fail(error)
    else:
        reporter.__exit__(type(error), error, None)


def _epoch(trainer: Any) -> str:
    epochs = trainer.max_epochs
    current = trainer.current_epoch + 1
    if epochs is not None and epochs > 0:
        return f"epoch {min(current, epochs)}/{epochs}"
    return f"epoch {current}"
