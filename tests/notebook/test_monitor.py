"""JobMonitor without a kernel or a browser: events in, widget values out."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from jobwatch import Client
from jobwatch.notebook.monitor import BURST, JobMonitor, MonitorView
from jobwatch.notebook.text import TextView
from jobwatch.view.state import MAX_LOG_LINES, MAX_POINTS, MonitorState
from tests.conftest import wait_for

TS = "2026-11-29T10:00:00.000Z"


def wire_ts(seconds: float) -> str:
    from jobwatch.contract.requests import format_ts

    text = format_ts(1_800_000_000.0 + seconds)
    assert text is not None
    return text


def snapshot(**job: Any) -> dict[str, Any]:
    base = {
        "id": "j",
        "name": "demo",
        "status": "running",
        "progress": 10.0,
        "currentOperation": "epoch 1",
        "startedAt": wire_ts(0),
        "completedAt": None,
    }
    base.update(job)
    return {
        "job": base,
        "metrics": {"latest": None, "history": []},
        "logs": [],
        "timeRemaining": 90.0,
        "costSoFar": 0.1,
        "estimatedTotalCost": 1.0,
        "currency": "QUBIC",
        "seq": 3,
    }


def progress(
    seq: int, value: float, metrics: dict[str, Any] | None = None, t: float = 1.0
) -> dict[str, Any]:
    return {
        "type": "JOB_PROGRESS",
        "jobId": "j",
        "seq": seq,
        "data": {
            "jobId": "j",
            "status": "running",
            "progress": value,
            "currentOperation": f"epoch {seq}",
            "metrics": metrics,
            "timeRemaining": 50.0,
            "costSoFar": 0.2,
            "estimatedTotalCost": 1.2,
            "elapsed": t,
            "currency": "QUBIC",
            "timestamp": wire_ts(t),
        },
    }


# -- MonitorState ----------------------------------------------------------------


def test_state_applies_events_in_order():
    state = MonitorState(clock=lambda: 1_800_000_010.0)
    state.load_snapshot(snapshot())
    state.apply(progress(4, 45, {"timestamp": wire_ts(1), "gpuUtilization": 87}))
    state.apply(
        {
            "type": "JOB_LOGS",
            "jobId": "j",
            "seq": 5,
            "data": {"logs": [{"id": 1, "level": "info", "timestamp": TS, "message": "a"}]},
        }
    )
    assert state.job["progress"] == 45 and state.job["currentOperation"] == "epoch 4"
    assert state.time_remaining == 50.0 and state.cost_so_far == 0.2 and state.seq == 5
    assert [line["message"] for line in state.take_new_logs()] == ["a"]
    assert state.take_new_logs() == []
    assert state.series("gpuUtilization", None).lines == {"all GPUs": [87.0]}


def test_state_completion_and_failure():
    state = MonitorState()
    state.load_snapshot(snapshot())
    state.apply(
        {
            "type": "JOB_COMPLETED",
            "jobId": "j",
            "seq": 4,
            "data": {
                "status": "completed",
                "result": {"acc": 0.9},
                "completedAt": wire_ts(100),
                "costSoFar": 3.0,
            },
        }
    )
    assert state.finished and state.job["progress"] == 100.0 and state.time_remaining == 0.0
    assert state.elapsed == pytest.approx(100.0) and state.cost_so_far == 3.0
    failed = MonitorState()
    failed.load_snapshot(snapshot())
    failed.apply(
        {
            "type": "JOB_COMPLETED",
            "jobId": "j",
            "seq": 4,
            "data": {"status": "failed", "error": "CUDA out of memory", "completedAt": wire_ts(5)},
        }
    )
    assert failed.finished and failed.job["error"] == "CUDA out of memory"
    assert failed.job["progress"] == 10.0


def test_state_keeps_bounded_buffers():
    state = MonitorState(clock=lambda: 1_800_000_000.0 + 5000)
    state.load_snapshot(snapshot())
    for i in range(MAX_POINTS + 500):
        state.apply(progress(i + 4, 50, {"timestamp": wire_ts(i), "gpuUtilization": i % 100}, t=i))
    assert len(state.samples) == MAX_POINTS
    assert state.samples[0].ts == pytest.approx(1_800_000_000.0 + 500)
    lines = [{"id": i, "level": "info", "timestamp": TS, "message": str(i)} for i in range(1, 1501)]
    state.add_logs(lines)
    assert len(state.logs) == MAX_LOG_LINES and state.logs[0]["id"] == 501
    assert len(state.take_new_logs()) == MAX_LOG_LINES


_row = st.builds(
    lambda t, u: {"timestamp": wire_ts(t), "gpuUtilization": float(u)},
    st.integers(0, 40),
    st.integers(0, 3),
)


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(_row, max_size=30),
    latest=st.one_of(st.none(), _row),
    later=st.lists(_row, max_size=10),
)
def test_history_added_after_the_first_render_keeps_the_same_samples(
    history: list[dict[str, Any]], latest: dict[str, Any] | None, later: list[dict[str, Any]]
) -> None:
    """A snapshot's history put in after its latest sample and later events
    (the first render does not wait for it) leaves the samples that loading it
    first would have left."""
    history.sort(key=lambda row: row["timestamp"])
    whole = {"job": {"id": "j"}, "metrics": {"history": history, "latest": latest}}
    at_once, deferred = MonitorState(), MonitorState()
    at_once.load_snapshot(whole)
    deferred.load_snapshot(whole, history=False)
    for i, row in enumerate(later):
        for state in (at_once, deferred):
            state.apply(progress(i + 1, 10, row))
    deferred.add_history(history)
    assert list(deferred.samples) == list(at_once.samples)


def test_a_long_history_keeps_the_newest_samples_whatever_the_order() -> None:
    history = [{"timestamp": wire_ts(i), "gpuUtilization": 1.0} for i in range(MAX_POINTS)]
    state = MonitorState()
    state.load_snapshot({"job": {"id": "j"}, "metrics": {"history": history}}, history=False)
    state.apply(progress(1, 10, {"timestamp": wire_ts(MAX_POINTS + 5), "gpuUtilization": 2.0}))
    state.add_history(history)
    assert len(state.samples) == MAX_POINTS
    assert state.samples[0].ts == 1_800_000_001.0 and state.samples[-1].flat["gpuUtilization"] == 2


def test_missing_metrics_are_gaps_and_gpus_get_their_own_lines():
    state = MonitorState(clock=lambda: 1_800_000_010.0)
    state.load_snapshot(snapshot())
    state.apply(
        progress(4, 20, {"timestamp": wire_ts(1), "gpuUtilization": None, "powerUsage": 100})
    )
    state.apply(progress(5, 30, None))  # no metrics at all: no sample
    state.apply(
        progress(
            6,
            40,
            {
                "timestamp": wire_ts(2),
                "gpus": [{"index": 0, "gpuUtilization": 10}, {"index": 1, "gpuUtilization": None}],
            },
        )
    )
    util = state.series("gpuUtilization", None)
    assert len(util.x) == 2
    assert list(util.lines) == ["GPU 0", "GPU 1"]
    assert all(math.isnan(v) for v in util.lines["GPU 1"])
    assert math.isnan(util.lines["GPU 0"][0]) and util.lines["GPU 0"][1] == 10


def test_elapsed_moves_on_between_events():
    now = [1_800_000_100.0]
    state = MonitorState(clock=lambda: now[0])
    state.load_snapshot(snapshot())
    state.apply(progress(4, 20, t=100.0))
    now[0] += 30
    assert state.elapsed == pytest.approx(130.0)
    assert state.reported_elapsed == 100.0  # what a line printed only on change shows


def test_completion_fixes_the_total_and_keeps_elapsed_without_timestamps():
    state = MonitorState(clock=lambda: 1_800_000_100.0)
    state.load_snapshot(snapshot(status="pending", startedAt=None))
    state.apply(progress(4, 50, t=40.0))  # the job started; events carry no startedAt
    assert state.elapsed == 40.0
    state.apply({"type": "JOB_COMPLETED", "jobId": "j", "seq": 5, "data": {"status": "failed"}})
    assert state.elapsed == 40.0 and state.estimated_total_cost == state.cost_so_far == 0.2


# -- JobMonitor with widgets, without a kernel -------------------------------------


def test_monitor_shows_updates_live(server, client, clock):
    client.create_job(job_id="live", name="resnet", price_per_hour=3.6)
    client.report_progress("live", "w", 10, "epoch 1/10")
    with JobMonitor("live", server.url, widgets=True) as mon:
        view = mon.view
        assert view.percent.value == "<b>10.0%</b>"
        clock.advance(100)
        client.report_progress(
            "live",
            "w",
            50,
            "epoch 5/10",
            metrics={"gpuUtilization": 87.0},
            logs=[{"level": "warning", "message": "GPU hot"}],
        )
        wait_for(lambda: view.progress.value == 50)
        wait_for(lambda: len(view.logs.lines) == 1)
        assert view.operation.value == "epoch 5/10"
        assert "2m 05s" in view.eta.value  # 40 % in 100 s: 50 % to go at 0.4 %/s
        assert "0.100 QUBIC" in view.cost.value  # 100 s at 3.6/h
        assert "live" in view.connection.value
        assert view.logs.lines[0]["message"] == "GPU hot"
        wait_for(lambda: view.charts is not None and list(view.charts.utilization.y) == [87.0])
        assert view.progress.bar_style == "info"


def test_monitor_shows_the_budget_and_colours_what_is_over(server, client, clock):
    """3,600 an hour is 1 a second. At 1 % one second in, the estimate (100) is over the
    budget of 50: the estimate turns amber; 60 s later the cost (61) has passed it:
    the cost turns red. The text fallback says the same in words."""
    client.create_job(job_id="capped", price_per_hour=3600.0)
    requests.put(f"{server.url}/api/jobs/capped", json={"budget": 50.0}, timeout=5)
    client.report_progress("capped", "w", 0)
    clock.advance(1)
    client.report_progress("capped", "w", 1)
    with JobMonitor("capped", server.url, widgets=True) as mon:
        view = mon.view
        wait_for(lambda: "budget 50.00 QUBIC" in view.cost.value)
        assert "budget 50.00 QUBIC: projected over budget" in view.cost.value
        assert 'of est. <b style="color:#b45309">' in view.cost.value
        assert '<b style="color' not in view.cost.value.split(" of est.")[0]  # the cost: not yet
        clock.advance(60)
        client.report_progress("capped", "w", 2)
        wait_for(lambda: "budget 50.00 QUBIC: over budget" in view.cost.value)
        assert view.cost.value.startswith('cost <b style="color:#b91c1c">61.00 QUBIC</b>')
        assert view.cost.value in view.live.value
    with JobMonitor("capped", server.url, widgets=False) as mon:
        assert isinstance(mon.view, TextView)
        wait_for(lambda: "budget 50.00 QUBIC: over budget" in mon.view._last)


def test_a_running_job_at_99_96_percent_reads_99_9(server, client):
    client.create_job(job_id="almost")
    client.report_progress("almost", "w", 99.96)
    with JobMonitor("almost", server.url, widgets=True) as mon:
        assert mon.view.percent.value == "<b>99.9%</b>"


def test_updates_are_throttled(server, client):
    client.create_job(job_id="fast")
    with JobMonitor("fast", server.url, refresh=0.25, widgets=True) as mon:
        start, before = time.monotonic(), mon.renders
        for i in range(1, 201):
            client.report_progress("fast", "w", i / 2)
        wait_for(lambda: mon.view.progress.value == 100.0)
        elapsed = time.monotonic() - start
        renders = mon.renders - before
    # One a refresh on average beyond the burst, plus the once-a-second ticks.
    bound = elapsed / 0.25 + BURST + elapsed / 1.0 + 2
    assert renders <= bound, f"{renders} renders in {elapsed:.2f} s"


def test_final_states(server, client):
    client.create_job(job_id="ok")
    client.create_job(job_id="bad")
    with (
        JobMonitor("ok", server.url, widgets=True) as ok,
        JobMonitor("bad", server.url, widgets=True) as bad,
    ):
        client.complete_job("ok", "w", result={"accuracy": 0.97})
        client.complete_job("bad", "w", status="failed", error="CUDA out of memory")
        wait_for(lambda: "completed" in ok.view.final.value and "failed" in bad.view.final.value)
        assert "accuracy" in ok.view.final.value and ok.view.progress.bar_style == "success"
        assert ok.view.progress.value == 100
        assert (
            "CUDA out of memory" in bad.view.final.value and bad.view.progress.bar_style == "danger"
        )


def test_time_range_loads_history_with_max_points(server, client, clock):
    client.create_job(job_id="hist")
    for i in range(30):
        clock.advance(10)
        client.report_progress("hist", "w", i + 1, metrics={"gpuUtilization": float(i)})
    with JobMonitor("hist", server.url, time_range="1 min", widgets=True) as mon:
        # the snapshot: the last 60 s, both ends in
        wait_for(lambda: mon.view.charts is not None and len(mon.view.charts.utilization.x) == 7)
        mon.view.range.value = "all"
        wait_for(lambda: len(mon.view.charts.utilization.x) == 30)


def test_older_log_lines_load_on_demand(server, client):
    client.create_job(job_id="logs")
    lines = [{"level": "info", "message": f"m{i}"} for i in range(250)]
    client.report_progress("logs", "w", 1, logs=lines)
    with JobMonitor("logs", server.url, widgets=True) as mon:
        view = mon.view.logs
        assert next(line["message"] for line in view.lines) == "m150"  # /monitor: last 100
        mon._load_older(view.lines[0]["id"])
        assert len(view.lines) == 250 and view.lines[0]["message"] == "m0"


def test_close_leaves_no_thread_or_socket(server, client):
    client.create_job(job_id="closing")
    mon = JobMonitor("closing", server.url, widgets=True)
    wait_for(lambda: mon.state.connection == "live")
    mon.close()
    names = {t.name for t in threading.enumerate()}
    assert not any(name.startswith("jobwatch-monitor") for name in names)
    wait_for(lambda: server.services.broker.subscriber_count("closing") == 0)
    mon.close()  # idempotent


def test_a_monitor_waits_for_a_job_that_does_not_exist_yet(server, client):
    with JobMonitor("later", server.url, wait_interval=0.05, widgets=True) as mon:
        view = mon.view
        assert "waiting" in view.status.value
        assert "waiting for job <code>later</code>" in view.operation.value
        client.create_job(job_id="later", name="later run")
        client.report_progress("later", "w", 30, "epoch 3/10")
        wait_for(lambda: view.progress.value == 30)
        wait_for(lambda: "live" in view.connection.value)
        assert view.operation.value == "epoch 3/10"
        assert "running" in view.status.value


def test_a_reporter_and_a_monitor_in_one_cell_just_work(server):
    from jobwatch import Reporter

    with Reporter("same-cell", url=server.url, interval=0.05, gpu=False) as reporter:
        mon = JobMonitor("same-cell", server.url, wait_interval=0.05, widgets=True)
        reporter.update(50.0, "half")
        wait_for(lambda: mon.view.progress.value == 50)
    assert mon.wait(10)
    assert "completed" in mon.view.final.value
    assert not mon.live
    mon.close()


def test_a_new_monitor_of_the_same_job_stops_the_one_before(server, client):
    client.create_job(job_id="rerun")
    first = JobMonitor("rerun", server.url, widgets=True)
    wait_for(lambda: first.state.connection == "live")
    second = JobMonitor("rerun", server.url, widgets=True)
    try:
        assert not first.live and second.live
        threads = [t.name for t in threading.enumerate() if t.name.endswith("-rerun")]
        assert sorted(threads) == [
            "jobwatch-monitor-read-rerun",
            "jobwatch-monitor-render-rerun",
        ]
        wait_for(lambda: server.services.broker.subscriber_count("rerun") == 1)
        renders = first.renders
        client.report_progress("rerun", "w", 70)
        wait_for(lambda: second.view.progress.value == 70)
        assert first.renders == renders and first.view.progress.value == 0
        # the first one's last view stays on screen, marked as not live
        assert first.widget.comm is not None
        assert "not live" in first.view.connection.value
    finally:
        second.close()


def test_close_stops_following_and_keeps_the_last_view(server, client):
    client.create_job(job_id="kept", name="kept run")
    client.report_progress("kept", "w", 40, logs=[{"level": "info", "message": "hello"}])
    mon = JobMonitor("kept", server.url, widgets=True)
    mon.close()
    assert mon.widget.comm is not None and mon.view.logs.comm is not None
    assert mon.view.progress.value == 40
    assert [line["message"] for line in mon.view.logs.lines] == ["hello"]
    assert "not live (closed)" in mon.view.connection.value
    assert mon.wait(0.1) is False


def test_no_gpu_no_charts(server, client):
    client.create_job(job_id="cpu")
    client.report_progress("cpu", "w", 50)
    with JobMonitor("cpu", server.url, widgets=True) as mon:
        view = mon.view
        assert not view.charts_shown and view.range not in view.widget.children
        assert view.gpu.value == "no GPU metrics reported"
        client.complete_job("cpu", "w")
        assert mon.wait(10)
        assert not view.charts_shown
        assert view.gpu.value == "no GPU metrics reported"
    client.create_job(job_id="gpu")
    with JobMonitor("gpu", server.url, widgets=True) as mon:
        client.report_progress("gpu", "w", 5, metrics={"gpuUtilization": 90.0})
        wait_for(lambda: mon.view.charts_shown)
        assert mon.view.range in mon.view.widget.children
        assert "GPU <b>90%</b>" in mon.view.gpu.value


SYSTEM = {"cpuUtilization": 40.0, "memoryUsed": 4096.0, "memoryTotal": 8192.0}


def test_a_job_without_a_gpu_gets_the_system_charts(server, client, clock):
    client.create_job(job_id="sys")
    with JobMonitor("sys", server.url, widgets=True) as mon:
        view = mon.view
        for step in range(3):
            clock.advance(1)
            client.report_progress("sys", "w", step, metrics={**SYSTEM, "processMemory": 512.0})
        wait_for(lambda: view.system_charts_shown and len(view.system_charts.marks()[0].x) == 3)
        assert not view.charts_shown and view.kind not in view.widget.children
        assert view.range in view.widget.children
        assert view.gpu.value == "no GPU metrics reported"
        assert "CPU 40%  mem 4.0/8.0 GiB  process 0.50 GiB" in view.live.value
        cpu, used_and_process, total, io = view.system_charts.marks()
        assert list(cpu.y) == [40.0] * 3
        assert used_and_process.labels == ["memory in use", "process memory (RSS)"]
        assert [list(line) for line in used_and_process.y] == [[4.0] * 3, [0.5] * 3]  # GiB
        assert (total.line_style, list(total.y)) == ("dashed", [8.0] * 3)
        assert io.labels == ["disk read", "disk write", "network received", "network sent"]
        assert all(math.isnan(v) for line in io.y for v in line)  # not sent: gaps, never 0


def test_a_job_with_both_picks_gpu_or_system_charts(server, client):
    client.create_job(job_id="both")
    with JobMonitor("both", server.url, widgets=True) as mon:
        view = mon.view
        client.report_progress("both", "w", 1, metrics={**SYSTEM, "gpuUtilization": 90.0})
        wait_for(lambda: view.charts_shown)
        assert view.kind in view.widget.children and view.kind.value == "GPU"
        assert not view.system_charts_shown and view.system_charts is None  # made when picked
        view.kind.value = "system"
        wait_for(lambda: view.system_charts_shown)
        assert not view.charts_shown
        assert list(view.system_charts.marks()[0].y) == [40.0]
        view.kind.value = "GPU"
        wait_for(lambda: view.charts_shown and not view.system_charts_shown)


def test_name_and_id_once_and_no_null_result(server, client):
    client.create_job(job_id="plain-id")
    client.create_job(job_id="named", name="resnet")
    with (
        JobMonitor("plain-id", server.url, widgets=True) as plain,
        JobMonitor("named", server.url, widgets=True) as named,
    ):
        assert plain.view.title.value.count("plain-id") == 1
        assert named.view.title.value == "<b>resnet</b> <code>named</code>"
        client.complete_job("plain-id", "w")
        assert plain.wait(10)
        assert "completed" in plain.view.final.value
        assert "result:" not in plain.view.final.value and "null" not in plain.view.final.value


def test_bad_arguments_are_refused(server):
    with pytest.raises(ValueError, match="time_range"):
        JobMonitor("x", server.url, time_range="2 min")
    with pytest.raises(ValueError, match="refresh"):
        JobMonitor("x", server.url, refresh=0)
    with pytest.raises(ValueError, match="x_axis must be one of step, time, cost"):
        JobMonitor("x", server.url, x_axis="money")


def test_outside_a_kernel_it_falls_back_to_text(server, client, capsys):
    client.create_job(job_id="text", name="plain")
    with JobMonitor("text", server.url) as mon:
        assert isinstance(mon.view, TextView)
        client.report_progress(
            "text", "w", 42, "epoch 4", logs=[{"level": "error", "message": "boom"}]
        )
        wait_for(lambda: "42.0%" in capsys.readouterr().out or "42.0%" in mon.view._last)
    out = capsys.readouterr().out
    assert mon.widget is None
    assert "needs a Jupyter kernel" in out or mon.view._last


def test_serve_returns_the_running_server():
    import jobwatch

    first = jobwatch.serve()
    try:
        assert jobwatch.serve() is first
        assert first.url.startswith("http://127.0.0.1:") and first.ws_url.endswith("/ws")
        assert Client(first.url).health()["status"] == "ok"
    finally:
        first.stop()
    second = jobwatch.serve()
    assert second is not first
    second.stop()


def test_the_monitor_displays_as_a_widget(server, client):
    client.create_job(job_id="shown")
    with JobMonitor("shown", server.url, widgets=True) as mon:
        bundle = mon._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == mon.widget.model_id


def test_the_first_render_sends_the_header_before_bqplot_loads() -> None:
    """The first render that has GPU samples and training metrics sets the header
    and makes no chart (nor imports bqplot: about 0.4 s in a kernel, and its
    JavaScript in the page); it asks for the next render, which makes both
    charts. Run in a fresh interpreter so no other test has imported bqplot."""
    probe = """
import sys
from jobwatch.view.state import MonitorState
from jobwatch.notebook.view import MonitorView
from tests.conftest import wait_for

asked = []
view = MonitorView(lambda r: None, lambda b: None, "5 min", lambda: asked.append(1))
state = MonitorState()
stamp = "2027-01-15T08:00:00.000Z"
state.load_snapshot({
    "job": {"id": "j", "status": "running", "progress": 42, "startedAt": stamp},
    "metrics": {"latest": None, "history": [{"timestamp": stamp, "gpuUtilization": 87.0}]},
    "scalars": {"loss": {"step": 1, "timestamp": stamp, "value": 0.5}},
})
view.render(state, "live")
assert view.progress.value == 42.0, view.progress.value
assert view.charts is None and view.scalars is None
assert not view.charts_shown and not view.scalars_shown
assert "bqplot" not in sys.modules, "the first render imported bqplot"
assert asked == [1], asked
view.render(state, "live")
assert view.charts_shown and view.scalars_shown
assert list(view.charts.utilization.y) == [87.0]
assert asked == [1], asked
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_first_render_comes_before_the_snapshot_history(server, client, clock) -> None:
    """The follower renders the job first, with the latest sample only; the
    render loop then puts the snapshot's history in (``/monitor``'s 60 s)."""
    from jobwatch.view.follow import JobFollower

    client.create_job(job_id="hist-first")
    for i in range(20):
        clock.advance(1)
        client.report_progress("hist-first", "w", i + 1, metrics={"gpuUtilization": float(i)})
    seen: list[int] = []

    class View:
        def render(self, state: MonitorState, connection: str) -> None:
            seen.append(len(state.samples))

    follower = JobFollower(client, "hist-first").start(View())
    try:
        wait_for(lambda: seen and seen[-1] == 20)
    finally:
        follower.close()
    assert seen[0] == 1  # the latest sample, for the header


def test_a_render_of_a_new_update_sends_the_header_in_three_messages(monkeypatch) -> None:
    """A job reporting 10 times a second changes its operation, time remaining,
    cost, elapsed time and latest GPU sample with nearly every update: they
    travel as one widget's message, with the bar and its percentage (each comm
    message costs the kernel about 0.1 ms, and the monitor's CPU is budgeted:
    ``benchmarks/kernel.py``)."""
    import ipywidgets

    sent: list[tuple[str, tuple[str, ...]]] = []
    real_send = ipywidgets.Widget._send

    def counted(self: Any, msg: dict[str, Any], buffers: Any = None) -> None:
        sent.append((type(self).__name__, tuple(sorted(msg.get("state", {})))))
        real_send(self, msg, buffers)

    monkeypatch.setattr(ipywidgets.Widget, "_send", counted)
    now = [0.0]
    state = MonitorState(clock=lambda: 1_800_000_000.0 + now[0])
    state.load_snapshot(snapshot())
    view = MonitorView(lambda r: None, lambda b: None, "5 min")
    view.render(state, "live")
    gpu = {"timestamp": wire_ts(7.0), "gpuUtilization": 55.0, "powerUsage": 300.0}
    state.apply(progress(4, 42.0, metrics=gpu, t=7.0))
    now[0] = 7.0
    sent.clear()
    view.render(state, "live")
    assert "epoch 4" in view.operation.value and "epoch 4" in view.live.value
    for part in (view.elapsed, view.eta, view.cost, view.gpu):
        assert part.value and part.value in view.live.value
    header = [m for m in sent if m[0] in ("HTML", "FloatProgress")]
    assert len(header) == 3, sent  # the bar, its percentage, the live line
