"""``JobwatchCallback``: report a Keras 3 ``model.fit`` to jobwatch.

Follows Keras's callback API (``keras.callbacks.Callback``: ``self.params``
holds ``epochs`` and ``steps``, the batches per epoch, ``None`` where unknown;
``on_train_batch_end`` gets the epoch's running-mean metrics,
``on_epoch_end`` the epoch's metrics with ``val_``-prefixed validation ones).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from typing import Any, Literal

from jobwatch.integrations.logs_filter import MetricsFilter
from jobwatch.report.reporter import Reporter


def _import_problem(exc: ImportError) -> str:
    """Why ``import keras`` failed, in words that say what to do.

    Keras 3 imports its backend when it is imported: ``$KERAS_BACKEND``, else
    TensorFlow (``keras/src/backend/config.py``), so an installed Keras without
    that backend fails with the backend's ``ImportError``, not Keras's.
    """
    if importlib.util.find_spec("keras") is None:
        return (
            'jobwatch.integrations.keras needs Keras 3: pip install "jobwatch[keras]" '
            "(and a backend: jax, tensorflow or torch)"
        )
    backend = os.environ.get("KERAS_BACKEND") or "tensorflow"
    installed = [b for b in ("jax", "torch", "tensorflow") if importlib.util.find_spec(b)]
    hint = (
        f"Set KERAS_BACKEND to {' or '.join(installed)} (installed here)"
        if installed and backend not in installed
        else "Set KERAS_BACKEND to jax or torch"
    )
    return (
        f"Keras is installed but cannot load its backend {backend!r}"
        f"{'' if os.environ.get('KERAS_BACKEND') else ' (its default, KERAS_BACKEND is unset)'}: "
        f"{exc}. {hint} before Keras is first imported, "
        f"or install {backend}"
    )


try:
    import keras
except ImportError as exc:
    raise ImportError(_import_problem(exc)) from exc

__all__ = ["JobwatchCallback"]


class JobwatchCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """A Keras 3 callback that reports ``model.fit`` as a jobwatch job.

    Reports, without waiting on the server (each call costs about a
    microsecond, see :meth:`jobwatch.Reporter.update`):

    - **progress**: ``100 * (epoch + batches done / steps) / epochs`` %, after
      each batch (``fit(initial_epoch=4, epochs=10)`` starts at 40 %); where
      Keras does not know the batches per epoch (a generator without
      ``steps_per_epoch``), after each epoch only;
    - **operation**: ``"epoch 3/10, batch 120/469"`` (1-based; ``"batch 120"``
      without a known count), ``"epoch 3/10, validation"`` while validating;
    - **training metrics**, named as Keras names them (as in
      ``model.fit(...).history`` and ``EarlyStopping(monitor=...)``): each
      epoch's logs as ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``
      ..., and, every ``update_freq`` batches, the epoch's running means so
      far as ``batch/loss``, ``batch/accuracy`` ... All of them use one step
      axis: the number of batches trained since epoch 0 (an epoch's metrics
      lie at its last batch). Values that are not one number (a per-class
      array) and names jobwatch does not allow are left out with one warning
      each; NaN and infinity are left out with the Reporter's warning;
    - **completion**: at the end of training the job is completed with the
      last epoch's metrics as its result (``{"loss": 0.12, ...}``), unless
      ``complete=False``; this waits for the server, at most 30 s
      (:meth:`jobwatch.Reporter.complete`).

    Keras calls no callback when ``fit`` raises (``on_train_end`` runs only
    after training finished: ``keras/src/backend/*/trainer.py``), so a crash
    cannot mark the job failed from here. Pass a :class:`~jobwatch.Reporter`
    used as a context manager around ``fit`` for that: its ``__exit__`` fails
    the job with the exception.

    Parameters
    ----------
    reporter:
        The :class:`~jobwatch.Reporter` to report through, or a job id: then
        the callback makes its own Reporter from ``job_id`` and
        ``reporter_options``.
    update_freq:
        How often batch metrics are logged, as in Keras's TensorBoard
        callback: ``"batch"`` after every batch, an integer ``N`` >= 1 every
        ``N`` batches, ``"epoch"`` never (epoch metrics only). Progress is
        reported after every batch whatever this is.
    complete:
        Complete the job (and close the Reporter) when training ends. Pass
        ``False`` to go on reporting after ``fit`` (a second ``fit``, an
        evaluation), then finish the job yourself.
    **reporter_options:
        Keyword arguments of :class:`~jobwatch.Reporter` (``url``,
        ``price_per_hour``, ``name``, ``token``, ...) when ``reporter`` is a
        job id.

    Raises
    ------
    ValueError
        ``update_freq`` is not ``"batch"``, ``"epoch"`` or an integer >= 1;
        options are given with a Reporter; or the Reporter's own arguments are
        invalid (see :class:`~jobwatch.Reporter`). Nothing raises once
        training runs.
    """

    def __init__(
        self,
        reporter: Reporter | str,
        *,
        update_freq: Literal["batch", "epoch"] | int = "batch",
        complete: bool = True,
        **reporter_options: Any,
    ) -> None:
        super().__init__()
        if update_freq == "batch":
            update_freq = 1
        elif update_freq == "epoch":
            update_freq = 0
        elif isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1:
            raise ValueError(
                f'update_freq must be "batch", "epoch" or an integer >= 1, got {update_freq!r}'
            )
        if isinstance(reporter, Reporter):
            if reporter_options:
                raise ValueError(
                    "options of a new Reporter are given with a Reporter: "
                    f"{', '.join(sorted(reporter_options))}; pass a job id instead, or neither"
                )
        elif isinstance(reporter, str):
            reporter = Reporter(reporter, **reporter_options)
        else:
            raise ValueError(f"reporter must be a Reporter or a job id, got {reporter!r}")
        self.reporter = reporter
        self._metrics = MetricsFilter(reporter)
        self._every = update_freq
        self._complete = complete
        self._epochs = 0
        self._steps: int | None = None
        self._epoch = 0
        self._epoch_start = 0
        self._step = 0
        self._training = False

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Keras: training starts; reads ``params["epochs"]`` and ``params["steps"]``."""
        params = self.params or {}
        self._epochs = _count(params.get("epochs")) or 0
        self._steps = _count(params.get("steps"))
        self._step = 0
        self._training = True

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Keras: epoch ``epoch`` (0-based) starts."""
        self._epoch = epoch
        if self._steps:
            self._step = epoch * self._steps
        self._epoch_start = self._step
        self.reporter.update(self._fraction(0.0), self._epoch_text())

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Keras: batch ``batch`` (0-based within the epoch) is done; ``logs`` holds
        the epoch's running means."""
        self._step = self._epoch_start + batch + 1
        if self._steps:
            done = f"{batch + 1}/{self._steps}"
            progress = self._fraction(min(1.0, (batch + 1) / self._steps))
        else:
            done = f"{batch + 1}"
            progress = self._fraction(0.0)
        self.reporter.update(progress, f"{self._epoch_text()}, batch {done}")
        if self._every and self._step % self._every == 0:
            self._metrics.log(logs, self._step, prefix="batch/")

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Keras: evaluation starts (validation, when within ``fit``)."""
        if self._training:
            self.reporter.update(self._fraction(1.0), f"{self._epoch_text()}, validation")

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Keras: epoch ``epoch`` is done; ``logs`` holds its metrics, validation's included."""
        self.reporter.update(self._fraction(1.0), self._epoch_text())
        self._metrics.log(logs, self._step)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """Keras: training finished (also after early stopping); completes the job
        with the last epoch's metrics as its result unless ``complete=False``."""
        self._training = False
        if self._complete:
            result = {k: v for k, v in self._metrics.numbers(logs).items() if math.isfinite(v)}
            self.reporter.complete(result or None)

    def _fraction(self, of_epoch: float) -> float:
        if not self._epochs:
            return 0.0
        return min(100.0, max(0.0, 100.0 * (self._epoch + of_epoch) / self._epochs))

    def _epoch_text(self) -> str:
        return f"epoch {self._epoch + 1}/{self._epochs}"

    def __repr__(self) -> str:
        return f"JobwatchCallback({self.reporter!r})"


def _count(value: object) -> int | None:
    """A positive integer count from Keras's params, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value
