"""The GPU charts' data as arrays, each sample converted once.

:meth:`MonitorState.series <jobwatch.view.state.MonitorState.series>` builds one
metric's lines in Python from every sample of the window, on every call: with
2,000 samples of 8 GPUs the three charts' five metrics cost about 25 ms of the
kernel's CPU per redraw (80 % of a monitor's work while a job reports 10 times
a second; ``python -m benchmarks --only kernel``). :class:`GpuColumns` gives
the same lines for all five metrics at once: each sample becomes a small
``(metrics, gpus)`` array the first time it is drawn and is kept while it
stays in the state. Samples arrive at the end of the state's deque and leave
at its start, so a redraw converts and appends only the samples that arrived
since the last one and finds the window's start by bisection on the times:
no per-sample Python work for the samples already drawn (1.1 -> 0.3 ms a
redraw with 2,000 samples of 8 GPUs and 10 new ones).
"""

from __future__ import annotations

import itertools
import operator
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from jobwatch.view.state import MonitorState, Sample, gpu_lines

__all__ = ["GpuColumns"]

_SAMPLE = operator.attrgetter("sample")
ALL_GPUS = "all GPUs"
"""The one line's label for samples without per-GPU detail (as ``MonitorState.series``)."""


class _Row:
    """One sample as arrays: its GPUs' keys (in display order), their values and the flat
    values. The per-GPU values are converted when first drawn: a job of many nodes is
    drawn from the flat values alone."""

    __slots__ = ("_values", "flat", "keys", "metrics", "sample")

    def __init__(self, sample: Sample, metrics: Sequence[str], per_gpu: bool = True) -> None:
        self.sample = sample  # held, so that its id is not reused while cached
        self.metrics = metrics
        self.keys = tuple(gpu_lines((sample,))) if per_gpu else ()
        self._values: Any = None
        self.flat = np.array([[_value(sample.flat.get(m))] for m in metrics], dtype=float)

    @property
    def values(self) -> Any:
        """The GPUs' values, ``(metrics, gpus)``."""
        if self._values is None:
            gpus, metrics = self.sample.gpus, self.metrics
            self._values = np.array(
                [[_value(gpus[key].get(m)) for key in self.keys] for m in metrics],
                dtype=float,
            ).reshape(len(metrics), len(self.keys))
        return self._values


class GpuColumns:
    """Chart lines of several metrics from a :class:`MonitorState`, as arrays.

    Parameters
    ----------
    metrics:
        The metric names (``METRIC_FIELDS`` keys), in the order :meth:`table` returns them.
    per_gpu:
        One line per GPU where the samples have per-GPU detail; ``False``: the
        flat fields alone, one line per metric (the system metrics, which are
        not per GPU).
    """

    def __init__(self, metrics: Sequence[str], per_gpu: bool = True) -> None:
        self.metrics = tuple(metrics)
        self.per_gpu = per_gpu
        self._rows: list[_Row] = []
        """The state's samples at the last table, oldest first, as rows; the arrays below match."""
        self._x = np.empty(0)
        self._label_sets: dict[tuple[str, ...], int] = {}
        self._label_keys: list[tuple[str, ...]] = []
        """The GPU keys of each number of :attr:`_label_sets`."""
        self._label_ids = np.empty(0, dtype=np.int64)
        """Per row, a number for its GPU keys (the same keys, the same number)."""
        self._flat = np.empty((len(self.metrics), 0))
        """Every row's flat values side by side, ``(metrics, rows)``."""
        self._stack: Any = None
        """Every row's values stacked, ``(metrics, gpus, rows)``, while all have the same GPU keys."""

    def table(
        self, state: MonitorState, window: float | None, most_lines: int | None = None
    ) -> tuple[Any, list[str], Any]:
        """``(x, labels, values)`` over the last ``window`` seconds (``None``: all kept).

        ``x`` is the sample times (s since the epoch, shape ``(n,)``); ``values`` has
        shape ``(metrics, lines, n)``, NaN where a value is missing. The lines and
        their labels are those of ``state.series(metric, window)``: one per GPU when
        the samples carry per-GPU detail, else one ``"all GPUs"`` line. When the
        window holds more than ``most_lines`` GPUs (a job of many nodes) it is one
        ``"all GPUs"`` line of the samples' flat fields too (each sample's mean,
        sum or hottest of its GPUs; docs/api.md "metrics").
        """
        self._follow(state.samples)
        start = 0
        if window is not None and len(self._x):
            # a state's sample times never decrease (MonitorState drops older ones)
            since = max(state.clock(), self._x[-1]) - window
            start = int(np.searchsorted(self._x, since, side="left"))
        x, rows, ids = self._x[start:], self._rows[start:], self._label_ids[start:]
        if not rows:
            return x, [ALL_GPUS], np.empty((len(self.metrics), 1, 0))
        if most_lines is not None and self._gpu_count(ids) > most_lines:
            return x, [ALL_GPUS], self._flat[:, None, start:]
        if ids.min() == ids.max():  # the same GPUs in every sample of the window
            values = self._stack[..., start:] if self._stack is not None else _stacked(rows)
            # the newest sample numbers the GPUs, as in MonitorState.series
            labels = list(gpu_lines((rows[-1].sample,)).values()) if self.per_gpu else []
            return x, labels or [ALL_GPUS], values
        lines = gpu_lines(row.sample for row in rows)
        where = {key: i for i, key in enumerate(lines)}
        values = np.full((len(self.metrics), len(lines), len(rows)), np.nan)
        for column, row in enumerate(rows):
            if row.keys:
                values[:, [where[key] for key in row.keys], column] = row.values
        return x, list(lines.values()), values

    def _gpu_count(self, ids: Any) -> int:
        """How many distinct GPUs the rows of these label-set numbers show."""
        sets = np.unique(ids)
        if len(sets) == 1:
            return len(self._label_keys[int(sets[0])])
        return len({key for number in sets for key in self._label_keys[int(number)]})

    def _follow(self, samples: deque[Sample]) -> None:
        """Make the rows match ``samples``, converting only the samples not seen before.

        Samples arrive at the end of a state's deque and leave at its start, so the
        rows kept are the last ones of the previous table; anything else (a history
        put in or replaced) converts again what it cannot find by identity.
        """
        old = self._rows
        arrived = 0
        if old:
            last = old[-1].sample
            for sample in reversed(samples):
                if sample is last:
                    break
                arrived += 1
        kept = len(samples) - arrived
        if old and 0 < kept <= len(old):
            drop = len(old) - kept
            held = map(_SAMPLE, itertools.islice(old, drop, None))
            if all(map(operator.is_, itertools.islice(samples, kept), held)):
                self._shift(drop, list(itertools.islice(samples, kept, None)))
                return
        converted = {id(row.sample): row for row in self._rows}
        rows = []
        for sample in samples:
            row = converted.get(id(sample))
            rows.append(
                row
                if row is not None and row.sample is sample
                else _Row(sample, self.metrics, self.per_gpu)
            )
        self._rows = rows
        self._x = np.array([row.sample.ts for row in rows], dtype=float)
        self._label_ids = np.array([self._label_id(row) for row in rows], dtype=np.int64)
        self._flat = _flats(rows, len(self.metrics))
        uniform = len(rows) > 0 and self._label_ids.min() == self._label_ids.max()
        self._stack = _stacked(rows) if uniform else None

    def _shift(self, drop: int, fresh: list[Sample]) -> None:
        """Forget the first ``drop`` rows and add rows for ``fresh`` samples at the end."""
        if not drop and not fresh:
            return
        rows = [_Row(sample, self.metrics, self.per_gpu) for sample in fresh]
        ids = np.array([self._label_id(row) for row in rows], dtype=np.int64)
        self._rows = self._rows[drop:] + rows
        self._x = np.concatenate([self._x[drop:], [sample.ts for sample in fresh]])
        kept_ids = self._label_ids[drop:]
        self._label_ids = np.concatenate([kept_ids, ids])
        self._flat = np.concatenate([self._flat[:, drop:], _flats(rows, len(self.metrics))], axis=1)
        all_ids = self._label_ids
        if len(all_ids) == 0 or all_ids.min() != all_ids.max():
            self._stack = None
        elif self._stack is not None and len(kept_ids):
            parts = [self._stack[..., drop:], *([_stacked(rows)] if rows else [])]
            self._stack = np.concatenate(parts, axis=-1)
        else:
            self._stack = _stacked(self._rows)

    def _label_id(self, row: _Row) -> int:
        number = self._label_sets.setdefault(row.keys, len(self._label_sets))
        if number == len(self._label_keys):
            self._label_keys.append(row.keys)
        return number


def _flats(rows: list[_Row], metrics: int) -> Any:
    """The rows' flat values side by side: ``(metrics, n)``."""
    if not rows:
        return np.empty((metrics, 0))
    return np.concatenate([row.flat for row in rows], axis=1)


def _stacked(rows: list[_Row]) -> Any:
    """The rows' values (per GPU, or flat without GPUs) side by side: ``(metrics, gpus, n)``."""
    if rows[0].keys:
        return np.stack([row.values for row in rows], axis=-1)
    return np.stack([row.flat for row in rows], axis=-1)


def _value(value: float | None) -> float:
    return np.nan if value is None else value
