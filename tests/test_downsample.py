"""The charts' point budget: min/max decimation keeps spikes and gaps."""

from __future__ import annotations

import numpy as np
import pytest

from jobwatch.widgets.downsample import min_max


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
