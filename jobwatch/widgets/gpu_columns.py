"""The GPU charts' data as arrays, each sample converted once.

:meth:`MonitorState.series <jobwatch.state.MonitorState.series>` builds one
metric's lines in Python from every sample of the window, on every call: with
2,000 samples of 8 GPUs the three charts' five metrics cost about 25 ms of the
kernel's CPU per redraw (80 % of a monitor's work while a job reports 10 times
a second; ``python -m benchmarks --only kernel``). :class:`GpuColumns` gives
the same lines for all five metrics at once: each sample becomes a small
``(metrics, gpus)`` array the first time it is drawn and is kept while it
stays in the state, so a redraw only stacks the arrays of its window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jobwatch.state import MonitorState, Sample, _gpu_order

__all__ = ["GpuColumns"]

ALL_GPUS = "all GPUs"
"""The one line's label for samples without per-GPU detail (as ``MonitorState.series``)."""


class _Row:
    """One sample as arrays: its GPU labels, their values and the flat values."""

    __slots__ = ("flat", "labels", "sample", "values")

    def __init__(self, sample: Sample, metrics: Sequence[str]) -> None:
        self.sample = sample  # held, so that its id is not reused while cached
        self.labels = tuple(sorted(sample.gpus, key=_gpu_order))
        self.values = np.array(
            [[_value(sample.gpus[label].get(m)) for label in self.labels] for m in metrics],
            dtype=float,
        ).reshape(len(metrics), len(self.labels))
        self.flat = np.array([[_value(sample.flat.get(m))] for m in metrics], dtype=float)


class GpuColumns:
    """Chart lines of several metrics from a :class:`MonitorState`, as arrays.

    Parameters
    ----------
    metrics:
        The metric names (``METRIC_FIELDS`` keys), in the order :meth:`table` returns them.
    """

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = tuple(metrics)
        self._rows: dict[int, _Row] = {}
        self._stack: tuple[list[_Row], Any] = ([], None)
        """The rows of the last uniform table and their stacked values."""

    def table(self, state: MonitorState, window: float | None) -> tuple[Any, list[str], Any]:
        """``(x, labels, values)`` over the last ``window`` seconds (``None``: all kept).

        ``x`` is the sample times (s since the epoch, shape ``(n,)``); ``values`` has
        shape ``(metrics, lines, n)``, NaN where a value is missing. The lines and
        their labels are those of ``state.series(metric, window)``: one per GPU when
        the samples carry per-GPU detail, else one ``"all GPUs"`` line.
        """
        samples = list(state.samples)
        if window is not None and samples:
            start = max(state.clock(), samples[-1].ts) - window
            samples = [s for s in samples if s.ts >= start]
        rows = self._rows_of(samples)
        x = np.array([s.ts for s in samples], dtype=float)
        n_metrics = len(self.metrics)
        label_sets = {row.labels for row in rows}
        if not rows or label_sets == {()}:
            flat = np.stack([row.flat for row in rows], axis=-1) if rows else None
            values = (
                flat.reshape(n_metrics, 1, len(rows))
                if flat is not None
                else np.empty((n_metrics, 1, 0))
            )
            return x, [ALL_GPUS], values
        if len(label_sets) == 1:  # the same GPUs in every sample: one stack
            return x, list(rows[0].labels), self._stacked(rows)
        labels = sorted({label for row in rows for label in row.labels}, key=_gpu_order)
        where = {label: i for i, label in enumerate(labels)}
        values = np.full((n_metrics, len(labels), len(rows)), np.nan)
        for column, row in enumerate(rows):
            if row.labels:
                values[:, [where[label] for label in row.labels], column] = row.values
        return x, labels, values

    def _stacked(self, rows: list[_Row]) -> Any:
        """The rows' values stacked, ``(metrics, gpus, n)``, reusing the last table's
        columns: samples leave a window at its start and arrive at its end, so the
        rows still there are the last table's from some point on."""
        last_rows, last = self._stack
        values = None
        if last is not None and last.shape[:2] == rows[0].values.shape:
            try:
                start = last_rows.index(rows[0])  # identity: rows have no __eq__
            except ValueError:
                start = -1
            kept = len(last_rows) - start
            if (
                start >= 0
                and kept <= len(rows)
                and all(a is b for a, b in zip(last_rows[start:], rows, strict=False))
            ):
                tail = rows[kept:]
                values = last[..., start:]
                if tail:
                    fresh = np.stack([row.values for row in tail], axis=-1)
                    values = np.concatenate([values, fresh], axis=-1)
        if values is None:
            values = np.stack([row.values for row in rows], axis=-1)
        self._stack = (rows, values)
        return values

    def _rows_of(self, samples: list[Sample]) -> list[_Row]:
        """The rows of ``samples``, converting only those not seen before; forgets the rest."""
        old: dict[int, _Row] = self._rows
        rows = []
        for sample in samples:
            row = old.get(id(sample))
            if row is None or row.sample is not sample:
                row = _Row(sample, self.metrics)
            rows.append(row)
        self._rows = {id(row.sample): row for row in rows}
        return rows


def _value(value: float | None) -> float:
    return np.nan if value is None else value
