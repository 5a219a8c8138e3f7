"""Alerts and stalls as the monitor and the terminal view show them."""

from __future__ import annotations

from typing import Any

from jobwatch.client.rest import Client
from jobwatch.notebook.monitor import JobMonitor
from jobwatch.terminal.watch import render_status
from jobwatch.view.state import MonitorState
from tests.conftest import wait_for

T = "2027-01-15T08:00:00.000Z"


def alert(seq: int, title: str, level: str = "warning", text: str | None = None) -> dict[str, Any]:
    return {
        "seq": seq,
        "timestamp": T,
        "level": level,
        "title": title,
        "text": text,
        "source": "worker",
    }


def test_state_follows_stalls_and_alerts_without_duplicates() -> None:
    state = MonitorState()
    state.load_snapshot(
        {"job": {"id": "j", "status": "running", "alerts": 1}, "alerts": [alert(3, "hot")]}
    )
    state.apply({"type": "JOB_ALERT", "seq": 3, "data": {"alert": alert(3, "hot")}})
    state.apply({"type": "JOB_STALLED", "seq": 4, "data": {"stalled": True}})
    assert state.stalled and [a["title"] for a in state.alerts] == ["hot"]
    state.apply({"type": "JOB_ALERT", "seq": 5, "data": {"alert": alert(5, "job stalled")}})
    state.apply({"type": "JOB_RESUMED", "seq": 6, "data": {"stalled": False}})
    assert not state.stalled and state.job["alerts"] == 2
    block = render_status(state)
    assert block.splitlines()[-1] == "alert [warning] job stalled"


def test_the_terminal_marks_a_stalled_job() -> None:
    state = MonitorState()
    state.load_snapshot({"job": {"id": "j", "status": "running", "stalled": True}})
    assert render_status(state).splitlines()[0].endswith("STALLED")


def test_the_monitor_shows_the_newest_alert_as_a_banner_escaped(
    server: Any, client: Client, clock: Any
) -> None:
    client.create_job(job_id="banner")
    client.report_progress("banner", "w", 5)
    with JobMonitor("banner", server.url, widgets=True) as mon:
        assert mon.view.banner.value == ""
        client.report_progress(
            "banner", "w", 6, alerts=[{"title": "<b>loss</b> is NaN", "level": "error"}]
        )
        wait_for(lambda: "is NaN" in mon.view.banner.value)
        assert "&lt;b&gt;loss&lt;/b&gt;" in mon.view.banner.value
        assert "#dc2626" in mon.view.banner.value  # error colour
        clock.advance(500)
        server.services.watchdog.check()
        wait_for(lambda: "stalled" in mon.view.status.value)
        wait_for(lambda: "job stalled" in mon.view.banner.value)
        assert "(2 alerts)" in mon.view.banner.value
