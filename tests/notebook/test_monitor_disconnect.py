"""A lost server is visible in the monitor and recovered from by itself: the header says
"disconnected" with the time of the last update, keeps the last view, and goes live
again when the server is back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobwatch import Client
from jobwatch.notebook.monitor import JobMonitor
from jobwatch.notebook.view import MonitorView
from jobwatch.server import EmbeddedServer
from jobwatch.view.state import MonitorState
from tests.conftest import free_port, wait_for


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


def test_a_lost_server_shows_disconnected_keeps_the_view_and_resumes(tmp_path: Path) -> None:
    port = free_port()
    config = {"DATABASE": str(tmp_path / "jobs.db"), "STALL_CHECK_INTERVAL": 0}
    server = EmbeddedServer(port=port, config=config)
    try:
        with Client(server.url) as client:
            client.create_job(job_id="far")
            client.report_progress("far", "w", 40.0, "epoch 4")
        with JobMonitor("far", server.url, widgets=True) as mon:
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


def test_the_kernel_beats_while_the_monitor_follows_its_job(
    server: EmbeddedServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's watch on the kernel (static/snapshot_switch.js) expects a beat every
    ``beat_every`` seconds while ``watching``; a finished or closed monitor stops it."""
    from jobwatch.notebook import snapshot_switch

    monkeypatch.setattr(snapshot_switch, "BEAT", 0.2)
    client.create_job(job_id="beating")
    client.report_progress("beating", "w", 10.0)
    with JobMonitor("beating", server.url, widgets=True) as mon:
        switch = mon.view.switch
        assert switch.beat_every == 0.2 and switch.missed_beats == snapshot_switch.MISSED_BEATS
        wait_for(lambda: switch.watching)
        first = switch.beat
        wait_for(lambda: switch.beat >= first + 3)  # a quiet job: the ticks beat
        client.complete_job("beating", "w")
        assert mon.wait(10)
        assert not switch.watching
        ended = switch.beat
        time.sleep(0.5)
        assert switch.beat == ended
    client.create_job(job_id="closed-one")
    with JobMonitor("closed-one", server.url, widgets=True) as mon:
        wait_for(lambda: mon.view.switch.watching)
    assert not mon.view.switch.watching
