"""What a notebook gets from the monitor, in a real kernel (jupyter_client): the
widget messages on iopub, as the browser receives them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.kernel import Cell, Kernel, kernel_with_server, wire_size

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with kernel_with_server("threading, time, jobwatch") as k:
        yield k


def updates(cell: Cell, model_id: str, key: str) -> list[Any]:
    """The values of trait ``key`` of widget ``model_id`` sent during the cell, in order."""
    return [
        m["content"]["data"]["state"][key]
        for m in cell.of_type("comm_msg")
        if m["content"]["comm_id"] == model_id
        and m["content"]["data"].get("method") == "update"
        and key in m["content"]["data"].get("state", {})
    ]


def test_track_in_a_foreground_cell_updates_the_monitor_live(kernel: Kernel) -> None:
    cell = kernel.run(
        # 3 s at the Reporter's 1-s interval: at least 3 updates while the loop runs
        "items = jobwatch.track(range(30), name='kernel loop', description='step')\n"
        "for i in items:\n"
        "    time.sleep(0.1)\n"
    )
    assert cell.error() is None, cell.error()
    assert cell.of_type("display_data"), "no monitor displayed in the cell"
    progress = kernel.value("items.monitor.view.progress.model_id")
    values = updates(cell, progress, "value")
    # sent while the loop ran, each a step further; the last one 100
    assert len([v for v in values if 0 < v < 100]) >= 3, values
    assert values == sorted(values) and values[-1] == 100.0
    assert kernel.value("items.monitor.state.job['status']") == "completed"
    assert "completed" in kernel.value("items.monitor.view.final.value")


def test_a_reporter_and_a_monitor_in_one_cell(kernel: Kernel) -> None:
    cell = kernel.run(
        "reporter = jobwatch.Reporter('one-cell', url=server.url, interval=0.1, gpu=False)\n"
        "mon = jobwatch.JobMonitor('one-cell', server.url, wait_interval=0.1)\n"
        "mon"
    )
    assert cell.error() is None, cell.error()
    assert kernel.value(
        "'waiting' in mon.view.status.value or mon.state.job.get('status') is not None"
    )
    cell = kernel.run("reporter.update(40.0, 'epoch 4'); reporter.flush(10); time.sleep(1.0)")
    assert cell.error() is None
    assert kernel.value("mon.view.progress.value") == 40.0
    assert kernel.value("mon.view.operation.value") == "epoch 4"
    kernel.run("reporter.complete(); mon.wait(10)")


def test_running_the_monitor_cell_again_leaves_one_live_monitor(kernel: Kernel) -> None:
    kernel.run("client.create_job(job_id='again')")
    for _ in range(4):
        cell = kernel.run("monitor = jobwatch.JobMonitor('again', server.url)\nmonitor")
        assert cell.error() is None, cell.error()
    names = kernel.value("[t.name for t in threading.enumerate() if t.name.endswith('-again')]")
    assert sorted(names) == ["jobwatch-monitor-read-again", "jobwatch-monitor-render-again"]
    assert kernel.value("server.services.broker.subscriber_count('again')") == 1
    cell = kernel.run(
        "client.report_progress('again', 'w', 55, logs=[{'level': 'info', 'message': 'once'}])\n"
        "time.sleep(1.0)"
    )
    appended = [
        m for m in cell.of_type("comm_msg")
        if m["content"]["data"].get("method") == "custom"
        and any(line["message"] == "once" for line in m["content"]["data"]["content"].get("add", []))
    ]  # fmt: skip
    assert len(appended) == 1, "the new line was rendered more than once"


def test_close_keeps_the_final_view(kernel: Kernel) -> None:
    kernel.run("client.create_job(job_id='closing'); client.report_progress('closing', 'w', 30)")
    kernel.run("closing = jobwatch.JobMonitor('closing', server.url)\nclosing")
    cell = kernel.run("closing.close()")
    assert cell.error() is None
    assert not cell.of_type("comm_close"), "close() took the view off the page"
    assert "not live (closed)" in kernel.value("closing.view.connection.value")
    assert kernel.value("closing.view.progress.value") == 30.0


def test_no_charts_without_gpu_samples(kernel: Kernel) -> None:
    kernel.run(
        "client.create_job(job_id='cpu-only'); client.report_progress('cpu-only', 'w', 30)\n"
        "cpu = jobwatch.JobMonitor('cpu-only', server.url)\ncpu"
    )
    assert kernel.value("cpu.view.charts_shown") is False
    assert kernel.value("cpu.view.gpu.value") == "no GPU metrics reported"
    kernel.run("client.complete_job('cpu-only', 'w'); cpu.wait(10)")
    assert kernel.value("cpu.view.charts_shown") is False


def test_terminal_colours_and_frames_in_the_log_view(kernel: Kernel) -> None:
    kernel.run(
        "client.create_job(job_id='ansi')\n"
        "colours = jobwatch.JobMonitor('ansi', server.url)\ncolours"
    )
    kernel.run(
        "client.report_progress('ansi', 'w', 10, logs=["
        "{'level': 'info', 'message': ' 10%|#\\r 20%|##\\r 30%|###'},"
        "{'level': 'error', 'message': '\\x1b[1;31mERROR\\x1b[0m nan\\x1b[2K'}])\n"
        "time.sleep(1.0)"
    )
    lines = kernel.value("colours.view.logs.lines")
    assert [line["message"] for line in lines] == [" 30%|###", "ERROR nan"]
    assert lines[1]["spans"][0] == {"text": "ERROR", "fg": 9, "bold": True}


def test_one_new_line_costs_under_4_kb_whatever_the_buffer_holds(kernel: Kernel) -> None:
    kernel.run(
        "client.create_job(job_id='big')\n"
        "big = jobwatch.JobMonitor('big', server.url)\n"
        "big.view.logs.append([{'id': -2000 + i, 'level': 'info', 'timestamp': 't',"
        " 'message': 'x' * 16384} for i in range(1000)])\n"
        "big"
    )
    assert kernel.value("len(big.view.logs.lines)") == 1000
    logs = kernel.value("big.view.logs.model_id")
    cell = kernel.run(
        "client.report_progress('big', 'w', 1, logs=[{'level': 'info', 'message': 'twelve bytes'}])\n"
        "time.sleep(1.0)"
    )
    sent = [m for m in cell.of_type("comm_msg") if m["content"]["comm_id"] == logs]
    assert sent, "the new line never reached the log view"
    total = sum(wire_size(m) for m in sent)
    assert total < 4096, f"{total} bytes over the comm for one short line"


def test_a_chart_redraw_with_8_gpus_costs_under_64_kb(kernel: Kernel) -> None:
    kernel.run(
        "client.create_job(job_id='gpus')\n"
        "from jobwatch.view.follow import HistoryLoaded\n"
        "gpus = jobwatch.JobMonitor('gpus', server.url, time_range='all')\n"
        "def sample(t):\n"
        "    return {'timestamp': jobwatch.contract.requests.format_ts(t), 'gpus': [\n"
        "        {'index': g, 'gpuUtilization': 50.0 + g, 'gpuMemoryUsed': 1000.0,\n"
        "         'gpuMemoryTotal': 80000.0, 'gpuTemperature': 60.0, 'powerUsage': 300.0}\n"
        "        for g in range(8)]}\n"
        "now = time.time()\n"
        "gpus._follower.put(HistoryLoaded([sample(now - 4000 + 2 * i) for i in range(2000)]))\n"
        "deadline = time.monotonic() + 30\n"  # the history drawn before the measured cell
        "while gpus.view._samples_shown != gpus.state.samples_version and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "time.sleep(0.5)\n"
        "gpus"
    )
    marks = kernel.value("[m.model_id for m in gpus.view.charts.marks()]")
    cell = kernel.run(
        # the charts redraw for new samples at most every CHART_INTERVAL (1 s) and the
        # follower renders at least every second: one redraw within 2.5 s
        "client.report_progress('gpus', 'w', 5, metrics=sample(time.time()))\ntime.sleep(2.5)"
    )
    redraw = [m for m in cell.of_type("comm_msg") if m["content"]["comm_id"] in marks]
    assert redraw, "the charts were not redrawn"
    total = sum(wire_size(m) for m in redraw)
    assert total < 64 * 1024, f"{total} bytes for one redraw with 8 GPUs"


def test_the_snapshot_beside_the_widget_ends_with_the_job(kernel: Kernel) -> None:
    cell = kernel.run(
        "snap = jobwatch.track(range(5), name='snapshot loop', price_per_hour=3.6)\n"
        "for i in snap:\n"
        "    snap.log(f'line {i} <b>')\n"
        "    time.sleep(0.05)\n"
    )
    assert cell.error() is None, cell.error()
    shown = cell.of_type("display_data")
    widget = [
        m for m in shown if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    static = [m for m in shown if "text/html" in m["content"]["data"]]
    assert len(widget) == 1 and len(static) == 1, [m["content"]["data"].keys() for m in shown]
    assert "snapshot" in widget[0]["content"]["data"]["text/plain"]
    display_id = static[0]["content"]["transient"]["display_id"]
    marker = kernel.value("snap.monitor.snapshot_marker")
    assert display_id == marker and marker in static[0]["content"]["data"]["text/html"]
    # the job's end replaced the snapshot in place: an update of the same display
    kernel.run("time.sleep(0.5)")
    # (a monitor of an earlier test in this kernel may update its own display meanwhile)
    updates = [
        m
        for m in cell.messages + kernel.run("snap.monitor.close()").messages
        if m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == marker
    ]
    assert updates
    final = updates[-1]["content"]["data"]
    assert ">completed<" in final["text/html"] and "line 4 &lt;b&gt;" in final["text/html"]
    assert "QUBIC" in final["text/html"] and "<b>line" not in final["text/html"]
    assert final["text/plain"].splitlines()[-1].endswith("line 4 <b>")
