"""FleetState and the fleet as text: no IO, no display."""

from __future__ import annotations

from typing import Any

import pytest

from jobwatch.contract.requests import format_ts
from jobwatch.view.fleet import SORT_KEYS, FleetState
from jobwatch.view.fleet_text import cells, format_totals, render_table

T0 = 1_800_000_000.0


def ts(seconds: float) -> str:
    text = format_ts(T0 + seconds)
    assert text is not None
    return text


def summary(job_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": job_id,
        "name": job_id,
        "status": "running",
        "progress": 10.0,
        "currentOperation": "epoch 1",
        "timeRemaining": 100.0,
        "costSoFar": 1.0,
        "estimatedTotalCost": 2.0,
        "currency": "QUBIC",
        "pricePerHour": 3.6,
        "gpuUtilization": 50.0,
        "gpuTemperature": 60.0,
        "updatedAt": ts(0),
        "startedAt": ts(-1000),
        "completedAt": None,
        "createdAt": ts(-1000),
        "workerId": "w",
        "stalled": False,
        "alerts": 0,
    }
    base.update(fields)
    return base


def changed(jobs: list[dict[str, Any]], seq: int = 1) -> dict[str, Any]:
    return {"type": "JOBS_CHANGED", "seq": seq, "data": {"jobs": jobs}}


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def test_rows_are_keyed_by_id_and_only_real_changes_count() -> None:
    state = FleetState()
    assert state.apply(changed([summary("a"), summary("b")], seq=5)) == {"a", "b"}
    assert state.take_changed() == {"a", "b"} and state.seq == 5
    assert state.apply(changed([summary("a")], seq=4)) == set()  # the same state again
    assert state.seq == 5  # never goes back
    assert state.apply(changed([summary("a", progress=20.0)])) == {"a"}
    assert state.rows["a"]["progress"] == 20.0 and len(state.rows) == 2
    assert state.take_changed() == {"a"} and state.take_changed() == set()


def test_malformed_summaries_and_messages_are_skipped() -> None:
    state = FleetState()
    assert state.apply(changed([None, 3, {"name": "no id"}, {"id": 7}, summary("ok")])) == {"ok"}
    assert state.apply({"type": "JOBS_CHANGED", "data": "nope"}) == set()
    assert state.apply({}) == set() and list(state.rows) == ["ok"]


def test_a_status_filter_drops_a_job_that_leaves_it() -> None:
    state = FleetState("running")
    state.apply(changed([summary("a"), summary("b", status="pending")]))
    assert list(state.rows) == ["a"]
    assert state.apply(changed([summary("a", status="completed")])) == {"a"}
    assert state.rows == {}
    with pytest.raises(ValueError, match="status must be one of pending, running"):
        FleetState("bogus")


def test_default_order_is_status_then_newest_update() -> None:
    state = FleetState()
    state.apply(
        changed(
            [
                summary("done", status="completed", updatedAt=ts(50)),
                summary("old-run", updatedAt=ts(1)),
                summary("new-run", updatedAt=ts(9)),
                summary("waits", status="pending", updatedAt=ts(99)),
                summary("broke", status="failed", updatedAt=ts(2)),
            ]
        )
    )
    assert ids(state.view()) == ["new-run", "old-run", "waits", "broke", "done"]


@pytest.mark.parametrize("descending", [False, True])
def test_sorting_by_a_value_keeps_missing_values_last(descending: bool) -> None:
    state = FleetState()
    state.apply(
        changed(
            [
                summary("hot", gpuTemperature=85.0),
                summary("cool", gpuTemperature=40.0),
                summary("none", gpuTemperature=None),
                summary("warm", gpuTemperature=60.0),
            ]
        )
    )
    order = ids(state.view("gpuTemperature", descending))
    expected = ["cool", "warm", "hot"]
    assert order == ([*reversed(expected), "none"] if descending else [*expected, "none"])


def test_ties_go_newest_update_first_then_by_id() -> None:
    state = FleetState()
    state.apply(
        changed(
            [
                summary("b", progress=5.0, updatedAt=ts(1)),
                summary("a", progress=5.0, updatedAt=ts(1)),
                summary("c", progress=5.0, updatedAt=ts(2)),
            ]
        )
    )
    assert ids(state.view("progress")) == ["c", "a", "b"]
    assert ids(state.view("progress", descending=True)) == ["c", "a", "b"]


def test_filters_by_status_and_by_name_or_id_ignoring_case() -> None:
    state = FleetState()
    state.apply(
        changed(
            [
                summary("r1", name="ResNet sweep"),
                summary("r2", name="bert", status="completed"),
                summary("x-RESNET-id", name=None),
            ]
        )
    )
    assert ids(state.view(name="resnet")) == ["r1", "x-RESNET-id"]
    assert ids(state.view(status="completed")) == ["r2"]
    assert ids(state.view(status="completed", name="resnet")) == []
    with pytest.raises(ValueError, match="sort must be one of status, name"):
        state.view("bogus")
    with pytest.raises(ValueError, match="status must be one of"):
        state.view(status="done")


def test_every_sort_key_sorts_without_error() -> None:
    state = FleetState()
    state.apply(changed([summary("a", name=None), summary("b", status="weird", progress=None)]))
    for key in SORT_KEYS:
        assert sorted(ids(state.view(key))) == ["a", "b"]


def test_a_running_jobs_cost_grows_between_summaries() -> None:
    clock = Clock()
    state = FleetState(clock=clock)
    state.apply(changed([summary("run", costSoFar=1.0, pricePerHour=3.6)]))
    state.apply(changed([summary("done", status="completed", costSoFar=2.0)]))
    state.apply(changed([summary("free", pricePerHour=None, costSoFar=None)]))
    clock.now = 100.0  # 100 s at 3.6 an hour: 0.1 more
    assert state.cost("run") == pytest.approx(1.1)
    assert state.cost("done") == 2.0 and state.cost("free") is None


def test_totals_running_cost_today_counts_per_currency() -> None:
    clock = Clock()
    now = T0 + 3600
    state = FleetState(clock=clock, wall=lambda: now)
    state.apply(
        changed(
            [
                # started 2 h before the day began, still running: 1 h today at 3.6/h
                summary("long", startedAt=ts(-3600), costSoFar=10.8, updatedAt=ts(3600)),
                # ran 30 min today and finished, at 2/h: 1.0 today
                summary(
                    "short",
                    status="completed",
                    startedAt=ts(600),
                    completedAt=ts(2400),
                    pricePerHour=2.0,
                    costSoFar=1.0,
                ),
                # finished yesterday: nothing today
                summary(
                    "yesterday",
                    status="failed",
                    startedAt=ts(-7200),
                    completedAt=ts(-3600),
                    costSoFar=3.6,
                ),
                # started today: all of its cost so far, whatever its prices were
                # (repriced to 40/h: 40 x 50 min would say 33.3)
                summary("spot", startedAt=ts(600), pricePerHour=40.0, costSoFar=5.0),
                summary("euro", currency="EUR", startedAt=ts(1800), costSoFar=0.5, stalled=True),
                summary("free", pricePerHour=None, costSoFar=None, status="pending"),
            ]
        )
    )
    totals = state.totals(day_start=T0)
    assert totals.running == pytest.approx({"QUBIC": 10.8 + 5.0, "EUR": 0.5})
    assert totals.today == pytest.approx({"QUBIC": 3.6 + 1.0 + 5.0, "EUR": 0.5})
    assert totals.counts == {"running": 3, "completed": 1, "failed": 1, "pending": 1}
    assert totals.stalled == 1
    line = format_totals(totals, "live")
    assert line.startswith("6 jobs: 3 running (1 stalled), 1 pending")
    assert "running 0.500 EUR, 15.80 QUBIC | today 0.500 EUR, 9.60 QUBIC" in line and line.endswith(
        "| live"
    )


def test_cells_and_the_text_table_are_clean_and_bounded() -> None:
    row = summary("j\x1b[2J", name="evil\x1b]0;x\x07", stalled=True, alerts=2, progress=42.0)
    text = cells(row, 1.5, T0 + 4)
    assert "\x1b" not in "".join(text) and "\x07" not in "".join(text)
    assert text[1] == "running STALLED !2" and text[2].endswith("42.0%")
    assert text[4] == "1.50 QUBIC" and text[8] == "4s ago"
    state = FleetState()
    state.apply(changed([summary(f"job-{i}") for i in range(5)]))
    table = render_table(state, limit=3, now=T0)
    assert table.splitlines()[1].startswith("NAME") and table.endswith("... 2 more")
    assert len(table.splitlines()) == 1 + 1 + 3 + 1


def test_a_row_shows_its_projected_spend_and_budget_and_whether_either_is_over() -> None:
    from jobwatch.view.budget import OVER, PROJECTED_OVER
    from jobwatch.view.fleet_text import COLUMNS, row_budget_state

    column = [key for key, _ in COLUMNS].index("estimatedTotalCost")
    row = summary("b", estimatedTotalCost=61.2, budget=50.0, currency="QUBIC\x1b[2J")
    assert cells(row, 12.3, T0)[column] == "est. 61.20 / budget 50.00 QUBIC"
    assert row_budget_state(row, 12.3) == PROJECTED_OVER
    assert row_budget_state(row, 50.0) == OVER
    assert cells(summary("n", estimatedTotalCost=3.0), 1.0, T0)[column] == "est. 3.00 QUBIC"
