"""JobsTable in JupyterLab in headless Chromium: live rows, sort, filters, totals,
and a click that opens the job's monitor below the table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, Notebook

pytestmark = pytest.mark.browser

JOBS = 30
PROGRESS = {f"job-{i:02d}": (i * 37) % 100 for i in range(JOBS)}
"""Each job's progress (%), all different, so that the order by progress is known."""

CELLS = [
    # 0: a server in the kernel and a fleet of running jobs
    "import threading, time\n"
    "import jobwatch\n"
    "server = jobwatch.serve()\n"
    "client = jobwatch.Client(server.url)\n"
    f"progress = {PROGRESS!r}\n"
    "for job_id, p in progress.items():\n"
    '    client.create_job(job_id=job_id, name=f"sweep {job_id}", price_per_hour=3.6)\n'
    "    client.report_progress(job_id, 'w', p, metrics={'gpuUtilization': 80, 'gpuTemperature': 70,\n"
    "        'gpuMemoryUsed': 9000, 'gpuMemoryTotal': 24000, 'powerUsage': 300})\n"
    "client.ensure_job('job-05', worker_id='w', budget=0.0)  # spent from the start\n"
    "client.ensure_job('job-06', worker_id='w', budget=1e6)",
    # 1: the table
    "table = jobwatch.JobsTable(server.url)\ntable",
    # 2: a worker moves one job on and another one finishes, while the kernel sleeps
    "def feed():\n"
    "    for step in range(1, 11):\n"
    '        client.report_progress("job-03", "w", 11 + step * 0.5)\n'
    "        time.sleep(0.2)\n"
    '    client.complete_job("job-07", "w")\n'
    "\n"
    "threading.Thread(target=feed, daemon=True).start()\n"
    "time.sleep(3)",
]

READ_ROWS = """() => Array.from(document.querySelectorAll(".jobwatch-jobs-row")).map((tr) => ({
    id: tr.getAttribute("data-id"),
    status: tr.getAttribute("data-status"),
    percent: tr.querySelector(".jobwatch-jobs-percent").innerText.trim(),
    stalled: tr.querySelector(".jobwatch-jobs-stalled") !== null,
}))"""


def rows(notebook: Notebook) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = notebook.page.evaluate(READ_ROWS)
    return result


def wait_rows(notebook: Notebook, condition: str) -> None:
    """Wait until ``condition`` holds of ``rows`` (the rows as READ_ROWS reads them)."""
    notebook.page.wait_for_function(
        f"() => {{ const rows = ({READ_ROWS})(); return {condition}; }}"
    )


def test_the_table_is_live_sortable_filterable_and_opens_a_monitor(open_notebook: Any) -> None:
    notebook = open_notebook("jobs-table.ipynb", CELLS)
    page = notebook.page
    for index in (0, 1):
        notebook.run(index)
        notebook.wait_done(index, timeout_ms=60_000)
    wait_rows(notebook, f"rows.length === {JOBS}")
    assert {row["status"] for row in rows(notebook)} == {"running"}
    totals = page.locator(".jobwatch-jobs-totals").inner_text()
    assert f"{JOBS} jobs, {JOBS} running" in totals and "running " in totals and "today " in totals
    assert page.locator(".jobwatch-jobs-connection").inner_text() == "live"
    # a budget under the cost: the cost and the budget line in red; one far off: plain
    spent = page.locator('.jobwatch-jobs-row[data-id="job-05"] .jobwatch-jobs-col-costSoFar')
    assert spent.get_attribute("data-over") == "spent"
    assert spent.locator(".jobwatch-jobs-budget").inner_text().endswith("budget 0.00 QUBIC")
    colour = "e => getComputedStyle(e).color"
    assert spent.locator(".jobwatch-jobs-cost").evaluate(colour) == "rgb(185, 28, 28)"
    within = page.locator('.jobwatch-jobs-row[data-id="job-06"] .jobwatch-jobs-col-costSoFar')
    assert within.get_attribute("data-over") == "within"
    assert within.locator(".jobwatch-jobs-cost").evaluate(colour) != "rgb(185, 28, 28)"

    notebook.run(2)  # the kernel is busy for 3 s: the table must move anyway
    wait_rows(notebook, 'rows.some((r) => r.id === "job-03" && r.percent === "16.0%")')
    wait_rows(notebook, 'rows[rows.length - 1].id === "job-07"')  # finished: sorts last
    assert rows(notebook)[-1]["status"] == "completed"
    notebook.wait_done(2)

    page.locator('th[data-sort="progress"]').click()
    progress = {**PROGRESS, "job-03": 16, "job-07": 100}
    ascending = sorted(progress, key=lambda job_id: (progress[job_id], job_id))
    wait_rows(notebook, f'rows.map((r) => r.id).join() === "{",".join(ascending)}"')
    page.locator('th[data-sort="progress"]').click()
    wait_rows(notebook, f'rows[0].id === "{ascending[-1]}"')
    assert page.locator('th[data-sort="progress"]').get_attribute("aria-sort") == "descending"

    page.locator(".jobwatch-jobs-filter").select_option("completed")
    wait_rows(notebook, 'rows.length === 1 && rows[0].id === "job-07"')
    page.locator(".jobwatch-jobs-filter").select_option("all")
    page.locator(".jobwatch-jobs-search").fill("JOB-1")
    wait_rows(notebook, "rows.length === 10 && rows.every((r) => r.id.startsWith('job-1'))")
    page.locator(".jobwatch-jobs-search").fill("")
    wait_rows(notebook, f"rows.length === {JOBS}")

    page.locator('.jobwatch-jobs-row[data-id="job-12"]').click()
    monitor = page.locator(".jobwatch-percent")
    monitor.wait_for()
    assert monitor.inner_text().strip() == f"{PROGRESS['job-12']:.1f}%"
    assert "jobwatch-jobs-selected" in (
        page.locator('.jobwatch-jobs-row[data-id="job-12"]').get_attribute("class") or ""
    )
    # the charts join the monitor one render after its header
    page.locator(".jobwatch-chart-util svg").first.wait_for(state="visible", timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jobs-table.png"), full_page=True)
    page.locator('.jobwatch-jobs-row[data-id="job-12"]').click()  # again: closes it
    monitor.wait_for(state="detached")
    assert notebook.console.ours() == []
