"""The monitor's training-metrics chart and the terminal's metrics line, without a kernel."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from bqplot import LinearScale, LogScale

from jobwatch.client.rest import Client
from jobwatch.notebook.monitor import JobMonitor
from jobwatch.terminal.watch import render_status
from jobwatch.view.state import MonitorState
from tests.conftest import wait_for


def report(client: Client, job: str, step: int, **values: float) -> None:
    client.report_progress(job, "w", 10, scalars=[{"step": step, "values": values}])


def test_the_chart_joins_with_the_first_metric_and_follows_the_toggles(
    server: Any, client: Client
) -> None:
    client.create_job(job_id="fit")
    client.report_progress("fit", "w", 5)
    with JobMonitor("fit", server.url, widgets=True) as mon:
        view = mon.view
        assert not view.scalars_shown and view.scalar_latest.value == ""
        report(client, "fit", 1, loss=0.9, accuracy=0.5)
        report(client, "fit", 2, loss=0.4)
        wait_for(lambda: view.scalars_shown and len(view.scalars.lines.x) == 2)
        assert list(view.scalars.lines.labels) == ["accuracy", "loss"]
        assert "loss <b>0.4</b>" in view.scalar_latest.value
        assert "(step 2)" in view.scalar_latest.value
        assert isinstance(view.scalars.lines.scales["y"], LinearScale)
        view.scalars.y_scale.value = "log"
        wait_for(lambda: isinstance(view.scalars.lines.scales["y"], LogScale))
        view.scalars.x_axis.value = "time"
        wait_for(lambda: view.scalars._x_axis.label == "seconds since start")


def test_the_chart_draws_a_metric_against_the_money_spent(
    server: Any, client: Client, clock: Any
) -> None:
    """3.6 an hour is 0.001 a second: values logged at 0, 100 and 200 s lie at 0, 0.1
    and 0.2 on the cost axis, labelled with the job's currency."""
    client.create_job(job_id="money", price_per_hour=3.6)
    for step in range(3):
        report(client, "money", step, loss=1.0 / (step + 1))
        clock.advance(100)
    with JobMonitor("money", server.url, widgets=True) as mon:
        view = mon.view
        wait_for(lambda: view.scalars is not None and len(view.scalars.lines.x) == 3)
        assert view.scalars.x_axis.options == ("step", "time", "cost")
        view.scalars.x_axis.value = "cost"
        wait_for(lambda: view.scalars._x_axis.label == "cost (QUBIC)")
        assert list(view.scalars.lines.x) == [0.0, 0.1, 0.2]
    with JobMonitor("money", server.url, widgets=True, x_axis="cost") as mon:
        wait_for(lambda: mon.view.scalars is not None and len(mon.view.scalars.lines.x) == 3)
        assert mon.view.scalars.x_axis.value == "cost"


def test_a_monitor_started_late_loads_the_whole_history(server: Any, client: Client) -> None:
    client.create_job(job_id="late")
    for step in range(30):
        report(client, "late", step, loss=1.0 / (step + 1))
    with JobMonitor("late", server.url, widgets=True) as mon:
        wait_for(lambda: len(mon.state.scalars.get("loss", ())) == 30)
        wait_for(lambda: mon.view.scalars is not None and len(mon.view.scalars.lines.x) == 30)


def test_the_terminal_view_shows_the_newest_metrics() -> None:
    state = MonitorState()
    stamp = "2027-01-15T08:00:00.000Z"
    state.load_snapshot(
        {
            "job": {"id": "j", "status": "running", "progress": 10},
            "scalars": {
                "loss": {"step": 120, "timestamp": stamp, "value": 0.23131},
                "val/acc": {"step": 118, "timestamp": stamp, "value": 0.978},
            },
        }
    )
    assert render_status(state).splitlines()[-1] == "loss 0.2313  val/acc 0.978  (step 120)"
    assert "\n" not in render_status(state, one_line=True)


def test_one_metric_with_one_point_is_drawn() -> None:
    """bqplot squeezes a (1, 1) array to a scalar and refuses it: a single line is 1-d."""
    from jobwatch.notebook.charts.scalars import ScalarChart

    state = MonitorState()
    state.apply(
        {
            "type": "JOB_PROGRESS",
            "seq": 1,
            "data": {
                "scalars": [
                    {"step": 1, "timestamp": "2027-01-15T08:00:00.000Z", "values": {"loss": 0.5}}
                ]
            },
        }
    )
    chart = ScalarChart(widgets.HTML())
    chart.update(state)
    assert list(chart.lines.y) == [0.5] and list(chart.lines.labels) == ["loss"]
