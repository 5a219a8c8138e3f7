"""``JobwatchCallback``: report a Hugging Face ``Trainer`` run to jobwatch.

Follows transformers' callback API (``transformers.TrainerCallback``): the
``TrainerState`` passed to each event holds ``global_step`` and ``max_steps``
(optimizer steps), ``epoch`` (a float, epochs done) and ``num_train_epochs``;
``on_log`` gets what ``Trainer.log`` logs (training loss and learning rate,
evaluation metrics, the end-of-training summary). As transformers' own
integrations do, only the world's process zero (``state.is_world_process_zero``)
reports.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from jobwatch.integrations.environment import ReporterSource, log_config
from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise ImportError(
        'jobwatch.integrations.transformers needs transformers: pip install "jobwatch[frameworks]"'
    ) from exc

__all__ = ["JobwatchCallback"]

SUMMARY_KEY = "train_runtime"
"""The key of the logs ``Trainer.train`` logs once at its end (runtime, samples
per second, ``train_loss``, ``total_flos``): they are the job's result."""


class JobwatchCallback(TrainerCallback):  # type: ignore[misc]  # transformers is read as untyped
    """A ``transformers.TrainerCallback`` that reports ``Trainer.train()`` as a jobwatch job.

    ``Trainer(..., callbacks=[JobwatchCallback])`` needs no arguments: the
    server, token, job id, name and price come from ``JOBWATCH_*`` variables
    (:data:`jobwatch.integrations.environment.ENVIRONMENT`; the job's name defaults
    to ``TrainingArguments.run_name``). Reports, each call returning at once
    (:meth:`jobwatch.Reporter.update`):

    - **progress**: ``100 * state.global_step / state.max_steps`` % after each
      optimizer step (a run resumed from a checkpoint starts where it was);
    - **operation**: ``"epoch 2/3, step 120/375"`` (the epoch 1-based, from
      ``state.epoch``), ``"epoch 2/3, evaluation"`` while evaluating;
    - **training metrics**: what ``Trainer.log`` logs (``loss``,
      ``learning_rate``, ``grad_norm``, ``epoch``, ``eval_loss``,
      ``eval_accuracy`` ...) under transformers' names, at
      ``state.global_step``; values that are not one number are left out with
      one warning per name;
    - **configuration**: ``TrainingArguments.to_sanitized_dict()`` when training
      starts (:func:`jobwatch.integrations.environment.log_config`);
    - **completion**: when training ends the job is completed with the run's
      summary (``train_runtime``, ``train_loss`` ...) as its result, unless
      ``complete=False``; this waits for the server at most 30 s.

    ``Trainer`` calls no callback when training raises, so a crash cannot mark
    the job failed from here: pass a :class:`~jobwatch.Reporter` used as a
    context manager around ``trainer.train()`` for that (its ``__exit__``
    fails the job). The server being down never reaches training: the
    Reporter retries in its own thread.

    Parameters
    ----------
    reporter:
        The :class:`~jobwatch.Reporter` to report through, a job id, or
        ``None`` (default): ``$JOBWATCH_JOB``, else a new id
        ``transformers-<date>-<time>-<hex>``. A Reporter is made only on the
        process that reports, when training starts.
    complete:
        Complete the job (and close the Reporter) when training ends.
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` (``url``,
        ``price_per_hour``, ``gpu``, ...) when ``reporter`` is not a Reporter;
        those left out come from ``JOBWATCH_*`` variables.

    Raises
    ------
    ValueError
        Options come with a Reporter, the job id or ``$JOBWATCH_PRICE_PER_HOUR``
        is invalid (here), or another option is (when training starts, from
        the Reporter). Nothing raises once training runs.
    """

    def __init__(
        self,
        reporter: Reporter | str | None = None,
        *,
        complete: bool = True,
        **reporter_options: Any,
    ) -> None:
        self._source = ReporterSource(reporter, reporter_options, "transformers")
        self._complete = complete
        self._metrics: MetricsFilter | None = None
        self._summary: dict[str, float] = {}

    @property
    def reporter(self) -> Reporter | None:
        """The Reporter, once training started on this process (``None`` on other ranks)."""
        return self._source.made

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """transformers: training starts; makes the Reporter and reports the arguments."""
        if not state.is_world_process_zero:
            return
        reporter = self._source.get(name=getattr(args, "run_name", None))
        self._metrics = MetricsFilter(reporter)
        log_config(reporter, args.to_sanitized_dict())
        self._step(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """transformers: an optimizer step is done (``state.global_step`` counts it)."""
        if self._metrics is not None:
            self._step(state)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """transformers: a batch of evaluation is done."""
        if self._metrics is not None and state.max_steps:
            self._metrics.reporter.update(_progress(state), f"{_epoch(state)}, evaluation")

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """transformers: evaluation is done (its metrics come through :meth:`on_log`)."""
        if self._metrics is not None:
            self._step(state)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """transformers: ``Trainer.log`` logged ``logs``; they become training metrics,
        except the end-of-training summary, which becomes the job's result."""
        if self._metrics is None or not logs:
            return
        if SUMMARY_KEY in logs:
            self._summary = {
                k: v for k, v in self._metrics.numbers(logs).items() if math.isfinite(v)
            }
            return
        self._metrics.log(logs, state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """transformers: training finished (early stopping too); completes the job."""
        if self._metrics is None:
            return
        self._step(state)
        if self._complete:
            self._metrics.reporter.complete(self._summary or None)
            self._metrics = None

    def _step(self, state: Any) -> None:
        assert self._metrics is not None
        if state.max_steps:
            done = f"step {state.global_step}/{state.max_steps}"
            self._metrics.reporter.update(_progress(state), f"{_epoch(state)}, {done}")

    def __repr__(self) -> str:
        return f"JobwatchCallback(job_id={self._source.job_id!r})"


def _progress(state: Any) -> float:
    return min(100.0, max(0.0, 100.0 * float(state.global_step) / float(state.max_steps)))


def _epoch(state: Any) -> str:
    """``"epoch 2/3"``: the epoch running (1-based), from ``state.epoch`` (epochs done,
    a float); ``"epoch 2"`` where the number of epochs is unknown (``max_steps``
    over an iterable dataset, which transformers counts as ``sys.maxsize``)."""
    epochs = state.num_train_epochs or 0
    current = max(1, math.ceil(state.epoch or 0))
    if epochs and epochs < sys.maxsize:
        return f"epoch {min(current, epochs)}/{epochs}"
    return f"epoch {current}"
