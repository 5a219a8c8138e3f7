"""The charts' point budget: min/max decimation keeps spikes and gaps."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch.notebook.charts.downsample import min_max


def test_a_series_that_fits_is_unchanged() -> None:
    x = np.arange(10.0)
    ys = np.vstack([x, -x])
    out_x, out_ys = min_max(x, ys, 10)
    assert out_x is x and np.array_equal(out_ys, ys)


def test_long_series_fit_the_budget_and_keep_a_one_sample_spike() -> None:
    n = 100_000
    x = np.arange(n, dtype=float)
    ys = np.vstack([np.full(n, 50.0), np.full(n, 10.0)])
    ys[0, 54_321] = 100.0  # one sample high
    ys[1, 12_345] = -5.0  # one sample low
    out_x, out_ys = min_max(x, ys, 256)
    assert out_x.shape[0] <= 256 and out_ys.shape == (2, out_x.shape[0])
    assert out_ys[0].max() == 100.0 and out_ys[1].min() == -5.0
    assert out_x[0] == 0 and out_x[-1] == n - 1
    assert np.all(np.diff(out_x) >= 0)


def test_min_and_max_keep_their_order_in_time() -> None:
    x = np.arange(8.0)
    ys = np.array([[0, 9, 1, 1, 1, 1, 0, 5], [5, 5, 5, 0, 5, 5, 5, 5]], dtype=float)
    _, out_ys = min_max(x, ys, 4)  # two spans of four samples
    assert out_ys.tolist() == [[0, 9, 0, 5], [5, 0, 5, 5]]


def test_gaps_stay_gaps() -> None:
    x = np.arange(1000.0)
    ys = np.full((1, 1000), 3.0)
    ys[0, 400:700] = np.nan
    _, out_ys = min_max(x, ys, 20)
    assert np.isnan(out_ys).any() and np.nanmax(out_ys) == 3.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="budget"):
        min_max(np.arange(3.0), np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match=r"\(lines, n\)"):
        min_max(np.arange(3.0), np.zeros((1, 4)), 4)


def _one_span_at_a_time(x: np.ndarray, ys: np.ndarray, budget: int) -> tuple[Any, Any]:
    """The definition of :func:`min_max` written span by span (its first version)."""
    n = x.shape[0]
    if n <= budget:
        return x, ys
    position = (x - x[0]).astype(float)
    edges = np.linspace(0.0, position[-1], budget // 2 + 1)[:-1]
    bounds = [*np.unique(np.searchsorted(position, edges, side="left")).tolist(), n]
    columns: list[int] = []
    values: list[Any] = []
    rows = np.arange(ys.shape[0])
    for lo, hi in itertools.pairwise(bounds):
        if hi - lo <= 2:
            columns.extend(range(lo, hi))
            values.extend(ys[:, i] for i in range(lo, hi))
            continue
        span = ys[:, lo:hi]
        missing = np.isnan(span)
        lowest = np.where(missing, np.inf, span).argmin(axis=1)
        highest = np.where(missing, -np.inf, span).argmax(axis=1)
        earlier, later = np.minimum(lowest, highest), np.maximum(lowest, highest)
        columns.extend((lo, hi - 1))
        values.extend((span[rows, earlier], span[rows, later]))
    return x[columns], np.stack(values, axis=1)


_values = st.one_of(st.just(np.nan), st.sampled_from([0.0, 1.0, 5.0]), st.floats(-100, 100))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=120),
    st.integers(1, 4),
    st.integers(2, 40),
    st.data(),
)
def test_every_span_keeps_what_its_definition_keeps(
    gaps: list[float], lines: int, budget: int, data: st.DataObject
) -> None:
    x = np.cumsum(gaps)  # ascending, with repeated times (zero gaps) and uneven spans
    ys = np.array(data.draw(st.lists(_values, min_size=lines * len(x), max_size=lines * len(x))))
    ys = ys.reshape(lines, len(x))
    got_x, got_ys = min_max(x, ys, budget)
    want_x, want_ys = _one_span_at_a_time(x, ys, budget)
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_ys, want_ys)
