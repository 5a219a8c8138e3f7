"""``JobwatchCallback``: report XGBoost training (``xgboost.train`` or the
scikit-learn estimators) to jobwatch.

Follows XGBoost's callback API (``xgboost.callback.TrainingCallback``):
``before_training``, ``after_iteration(model, epoch, evals_log)`` after each
boosting round (``evals_log`` is ``{data: {metric: [value per round]}}``) and
``after_training``, which runs after early stopping too
(``xgboost/training.py``).
"""

from __future__ import annotations

import inspect
import math
import sys
from typing import Any

from jobwatch.integrations.environment import ReporterSource
from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter

try:
    import xgboost
    from xgboost.callback import TrainingCallback
except ImportError as exc:
    raise ImportError(
        'jobwatch.integrations.xgboost needs XGBoost: pip install "jobwatch[frameworks]"'
    ) from exc

__all__ = ["JobwatchCallback"]


class JobwatchCallback(TrainingCallback):  # type: ignore[misc]  # xgboost is read as untyped
    """An XGBoost ``TrainingCallback`` that reports training as a jobwatch job.

    ``xgb.train(..., callbacks=[JobwatchCallback()])`` or
    ``XGBClassifier(callbacks=[JobwatchCallback()])`` needs no arguments (the
    server, job and price come from ``JOBWATCH_*`` variables):

    - **progress**: ``100 * rounds done / num_boost_round`` % after each
      round, and the operation ``"round 12/100"``;
    - **training metrics**: each round's evaluation results as
      ``<data>/<metric>`` (``validation_0/logloss``, ``eval/auc``) at the
      round's number (1-based);
    - **completion**: when training ends, early stopping included, the job
      is completed at 100 % with the last round's results and, after early
      stopping, ``best_iteration`` and ``best_score``. XGBoost calls no
      callback when training raises: use a :class:`~jobwatch.Reporter` as a
      context manager around it (and pass it here) to fail the job.

    XGBoost does not tell callbacks how many rounds training will take; the
    callback reads ``num_boost_round`` from the ``xgboost.train`` call it
    runs in (which the scikit-learn estimators call with ``n_estimators``),
    unless given here.

    Parameters
    ----------
    reporter:
        A :class:`~jobwatch.Reporter`, a job id, or ``None`` (default):
        ``$JOBWATCH_JOB``, else a new id ``xgboost-<date>-<time>-<hex>``,
        made when training starts.
    num_boost_round:
        The rounds training will take (an integer >= 1), or ``None`` to read it
        from ``xgboost.train``.
    complete:
        Complete the job when training ends.
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` when ``reporter`` is
        not one; those left out come from ``JOBWATCH_*`` variables.

    Raises
    ------
    ValueError
        ``num_boost_round`` is not an integer >= 1 or ``None``; or as
        :class:`jobwatch.integrations.transformers.JobwatchCallback`.
    """

    def __init__(
        self,
        reporter: Reporter | str | None = None,
        *,
        num_boost_round: int | None = None,
        complete: bool = True,
        **reporter_options: Any,
    ) -> None:
        super().__init__()
        if num_boost_round is not None and not _is_count(num_boost_round):
            raise ValueError(
                f"num_boost_round must be an integer >= 1 or None, got {num_boost_round!r}"
            )
        self._source = ReporterSource(reporter, reporter_options, "xgboost")
        self._given_rounds = num_boost_round
        self._rounds: int | None = None
        self._complete = complete
        self._metrics: MetricsFilter | None = None
        self._last: dict[str, float] = {}

    @property
    def reporter(self) -> Reporter | None:
        """The Reporter, once training started."""
        return self._source.made

    def before_training(self, model: Any) -> Any:
        """XGBoost: training starts; makes the Reporter."""
        self._metrics = MetricsFilter(self._source.get())
        self._rounds = self._given_rounds or _rounds_of_train()
        self._last = {}
        self._metrics.reporter.update(0.0, self._operation(0))
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """XGBoost: round ``epoch`` (0-based) is done; never asks to stop."""
        if self._metrics is None:
            return False
        done = epoch + 1
        latest = {
            f"{data}/{metric}": values[-1]
            for data, metrics in (evals_log or {}).items()
            for metric, values in metrics.items()
            if len(values)
        }
        numbers = self._metrics.numbers(latest)
        self._last = {k: v for k, v in numbers.items() if math.isfinite(v)}
        self._metrics.send(numbers, done)
        progress = min(100.0, 100.0 * done / self._rounds) if self._rounds else 0.0
        self._metrics.reporter.update(progress, self._operation(done))
        return False

    def after_training(self, model: Any) -> Any:
        """XGBoost: training finished (early stopping too); completes the job."""
        if self._metrics is not None and self._complete:
            result: dict[str, Any] = dict(self._last)
            best = _attribute(model, "best_iteration")
            if best is not None:
                result["best_iteration"] = int(best)
                score = _attribute(model, "best_score")
                if score is not None and math.isfinite(float(score)):
                    result["best_score"] = float(score)
            self._metrics.reporter.complete(result or None)
            self._metrics = None
        return model

    def _operation(self, done: int) -> str:
        return f"round {done}/{self._rounds}" if self._rounds else f"round {done}"

    def __repr__(self) -> str:
        return f"JobwatchCallback(job_id={self._source.job_id!r})"


def _rounds_of_train() -> int | None:
    """``num_boost_round`` of the ``xgboost.train`` call on this thread's stack, if any.

    XGBoost passes callbacks the model, the round and the evaluation log only
    (``xgboost/callback.py``); the number of rounds is an argument of
    ``xgboost.training.train``, which the scikit-learn estimators call too.
    """
    frame = sys._getframe(1)
    train = inspect.unwrap(xgboost.training.train).__code__  # under its decorators
    while frame is not None:
        if frame.f_code is train:
            rounds = frame.f_locals.get("num_boost_round")
            return rounds if _is_count(rounds) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _attribute(model: Any, name: str) -> Any:
    """``model.best_iteration`` / ``best_score``, set by early stopping; ``None`` where unset."""
    try:
        return getattr(model, name)
    except (AttributeError, ValueError, TypeError):
        return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
