"""GpuColumns: the GPU charts' lines as arrays, the same as ``MonitorState.series``."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jobwatch.contract.requests import format_ts
from jobwatch.notebook.charts import columns as gpu_columns
from jobwatch.notebook.charts.columns import GpuColumns
from jobwatch.notebook.charts.gpu import METRICS
from jobwatch.view.state import MAX_POINTS, MonitorState

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


def test_samples_are_converted_once_and_forgotten_once_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = state_of([sample(t, [gpu(g, t) for g in range(2)]) for t in range(MAX_POINTS)])
    columns = GpuColumns(METRICS)
    converted: list[Any] = []
    real_row = gpu_columns._Row

    def counted(*args: Any) -> Any:
        converted.append(args[0])
        return real_row(*args)

    monkeypatch.setattr(gpu_columns, "_Row", counted)
    columns.table(state, None)
    assert len(converted) == MAX_POINTS
    columns.table(state, 30.0)  # another window: nothing new to convert
    assert len(converted) == MAX_POINTS
    for t in range(MAX_POINTS, MAX_POINTS + 5):  # five new samples push five old ones out
        state.apply({"type": "JOB_PROGRESS", "seq": t, "data": {"metrics": sample(t, [gpu(0, t)])}})
    assert_same(state, columns, None)
    assert converted[MAX_POINTS:] == list(state.samples)[-5:]
    assert len(columns._rows) == MAX_POINTS  # the five that left are forgotten
    assert columns._rows[0].sample is state.samples[0]


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


GPU_SETS = [[0, 1], [0, 1], [2], []]  # mostly the same two GPUs; one other; none (flat)


@settings(max_examples=150, deadline=None)
@example(  # a history ending inside the samples drawn last: their newest stay, the rest go
    [("append", 0, 12, 0), ("append", 0, 8, 0), ("draw", None, 0, 0), ("history", 0, 3, 5)]
)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 3), st.integers(0, 12), st.just(0)),
            st.tuples(st.just("history"), st.integers(0, 3), st.integers(0, 30), st.integers(0, 9)),
            st.tuples(st.just("replace"), st.integers(0, 3), st.integers(0, 30), st.just(0)),
            st.tuples(
                st.just("draw"), st.sampled_from([None, 3.0, 8.0, 40.0]), st.just(0), st.just(0)
            ),
        ),
        max_size=25,
    )
)
def test_any_sequence_of_arrivals_history_loads_and_windows_gives_state_series(
    steps: list[tuple[str, Any, int, int]],
) -> None:
    # samples arrive at the end and leave at the start (a small MAX_POINTS), a snapshot's
    # history goes in before them (ending up to 9 s before the newest: the samples it
    # overlaps are dropped), a history page replaces them; GPU sets change on the way
    state = MonitorState(clock=lambda: T0 + now[0])
    state.samples = deque(maxlen=16)
    columns = GpuColumns(METRICS)
    now = [0.0]
    calls: list[int] = []

    def rows(kind: int, count: int, t0: float) -> list[dict[str, Any]]:
        calls.append(kind)  # each call's values differ from every other's at the same time

        def one(t: float) -> dict[str, Any]:
            if not GPU_SETS[kind]:
                return sample(t, gpuUtilization=t + 1000 * len(calls), powerUsage=None)
            gpus = [gpu(g, t) for g in GPU_SETS[kind]]
            return sample(t, [{**g, "gpuUtilization": 1000 * len(calls) + t} for g in gpus])

        return [one(t0 + k) for k in range(count)]

    for op, arg, count, before in steps:
        if op == "append":
            for row in rows(arg, count, now[0]):
                state.apply({"type": "JOB_PROGRESS", "data": {"metrics": row}})
            now[0] += count
        elif op == "history":
            state.add_history(rows(arg, count, now[0] - count - before))
        elif op == "replace":
            state.replace_samples(rows(arg, count, now[0] - count))
        else:
            assert_same(state, columns, arg)
    assert_same(state, columns, None)
