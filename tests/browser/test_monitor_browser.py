"""JobMonitor in JupyterLab 4 and Notebook 7 in headless Chromium: what a person sees, live.

A notebook starts an embedded server, shows a monitor and feeds a job from a
thread; the test reads the page only (no cell is re-run to look at state) and
checks that the monitor keeps moving while another cell is busy, as it must:
its updates go out from background threads, not from the cell that made it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser.conftest import Notebook, assert_no_jobwatch_js_errors, screenshot

pytestmark = pytest.mark.browser

GPUS = """[
    {"index": 0, "gpuUtilization": 50 + i, "gpuMemoryUsed": 1000 + 10 * i,
     "gpuMemoryTotal": 8000, "gpuTemperature": 60 + i / 2, "powerUsage": 200 + i},
    {"index": 1, "gpuUtilization": 40 + i, "gpuMemoryUsed": 900,
     "gpuMemoryTotal": 8000, "gpuTemperature": 55, "powerUsage": 180},
]"""

LIVE_CELLS = [
    # 0: a server in the kernel, and a job
    "import threading, time\n"
    "import jobwatch\n"
    "server = jobwatch.serve()\n"
    "client = jobwatch.Client(server.url)\n"
    'client.create_job(job_id="browser", name="browser test", price_per_hour=3.6)',
    # 1: the monitor
    'monitor = jobwatch.JobMonitor("browser", url=server.url)\nmonitor',
    # 2: a worker in a thread: 40 updates, 4 a second, every tenth log line a warning
    "def feed():\n"
    "    for i in range(1, 41):\n"
    '        client.report_progress("browser", "w", i * 2.5, f"epoch {i}/40",\n'
    f'            metrics={{"gpus": {GPUS}}},\n'
    '            logs=[{"level": "warning" if i % 10 == 0 else "info",\n'
    '                   "message": f"epoch {i} done"}])\n'
    "        time.sleep(0.25)\n"
    "\n"
    "feeder = threading.Thread(target=feed, daemon=True)\n"
    "feeder.start()",
    # 3: the kernel is busy; the monitor must keep moving
    "time.sleep(6)",
    # 4: the worker finishes the job
    'feeder.join(timeout=30)\nclient.complete_job("browser", "w", result={"accuracy": 0.97})',
]
BUSY_CELL = 3

READ_MONITOR = """(busyCell) => {
    const text = (selector) => {
        const node = document.querySelector(selector);
        return node ? node.innerText.trim() : null;
    };
    const bar = document.querySelector(".jobwatch-progress .progress-bar");
    const cells = document.querySelectorAll(".jp-Notebook .jp-Cell");
    const prompt = cells[busyCell] && cells[busyCell].querySelector(".jp-InputPrompt");
    return {
        at: performance.now() / 1000,
        busyPrompt: prompt ? prompt.innerText.trim() : null,
        percent: text(".jobwatch-percent"),
        bar: bar ? parseFloat(bar.style.width) : null,
        operation: text(".jobwatch-operation"),
        eta: text(".jobwatch-eta"),
        cost: text(".jobwatch-cost"),
        status: text(".jobwatch-status"),
        logRows: document.querySelectorAll(".jobwatch-logview .jobwatch-log-line").length,
    };
}"""

READ_CHART = """(name) => {
    const figure = document.querySelector(`.jobwatch-chart-${name}`);
    if (!figure) return null;
    // A mark's lines are in g.curve; the legend's samples are path.line too.
    return Array.from(figure.querySelectorAll("g.curve > path.line")).map((path) => ({
        d: path.getAttribute("d") || "",
        dashed: (getComputedStyle(path).strokeDasharray || "none") !== "none",
    }));
}"""


def percent_of(sample: dict[str, Any]) -> float:
    match = re.fullmatch(r"([\d.]+)%", sample["percent"] or "")
    assert match, f"percent text {sample['percent']!r}"
    return float(match.group(1))


def drawn_lines(notebook: Notebook, chart: str) -> list[dict[str, Any]]:
    """The chart's SVG line paths (legend samples left out) that draw at least one segment."""
    paths = notebook.page.evaluate(READ_CHART, chart)
    assert paths is not None, f".jobwatch-chart-{chart} is not on the page"
    return [path for path in paths if re.search(r"[MmLl][^MmLl]*[Ll]", path["d"])]


def test_monitor_stays_live_while_another_cell_runs(open_notebook: Any) -> None:
    notebook: Notebook = open_notebook("monitor_live.ipynb", LIVE_CELLS)
    page = notebook.page

    notebook.run(0)
    notebook.wait_done(0, timeout_ms=45_000)
    notebook.run(1)
    notebook.wait_done(1)
    page.locator(".jobwatch-monitor").wait_for(state="visible")
    page.locator(".jobwatch-logview").wait_for(state="attached")
    assert page.locator(".jobwatch-percent").inner_text().strip() == "0.0%"
    # No GPU sample yet: no charts, one line instead.
    assert page.locator(".jobwatch-chart-util").count() == 0
    assert page.locator(".jobwatch-gpu").inner_text().strip() == "no GPU metrics reported"

    notebook.run(2)
    notebook.wait_done(2)
    notebook.run(BUSY_CELL)
    page.locator(".jobwatch-log-line").first.wait_for(state="attached", timeout=10_000)
    page.locator(".jobwatch-chart-util svg").first.wait_for(state="attached", timeout=10_000)

    # Sample the page while cell 3 sleeps (about 4 s of its 6), then take the
    # README's picture mid-run.
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    while time.monotonic() - started < 4.0:
        sample = page.evaluate(READ_MONITOR, BUSY_CELL)
        if sample["busyPrompt"] != "[*]:":
            break
        samples.append(sample)
        time.sleep(0.4)
    mid_util = drawn_lines(notebook, "util")
    screenshot(notebook, "monitor")

    busy_for = samples[-1]["at"] - samples[0]["at"] if samples else 0.0
    assert len(samples) >= 5 and busy_for >= 2.0, (
        f"only {len(samples)} samples over {busy_for:.1f} s while the sleep cell ran"
    )
    percents = [percent_of(sample) for sample in samples]
    assert percents == sorted(percents), percents
    assert percents[-1] >= percents[0] + 10, f"progress hardly moved while busy: {percents}"
    bars = [sample["bar"] for sample in samples]
    assert bars == sorted(bars) and bars[-1] > bars[0], bars
    rows = [sample["logRows"] for sample in samples]
    assert rows == sorted(rows) and rows[-1] >= rows[0] + 4, f"log rows while busy: {rows}"
    operations = [sample["operation"] for sample in samples]
    assert all(re.fullmatch(r"epoch \d+/40", op) for op in operations), operations
    assert len(set(operations)) >= 4, operations
    # Estimates need two updates: the first sample may still show a dash.
    shapes = {
        "eta": r"time remaining \d+(s|m \d+s)",
        "cost": r"cost [\d.,]+ QUBIC of est\. [\d.,]+ QUBIC",
    }
    for key, shape in shapes.items():
        texts = [sample[key] for sample in samples]
        assert all(re.fullmatch(shape, text or "") for text in texts[1:]), texts
        assert len(set(texts[1:])) >= 2, f"{key} never changed: {texts}"
    assert all(sample["status"] == "running" for sample in samples)

    # Two GPUs: two solid utilization lines (and two dashed temperature lines).
    solid = [line for line in mid_util if not line["dashed"]]
    assert len(solid) == 2, mid_util
    for chart in ("memory", "power"):
        assert len(drawn_lines(notebook, chart)) >= 2, chart

    notebook.wait_done(BUSY_CELL, timeout_ms=15_000)
    notebook.run(4)
    notebook.wait_done(4, timeout_ms=45_000)
    final = page.locator(".jobwatch-final")
    final.filter(has_text="completed").wait_for(timeout=10_000)
    page.locator(".jobwatch-log-line").nth(39).wait_for(state="attached", timeout=10_000)
    page.wait_for_timeout(500)  # one more refresh (0.25 s) for the last chart points

    assert "accuracy" in final.inner_text()
    end = page.evaluate(READ_MONITOR, BUSY_CELL)
    assert end["status"] == "completed"
    assert percent_of(end) == 100.0
    assert end["logRows"] == 40
    warnings = page.locator('.jobwatch-log-line[data-level="warning"]')
    assert warnings.count() == 4
    assert [
        text.strip() for text in warnings.locator(".jobwatch-log-message").all_inner_texts()
    ] == [f"epoch {i} done" for i in (10, 20, 30, 40)]
    assert page.locator('.jobwatch-log-line[data-level="info"]').count() == 36
    assert len([line for line in drawn_lines(notebook, "util") if not line["dashed"]]) == 2
    screenshot(notebook, "monitor-final")

    assert_no_jobwatch_js_errors(notebook)


FILTER_CELLS = [
    # A GPU sample with each update: the time-range control comes with the charts.
    "import jobwatch\n"
    "server = jobwatch.serve()\n"
    "client = jobwatch.Client(server.url)\n"
    'client.create_job(job_id="filter", name="filter test")\n'
    "for i in range(1, 13):\n"
    '    level = "warning" if i % 4 == 0 else "error" if i == 6 else "info"\n'
    '    client.report_progress("filter", "w", i * 5, f"step {i}",\n'
    f'                           metrics={{"gpus": {GPUS}}},\n'
    '                           logs=[{"level": level, "message": f"line {i}"}])',
    'monitor = jobwatch.JobMonitor("filter", url=server.url)\nmonitor',
]


def test_log_filter_and_time_range_controls(open_notebook: Any) -> None:
    notebook: Notebook = open_notebook("monitor_filter.ipynb", FILTER_CELLS)
    page = notebook.page
    notebook.run(0)
    notebook.wait_done(0, timeout_ms=45_000)
    notebook.run(1)
    notebook.wait_done(1)
    rows = page.locator(".jobwatch-log-line")
    rows.nth(11).wait_for(state="attached", timeout=10_000)
    assert rows.count() == 12
    assert page.locator(".jobwatch-log-line:visible").count() == 12

    page.locator(".jobwatch-log-filter").select_option("warning")
    visible = page.locator(".jobwatch-log-line:visible")
    page.wait_for_function(
        "() => document.querySelectorAll('.jobwatch-log-line[data-level=info]')[0]"
        ".offsetParent === null"
    )
    assert visible.count() == 3
    assert {row.get_attribute("data-level") for row in visible.all()} == {"warning"}
    assert [
        text.strip() for text in visible.locator(".jobwatch-log-message").all_inner_texts()
    ] == [
        "line 4",
        "line 8",
        "line 12",
    ]
    page.locator(".jobwatch-log-filter").select_option("all")
    page.wait_for_function(
        "() => document.querySelectorAll('.jobwatch-log-line[data-level=info]')[0]"
        ".offsetParent !== null"
    )
    assert page.locator(".jobwatch-log-line:visible").count() == 12

    buttons = page.locator(".jobwatch-range button")
    buttons.nth(3).wait_for(timeout=10_000)  # the range joins with the charts, after the header
    assert [text.strip() for text in buttons.all_inner_texts()] == ["1 min", "5 min", "1 h", "all"]
    assert "mod-active" in (buttons.nth(1).get_attribute("class") or "")
    buttons.nth(3).click()
    page.wait_for_function(
        "() => document.querySelectorAll('.jobwatch-range button')[3]"
        ".classList.contains('mod-active')"
    )

    assert_no_jobwatch_js_errors(notebook)


SYSTEM_CELLS = [
    # A Reporter on this machine (no NVIDIA GPU): its system metrics are all it samples.
    "import time\n"
    "import jobwatch\n"
    "server = jobwatch.serve()\n"
    'report = jobwatch.Reporter("sys", url=server.url, name="no gpu", interval=0.2)\n'
    "for i in range(10):\n"
    '    report.update(i, f"step {i}")\n'
    "    time.sleep(0.2)",
    'monitor = jobwatch.JobMonitor("sys", url=server.url)\nmonitor',
    "report.close()",
]


@pytest.mark.slow
def test_a_job_without_a_gpu_draws_its_system_charts(open_notebook: Any) -> None:
    notebook: Notebook = open_notebook("monitor_system.ipynb", SYSTEM_CELLS)
    page = notebook.page
    notebook.run(0)
    notebook.wait_done(0, timeout_ms=45_000)
    notebook.run(1)
    notebook.wait_done(1)
    page.locator(".jobwatch-chart-system-cpu svg").first.wait_for(timeout=15_000)
    page.wait_for_function(  # the history's points drawn, not just the figure
        "() => document.querySelectorAll('.jobwatch-chart-system-io g.curve > path.line').length >= 4"
    )
    assert page.locator(".jobwatch-gpu").inner_text().strip() == "no GPU metrics reported"
    assert page.locator(".jobwatch-monitor .jobwatch-system").inner_text().startswith("CPU ")
    assert page.locator(".jobwatch-chart-util").count() == 0
    assert page.locator(".jobwatch-chart-kind").count() == 0  # nothing to pick from
    assert len(drawn_lines(notebook, "system-cpu")) == 1
    memory = drawn_lines(notebook, "system-memory")
    assert sorted(line["dashed"] for line in memory) == [False, False, True], memory
    assert len(drawn_lines(notebook, "system-io")) == 4
    screenshot(notebook, "monitor-system")
    notebook.run(2)
    notebook.wait_done(2, timeout_ms=30_000)
    assert_no_jobwatch_js_errors(notebook)
