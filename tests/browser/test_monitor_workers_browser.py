"""A distributed job's JobMonitor in JupyterLab 4 and Notebook 7, in headless Chromium:
every node's GPUs (64 nodes of 8 GPUs), the ranks table, one rank's log lines, and the
job's own strings shown as text. A picture goes to ``artifacts/monitor-workers.png`` (docs/images/ holds a copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Notebook, assert_no_jobwatch_js_errors

pytestmark = pytest.mark.browser

IMAGES = Path(__file__).resolve().parents[2] / "artifacts"  # docs/images/ copies from here
NODES, PER_NODE = 64, 8
WORLD = NODES * PER_NODE
EVIL = '<img src=x onerror="window.__pwned=1">'

CELLS = [
    # 0: a server in the kernel, and 512 ranks reporting (each node's GPUs from its local
    # rank 0; node 5's name is markup); ranks 0 and 9 once more
    "import jobwatch\n"
    "server = jobwatch.serve()\n"
    "client = jobwatch.Client(server.url)\n"
    "client.create_job(job_id='llm', name='llm pretraining')\n"
    f"NODES, PER_NODE, EVIL = {NODES}, {PER_NODE}, {EVIL!r}\n"
    "def node_name(n):\n"
    "    return EVIL if n == 5 else f'gpu-node-{n:02d}'\n"
    "def report(rank, step):\n"
    "    node, local = divmod(rank, PER_NODE)\n"
    "    gpus = [{'index': g, 'uuid': f'GPU-{node}-{g}', 'name': 'H100',\n"
    "             'gpuUtilization': float((node * 7 + g * 13 + step) % 101),\n"
    "             'gpuMemoryUsed': 60000.0, 'gpuMemoryTotal': 81559.0, 'gpuTemperature': 64.0,\n"
    "             'powerUsage': 550.0} for g in range(PER_NODE)]\n"
    "    client.report_progress('llm', f'{node_name(node)}/{rank}', 10 + 5 * step,\n"
    "        f'epoch 1, step {step}', metrics={'gpus': gpus} if local == 0 else None,\n"
    "        logs=[{'level': 'info', 'message': f'rank {rank} step {step}'}],\n"
    "        rank=rank, world_size=NODES * PER_NODE, local_rank=local, node=node_name(node))\n"
    "for rank in range(NODES * PER_NODE):\n"
    "    report(rank, 0)\n"
    "report(0, 1)\n"
    "report(9, 1)",
    # 1: the monitor
    "monitor = jobwatch.JobMonitor('llm', url=server.url)\nmonitor",
    # 2: rank 0 and rank 9 log once more
    "report(0, 2)\nreport(9, 2)",
]


def test_a_distributed_jobs_monitor_shows_every_node_and_rank(open_notebook: Any) -> None:
    notebook: Notebook = open_notebook("monitor_workers.ipynb", CELLS)
    page = notebook.page
    notebook.run_and_wait(0, timeout_ms=120_000)
    notebook.run_and_wait(1)
    panel = page.locator(".jobwatch-monitor .jobwatch-workers")
    expect(panel).to_be_visible(timeout=20_000)
    expect(panel.locator(".jobwatch-worker")).to_have_count(WORLD, timeout=20_000)
    expect(panel.locator(".jobwatch-heat-node")).to_have_count(NODES, timeout=20_000)
    expect(panel.locator(".jobwatch-heat-cell")).to_have_count(WORLD)
    expect(panel.locator(".jobwatch-workers-summary")).to_have_text(
        f"{WORLD} of {WORLD} ranks on {NODES} nodes"
    )
    # the job's strings are text
    expect(panel.locator(".jobwatch-heat-label").first).to_have_text(EVIL)  # "<" sorts first
    expect(panel.locator(".jobwatch-worker").nth(5 * PER_NODE).locator("td").first).to_have_text(
        EVIL
    )
    assert page.locator(".jobwatch-monitor img").count() == 0
    # the charts: 512 GPUs are one line; the heat strip shows each
    page.locator(".jobwatch-chart-util svg").first.wait_for(timeout=20_000)

    # the log view starts on rank 0's lines, live
    logs = page.locator(".jobwatch-monitor .jobwatch-logview")
    rank = logs.locator(".jobwatch-log-rank")
    expect(rank).to_have_value("0")
    where = logs.locator(".jobwatch-log-line .jobwatch-log-where")
    expect(where).to_have_text(["gpu-node-00/0", "gpu-node-00/0"])
    notebook.run_and_wait(2)
    expect(logs.locator(".jobwatch-log-message")).to_have_text(
        ["rank 0 step 0", "rank 0 step 1", "rank 0 step 2"]
    )
    # another rank, typed; then one node
    rank.fill("9")
    rank.press("Enter")
    expect(logs.locator(".jobwatch-log-message")).to_have_text(
        ["rank 9 step 0", "rank 9 step 1", "rank 9 step 2"]
    )
    expect(logs.locator(".jobwatch-log-count")).to_have_text("showing 3 of 3 of rank 9")
    rank.fill("600")
    rank.press("Enter")
    expect(rank).to_have_attribute("aria-invalid", "true")
    rank.fill("")
    rank.press("Enter")
    logs.locator(".jobwatch-log-node").select_option(EVIL)
    expect(where).to_have_count(PER_NODE)
    expect(where.first).to_have_text(f"{EVIL}/40")
    assert page.evaluate("() => window.__pwned") is None

    logs.locator(".jobwatch-log-node").select_option("")
    rank.fill("0")
    rank.press("Enter")
    expect(logs.locator(".jobwatch-log-message")).to_have_count(3)
    if notebook.jupyter.frontend == "lab":
        IMAGES.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1400, "height": 2400})  # the whole monitor in view
        page.mouse.move(0, 0)
        monitor = page.locator(".jobwatch-monitor")
        monitor.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        monitor.screenshot(path=str(IMAGES / "monitor-workers.png"), animations="disabled")
    assert_no_jobwatch_js_errors(notebook)
