"""GpuColumns: the GPU charts' lines as arrays, the same as ``MonitorState.series``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jobwatch.protocol import format_ts
from jobwatch.state import MAX_POINTS, MonitorState
from jobwatch.widgets.charts import METRICS
from jobwatch.widgets.gpu_columns import GpuColumns

T0 = 1_800_000_000.0


def sample(t: float, gpus: list[dict[str, Any]] | None = None, **flat: Any) -> dict[str, Any]:
    return {"timestamp": format_ts(T0 + t), **flat, **({"gpus": gpus} if gpus else {})}


def gpu(index: int, t: float, **missing: Any) -> dict[str, Any]:
    values = {m: float(t * 10 + index + k) for k, m in enumerate(METRICS)}
    return {"index": index, **values, **missing}


def state_of(rows: list[dict[str, Any]]) -> MonitorState:
    state = MonitorState(clock=lambda: T0 + len(rows))
    state.replace_samples(rows)
    return state


def assert_same(state: MonitorState, columns: GpuColumns, window: float | None) -> None:
    x, labels, values = columns.table(state, window)
    assert values.shape == (len(METRICS), len(labels), len(x))
    for k, metric in enumerate(METRICS):
        series = state.series(metric, window)
        assert list(series.lines) == labels
        np.testing.assert_array_equal(x, np.asarray(series.x, dtype=float))
        expected = np.asarray([series.lines[label] for label in labels], dtype=float)
        np.testing.assert_array_equal(values[k], expected.reshape(len(labels), -1))


ROWS = {
    "eight GPUs": [sample(t, [gpu(g, t) for g in range(8)]) for t in range(50)],
    "flat only": [sample(t, gpuUtilization=t, powerUsage=None) for t in range(20)],
    "GPUs come and go": [
        sample(0, [gpu(0, 0)]),
        sample(1, [gpu(1, 1, gpuUtilization=None), gpu(0, 1)]),
        sample(2, gpuUtilization=5.0),  # no per-GPU detail: gaps in every GPU line
        sample(3, [gpu(10, 3), gpu(2, 3)]),
    ],
    "none": [],
}


@pytest.mark.parametrize("name", list(ROWS))
@pytest.mark.parametrize("window", [None, 10.0, 2.5])
def test_the_table_is_state_series_for_every_metric(name: str, window: float | None) -> None:
    assert_same(state_of(ROWS[name]), GpuColumns(METRICS), window)


def test_samples_are_converted_once_and_forgotten_once_gone() -> None:
    state = state_of([sample(t, [gpu(g, t) for g in range(2)]) for t in range(MAX_POINTS)])
    columns = GpuColumns(METRICS)
    columns.table(state, None)
    first = dict(columns._rows)
    assert len(first) == MAX_POINTS
    for t in range(MAX_POINTS, MAX_POINTS + 5):  # five new samples push five old ones out
        state.apply({"type": "JOB_PROGRESS", "seq": t, "data": {"metrics": sample(t, [gpu(0, t)])}})
    assert_same(state, columns, None)
    kept = columns._rows
    assert len(kept) == MAX_POINTS
    reused = [key for key in kept if key in first and kept[key] is first[key]]
    assert len(reused) == MAX_POINTS - 5


def test_tables_built_on_the_last_one_match_while_samples_arrive_and_windows_change() -> None:
    state = state_of([sample(t, [gpu(g, t) for g in range(3)]) for t in range(MAX_POINTS - 3)])
    columns = GpuColumns(METRICS)
    for step, window in enumerate([None, None, 30.0, 30.0, None, 5.0, None, None]):
        for k in range(step):  # 0-7 new samples; from the fourth on, old ones leave
            t = MAX_POINTS + 10 * step + k
            state.apply(
                {
                    "type": "JOB_PROGRESS",
                    "seq": t,
                    "data": {"metrics": sample(t, [gpu(g, t) for g in range(3)])},
                }
            )
        state.clock = lambda: T0 + MAX_POINTS + 10 * step + 8  # noqa: B023
        assert_same(state, columns, window)
