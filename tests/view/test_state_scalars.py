"""Training metrics in MonitorState: from the snapshot, events and history pages."""

from __future__ import annotations

import math

import pytest

from jobwatch.view.state import MAX_SCALAR_POINTS, MonitorState

T = "2027-01-15T08:00:00.000Z"


def snapshot(**scalars: dict[str, object]) -> dict[str, object]:
    return {"job": {"id": "j", "status": "running"}, "seq": 1, "scalars": scalars}


def progress(*points: dict[str, object]) -> dict[str, object]:
    return {"type": "JOB_PROGRESS", "seq": 2, "data": {"scalars": list(points)}}


def test_snapshot_events_and_series_by_step() -> None:
    state = MonitorState()
    state.load_snapshot(snapshot(loss={"step": 1, "timestamp": T, "value": 0.9}))
    state.apply(progress({"step": 2, "timestamp": T, "values": {"loss": 0.7, "acc": 0.5}}))
    state.apply(progress({"step": 3, "timestamp": T, "values": {"loss": 0.5}}))
    series = state.scalar_series()
    assert series.x == [1.0, 2.0, 3.0]
    assert series.lines["loss"] == [0.9, 0.7, 0.5]
    assert math.isnan(series.lines["acc"][0]) and series.lines["acc"][1] == 0.5
    assert state.latest_scalars["loss"].value == 0.5


def test_a_late_older_step_never_replaces_the_latest_value() -> None:
    state = MonitorState()
    state.apply(progress({"step": 7, "timestamp": T, "values": {"loss": 0.25}}))
    state.apply(progress({"step": 3, "timestamp": T, "values": {"loss": 9.0}}))
    assert state.latest_scalars["loss"].step == 7
    assert state.scalar_series().lines["loss"] == [0.25]


def test_history_replaces_and_is_bounded() -> None:
    state = MonitorState()
    n = MAX_SCALAR_POINTS + 10
    state.merge_scalars(
        {"loss": [{"step": k, "timestamp": T, "value": 1.0 / (k + 1)} for k in range(n)]}
    )
    assert len(state.scalars["loss"]) == MAX_SCALAR_POINTS
    assert state.scalars["loss"][-1].step == n - 1


def test_malformed_points_are_ignored() -> None:
    state = MonitorState()
    state.apply(
        progress(
            {"step": "x", "timestamp": T, "values": {"loss": 1.0}},
            {"step": 1, "timestamp": "bad", "values": {"loss": 1.0}},
            {"step": 1, "timestamp": T, "values": {"loss": "1"}},
        )
    )
    assert state.scalars == {}


def test_series_by_time_and_bad_axis() -> None:
    state = MonitorState()
    state.apply(progress({"step": 1, "timestamp": T, "values": {"loss": 1.0}}))
    assert state.scalar_series("time").x == [1_800_000_000.0]
    with pytest.raises(ValueError, match="by must be"):
        state.scalar_series("epoch")


def test_history_merges_with_points_that_arrived_meanwhile() -> None:
    """A resumed stream replays only the newest progress event: the points of
    earlier ones come from /scalars and must not wipe what events brought."""
    state = MonitorState()
    state.apply(progress({"step": 3, "timestamp": T, "values": {"loss": 0.3}}))
    state.merge_scalars(
        {
            "loss": [
                {"step": s, "timestamp": T, "value": v} for s, v in ((1, 0.9), (2, 0.6), (3, 0.3))
            ]
        }
    )
    assert [(p.step, p.value) for p in state.scalars["loss"]] == [(1, 0.9), (2, 0.6), (3, 0.3)]
    assert state.latest_scalars["loss"].step == 3


def test_series_by_cost_uses_each_values_cost_and_leaves_out_those_without() -> None:
    state = MonitorState()
    state.load_snapshot(snapshot(loss={"step": 1, "timestamp": T, "value": 0.9, "cost": 0.5}))
    state.apply(
        progress({"step": 2, "timestamp": T, "values": {"loss": 0.7, "acc": 0.5}, "cost": 1.5})
    )
    state.merge_scalars(
        {
            "loss": [
                {"step": 3, "timestamp": "2027-01-15T08:01:00.000Z", "value": 0.5, "cost": 4.0},
                {"step": 4, "timestamp": "2027-01-15T08:02:00.000Z", "value": 0.4, "cost": None},
            ]
        }
    )
    series = state.scalar_series("cost")
    assert series.x == [0.5, 1.5, 4.0]
    assert series.lines["loss"] == [0.9, 0.7, 0.5]
    assert math.isnan(series.lines["acc"][0]) and series.lines["acc"][1] == 0.5
    assert state.scalar_series("step").x == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="'step', 'time' or 'cost'"):
        state.scalar_series("money")
