"""A lost server is visible in the monitor and recovered from by itself: the header says
"disconnected" with the time of the last update, keeps the last view, and goes live
again when the server is back."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from jobwatch import Client
from jobwatch.notebook import monitor as monitor_module
from jobwatch.notebook.monitor import JobMonitor
from jobwatch.notebook.view import MonitorView
from jobwatch.server import EmbeddedServer
from jobwatch.view.state import MonitorState
from tests.conftest import wait_for


@pytest.fixture
def widget_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        monitor_module,
        "_make_view",
        lambda mon, time_range: MonitorView(
            mon._change_range, mon._load_older, time_range, mon._redraw
        ),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


@pytest.mark.parametrize("connection", ["reconnecting", "offline"])
def test_the_header_says_disconnected_with_the_time_of_the_last_update(connection: str) -> None:
    view = MonitorView(lambda _: None, lambda _: None, "5 min")
    state = MonitorState()
    state.job = {"id": "j", "status": "running", "progress": 40.0}
    state.last_update = 1_700_000_000.0
    view.render(state, connection)
    shown = view.connection.value
    assert "disconnected" in shown
    assert f"last update {_clock(1_700_000_000.0)}" in shown


def test_a_live_header_says_live_without_a_time() -> None:
    view = MonitorView(lambda _: None, lambda _: None, "5 min")
    state = MonitorState()
    state.job = {"id": "j", "status": "running"}
    state.last_update = 1_700_000_000.0
    view.render(state, "live")
    assert "live" in view.connection.value and "last update" not in view.connection.value


def test_a_lost_server_shows_disconnected_keeps_the_view_and_resumes(
    tmp_path: Path, widget_view: None
) -> None:
    port = _free_port()
    config = {"DATABASE": str(tmp_path / "jobs.db"), "STALL_CHECK_INTERVAL": 0}
    server = EmbeddedServer(port=port, config=config)
    try:
        with Client(server.url) as client:
            client.create_job(job_id="far")
            client.report_progress("far", "w", 40.0, "epoch 4")
        with JobMonitor("far", server.url) as mon:
            wait_for(lambda: "live" in mon.view.connection.value)
            wait_for(lambda: mon.view.progress.value == 40.0)
            heard = mon.state.last_update
            assert heard is not None
            server.stop()
            wait_for(lambda: "disconnected" in mon.view.connection.value, timeout=20)
            assert f"last update {_clock(heard)}" in mon.view.connection.value
            assert mon.view.progress.value == 40.0  # the last view stays
            assert "epoch 4" in mon.view.live.value
            server = EmbeddedServer(port=port, config=config)
            with Client(server.url) as client:
                client.report_progress("far", "w", 60.0, "epoch 6")
            wait_for(lambda: mon.view.progress.value == 60.0, timeout=30)
            wait_for(lambda: "live" in mon.view.connection.value)
            assert "disconnected" not in mon.view.connection.value
    finally:
        server.stop()
