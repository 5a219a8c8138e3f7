"""A data scientist's first notebook session, in JupyterLab 4 and Notebook 7, read from the page.

One notebook per front-end walks through the monitor's life in order (one
kernel start for all of it): a monitor shown before its job says it waits,
then goes live; terminal colours and ``\\r`` frames render as in a cell's
output; one new log line costs under 4 KB on the kernel's WebSocket however
many lines the view holds; running the monitor's cell again leaves one live
monitor; ``close()`` leaves the last view on screen, marked not live; and
``jobwatch.track`` in a foreground cell updates live while the loop runs; a
kernel that dies under a live monitor is said on the page, not left "live". No
GPU is visible to the kernel, so no GPU chart may appear (``track``'s Reporter
charts the machine's CPU, memory, disk and network instead). Pictures of the states
go to ``artifacts/`` (those in docs/images/ are copied from there).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser.conftest import Notebook, assert_no_jobwatch_js_errors, screenshot

pytestmark = pytest.mark.browser

NEW_LINE_BUDGET = 4096
"""Bytes one new short log line may cost on the comm: the line, not the view's whole list."""

# Coloured log lines as `logging` colour formatters, tqdm and rich write them.
COLOURED = [
    '("error", "\\x1b[1;31mERROR\\x1b[0m loss is \\x1b[4mnan\\x1b[0m\\x1b[2K")',
    '("info", "\\x1b[32mgreen\\x1b[0m \\x1b[38;5;208morange\\x1b[0m \\x1b[38;2;0;128;255mblue\\x1b[0m")',
]
FRAMES = '("info", " 10%|#         \\r 50%|#####     \\r100%|##########| 3/3")'
FILLER = 200
"""Log lines the view holds before the one new line is weighed."""

CELLS = [
    # 0: an embedded server; no GPU visible to this kernel's Reporters
    "import os, threading, time\n"
    'os.environ["CUDA_VISIBLE_DEVICES"] = ""\n'
    "import jobwatch\n"
    "server = jobwatch.serve()\n"
    "client = jobwatch.Client(server.url)",
    # 1: a monitor for a job that nobody has created yet
    'monitor = jobwatch.JobMonitor("later", url=server.url, wait_interval=0.1)\nmonitor',
    # 2: the worker creates it
    'client.create_job(job_id="later", name="waited for")\n'
    'client.report_progress("later", "w", 20, "epoch 2/10")',
    # 3: and logs; the coloured lines printed too, as a cell shows them
    f"COLOURED = [{', '.join(COLOURED)}]\n"
    'client.report_progress("later", "w", 30, "epoch 3/10", logs=[\n'
    '    {"level": "info", "message": f"step {i:03d} | " + "loss 0.1234 | " * 6}\n'
    f"    for i in range({FILLER})])\n"
    'client.report_progress("later", "w", 30, "epoch 3/10", logs=[\n'
    f'    {{"level": level, "message": message}} for level, message in [*COLOURED, {FRAMES}]])\n'
    "for _, message in COLOURED:\n"
    "    print(message)\n"
    'print("logs", monitor.view.logs.model_id)',
    # 4: one new short line
    'client.report_progress("later", "w", 40, "epoch 4/10",\n'
    '                       logs=[{"level": "info", "message": "twelve bytes"}])',
    # 5: after the monitor's cell ran again
    'client.report_progress("later", "w", 50, "epoch 5/10",\n'
    '                       logs=[{"level": "info", "message": "after the re-run"}])\n'
    "time.sleep(1)\n"
    'print(sorted(t.name for t in threading.enumerate() if t.name.endswith("-later")))',
    # 6: close; what happens afterwards must not show
    "monitor.close()\n"
    'client.report_progress("later", "w", 90, "epoch 9/10",\n'
    '                       logs=[{"level": "info", "message": "after close"}])\n'
    "time.sleep(1)",
    # 7: a training loop in the foreground
    'steps = jobwatch.track(range(24), name="track in a cell", description="step",\n'
    "                       price_per_hour=2.5)\n"
    "for step in steps:\n"
    "    time.sleep(0.25)\n"
    '    steps.log(f"step {step}: loss {1 / (step + 1):.3f}")',
    # 8: a monitor of a running job (its kernel beats every 0.5 s instead of 5 s)
    "jobwatch.notebook.snapshot_switch.BEAT = 0.5\n"
    'client.create_job(job_id="orphan")\n'
    'client.report_progress("orphan", "w", 10, "epoch 1/10")\n'
    'jobwatch.JobMonitor("orphan", url=server.url)',
    # 9: the kernel dies (the front-end starts another); the page keeps the view
    "os._exit(0)",
]
MONITOR, CREATE, WORKER, NEW_LINE, AFTER_RERUN, CLOSE, TRACK, ORPHAN, DIE = range(1, 10)

READ_VIEW = """(root) => {
    const text = (selector) => {
        const node = root.querySelector(selector);
        return node ? node.innerText.trim() : null;
    };
    return {
        status: text(".jobwatch-status"),
        connection: text(".jobwatch-connection"),
        percent: text(".jobwatch-percent"),
        operation: text(".jobwatch-operation"),
        gpu: text(".jobwatch-gpu"),
        final: text(".jobwatch-final"),
        charts: root.querySelectorAll(
            ".jobwatch-chart-util, .jobwatch-chart-memory, .jobwatch-chart-power, .jobwatch-range"
        ).length,
        gpuCharts: root.querySelectorAll(
            ".jobwatch-chart-util, .jobwatch-chart-memory, .jobwatch-chart-power"
        ).length,
        systemCharts: root.querySelectorAll('[class*="jobwatch-chart-system-"]').length,
        rows: Array.from(root.querySelectorAll(".jobwatch-log-line .jobwatch-log-message"))
            .map((node) => node.textContent),
    };
}"""

# Each styled word of a rendered line: its colour, weight and decoration as drawn.
READ_STYLES = """(root) => {
    const styles = {};
    for (const span of root.querySelectorAll("span")) {
        if (span.children.length || !span.textContent.trim()) continue;
        const style = getComputedStyle(span);
        styles[span.textContent.trim()] = {
            color: style.color,
            weight: style.fontWeight,
            decoration: style.textDecorationLine,
        };
    }
    return styles;
}"""
STYLED_WORDS = ["ERROR", "nan", "green", "orange", "blue"]


def view_of(notebook: Notebook, cell: int) -> dict[str, Any]:
    monitor = notebook.cell(cell).locator(".jobwatch-monitor")
    state: dict[str, Any] = monitor.evaluate(READ_VIEW)
    return state


def assert_no_charts(view: dict[str, Any]) -> None:
    assert view["charts"] == 0, "charts (or their time range) shown without a GPU sample"
    assert view["gpu"] == "no GPU metrics reported", view["gpu"]


def test_waiting_live_rerun_close_and_track(open_notebook: Any) -> None:
    from playwright.sync_api import expect  # installed: the browser fixture checked

    notebook: Notebook = open_notebook("session.ipynb", CELLS)
    page = notebook.page
    notebook.run_and_wait(0, timeout_ms=45_000)

    # A monitor before its job: it says it waits, without an error.
    notebook.run_and_wait(MONITOR)
    monitor = notebook.cell(MONITOR).locator(".jobwatch-monitor")
    monitor.wait_for(state="visible")
    view = view_of(notebook, MONITOR)
    assert view["status"] == "waiting"
    assert view["connection"] == "● waiting for the job"
    assert view["operation"].startswith("waiting for job later"), view["operation"]
    assert_no_charts(view)
    screenshot(notebook, "monitor-waiting", monitor)

    # The job appears: the same view goes live.
    notebook.run_and_wait(CREATE)
    expect(monitor.locator(".jobwatch-connection")).to_have_text("● live", timeout=10_000)
    expect(monitor.locator(".jobwatch-percent")).to_have_text("20.0%")
    view = view_of(notebook, MONITOR)
    assert view["status"] == "running"
    assert view["operation"] == "epoch 2/10"
    assert_no_charts(view)

    notebook.run_and_wait(WORKER)
    expect(monitor.locator(".jobwatch-log-line")).to_have_count(FILLER + 3, timeout=10_000)
    view = view_of(notebook, MONITOR)
    assert view["percent"] == "30.0%"
    assert_no_charts(view)

    # Terminal text: styles as JupyterLab draws the same text in a cell, the last \r frame.
    rows = view["rows"][-3:]
    assert rows == [
        "ERROR loss is nan",
        "green orange blue",
        "100%|##########| 3/3",
    ], rows
    assert not any("\x1b" in row or "\r" in row for row in view["rows"])
    coloured = (
        notebook.cell(MONITOR).locator(".jobwatch-log-line").filter(has=page.locator("span span"))
    )
    expect(coloured).to_have_count(2)
    in_log = {}
    for row in coloured.all():
        in_log.update(row.locator(".jobwatch-log-message").evaluate(READ_STYLES))
    in_cell = notebook.cell(WORKER).locator(".jp-OutputArea-output pre").first.evaluate(READ_STYLES)
    for word in STYLED_WORDS:
        assert word in in_log and word in in_cell, (word, in_log, in_cell)
        assert in_log[word] == in_cell[word], (
            f"{word!r}: log view {in_log[word]}, cell {in_cell[word]}"
        )
    assert in_log["ERROR"]["weight"] == "700" and in_log["nan"]["decoration"] == "underline"
    assert in_log["orange"]["color"] == "rgb(255, 135, 0)"
    assert in_log["blue"]["color"] == "rgb(0, 128, 255)"
    screenshot(notebook, "logview-ansi", monitor.locator(".jobwatch-logview"))

    # One new short line, weighed on the kernel's WebSocket as the browser received it.
    logs_id = re.search(r"logs ([0-9a-f]{32})", notebook.output(WORKER))
    assert logs_id, notebook.output(WORKER)
    held = sum(len(row) for row in view["rows"])
    assert held > 4 * NEW_LINE_BUDGET, f"the view holds only {held} characters"
    page.wait_for_timeout(1000)  # the render before this one has gone out
    start = len(notebook.frames)
    notebook.run_and_wait(NEW_LINE)
    monitor.locator(".jobwatch-log-line", has_text="twelve bytes").wait_for(state="attached")
    page.wait_for_timeout(1000)  # anything else this line causes on the log view's comm
    sent = [
        frame
        for frame in notebook.frames[start:]
        if frame.msg_type == "comm_msg" and frame.comm_id == logs_id.group(1)
    ]
    assert sent, "no message to the log view reached the page"
    assert any("twelve bytes" in str(frame.msg) for frame in sent)
    total = sum(frame.size for frame in sent)
    assert total < NEW_LINE_BUDGET, f"{total} bytes in {len(sent)} frames for one short line"

    # The monitor's cell run again: one monitor on the page, live; one reader and one
    # renderer in the kernel; a new line shown once.
    notebook.run_and_wait(MONITOR)
    expect(page.locator(".jobwatch-monitor")).to_have_count(1)
    expect(monitor.locator(".jobwatch-connection")).to_have_text("● live", timeout=10_000)
    notebook.run_and_wait(AFTER_RERUN)
    assert "['jobwatch-monitor-read-later', 'jobwatch-monitor-render-later']" in notebook.output(
        AFTER_RERUN
    ), notebook.output(AFTER_RERUN)
    expect(monitor.locator(".jobwatch-log-line", has_text="after the re-run")).to_have_count(1)
    expect(monitor.locator(".jobwatch-percent")).to_have_text("50.0%")

    # close(): the last view stays, marked not live, and follows no more.
    notebook.run_and_wait(CLOSE)
    expect(monitor.locator(".jobwatch-connection")).to_have_text("● not live (closed)")
    view = view_of(notebook, MONITOR)
    assert view["percent"] == "50.0%" and view["operation"] == "epoch 5/10", view
    assert "after close" not in view["rows"]
    assert_no_charts(view)
    screenshot(notebook, "monitor-closed", monitor)

    # jobwatch.track in a foreground cell: the monitor in that cell moves while it runs.
    notebook.run(TRACK)
    tracked = notebook.cell(TRACK).locator(".jobwatch-monitor")
    tracked.wait_for(state="visible", timeout=20_000)
    percents: list[float] = []
    pictured = False
    while notebook.running(TRACK):
        percent = view_of(notebook, TRACK)["percent"] or ""
        if re.fullmatch(r"[\d.]+%", percent) and notebook.running(TRACK):
            percents.append(float(percent[:-1]))
            if not pictured and 30 <= percents[-1] <= 80:
                screenshot(notebook, "track", notebook.cell(TRACK))
                pictured = True
        time.sleep(0.2)
    notebook.wait_done(TRACK)
    moving = sorted(set(p for p in percents if 0 < p < 100))
    assert len(moving) >= 3, f"the monitor hardly moved while the loop ran: {percents}"
    assert percents == sorted(percents), percents
    assert pictured
    expect(tracked.locator(".jobwatch-status")).to_have_text("completed", timeout=10_000)
    view = view_of(notebook, TRACK)
    assert view["percent"] == "100.0%"
    assert view["connection"] == "● not live (the job ended)"
    assert view["final"] == "✔ completed"
    assert view["rows"] == [f"step {i}: loss {1 / (i + 1):.3f}" for i in range(24)]
    # track()'s Reporter samples the machine: its CPU, memory, disk and network charts
    # show, and no GPU chart (no GPU is visible to this kernel)
    assert view["gpuCharts"] == 0 and view["gpu"] == "no GPU metrics reported", view
    assert view["systemCharts"] == 3, view
    expect(notebook.cell(TRACK).locator(".jobwatch-monitor")).to_have_count(1)

    # The kernel dies under a live monitor: the page says so instead of a stale "live".
    notebook.run_and_wait(ORPHAN)
    orphan = notebook.cell(ORPHAN).locator(".jobwatch-monitor")
    expect(orphan.locator(".jobwatch-connection")).to_have_text("● live", timeout=10_000)
    notebook.run(DIE)
    expect(orphan.locator(".jobwatch-connection")).to_have_text(
        re.compile(r"^● kernel not answering since \d\d:\d\d:\d\d: run the cell again"),
        timeout=15_000,
    )
    assert view_of(notebook, ORPHAN)["percent"] == "10.0%"  # the last view stays
    screenshot(notebook, "monitor-kernel-gone", orphan)

    assert_no_jobwatch_js_errors(notebook)
