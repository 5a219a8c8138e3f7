"""From ``Reporter.log()`` / ``update()`` in a worker to the change drawn in JupyterLab's DOM.

JupyterLab 4 runs in a subprocess (the browser tests' set-up,
:mod:`tests.browser.conftest`), headless Chromium opens a notebook whose cell
shows a ``JobMonitor`` of the job, and a training loop in this process
(``update()`` every 10 ms, the Reporter's default 1 s interval, no GPU) logs a
line at random moments (0.2-0.6 s apart) whose text holds its ``time.time()``,
and sets its current operation to that time too. In the page a
``MutationObserver`` on the cell's output reads each new log line and each
new operation text and, at the next animation frame (the change drawn), takes
``Date.now()`` less that time: worker, browser and kernel share one clock.
Server: ``jobwatch serve`` in a subprocess. Default settings everywhere.

``python -m benchmarks.dom_latency`` prints p50/p99 for the code on
``PYTHONPATH``; run it at an older commit (checked out elsewhere, with this
file copied in) for a before figure.

A line goes as soon as the sender is idle (at most ``MIN_GAP`` after its last
request), so its latency is what the pipeline adds. ``update()`` goes once per
reporter ``interval`` (1 s by default, on purpose: one request a second per
worker), so its figure includes up to that wait.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.report import Row, percentile

LINES = 60
"""Lines timed per run (about 25 s of logging)."""
GOAL_MS = 300.0
"""p99 from ``Reporter.log()`` to the line drawn (issue 31)."""

OBSERVE = """(index) => {
    const cell = document.querySelectorAll(".jp-Notebook .jp-Cell")[index];
    window.__jobwatchLatency = {log: [], op: []};
    const seenOps = new Set();
    const record = (kind, stamp) => {
        requestAnimationFrame(() => window.__jobwatchLatency[kind].push(Date.now() - stamp * 1000));
    };
    const observer = new MutationObserver((mutations) => {
        for (const mutation of mutations) {
            for (const node of mutation.addedNodes) {
                if (!(node instanceof Element)) continue;
                const messages = node.matches(".jobwatch-log-message")
                    ? [node] : node.querySelectorAll(".jobwatch-log-message");
                for (const message of messages) {
                    const match = /^lat (\\d+\\.\\d+)$/.exec(message.textContent);
                    if (match) record("log", parseFloat(match[1]));
                }
            }
        }
        const op = cell.querySelector(".jobwatch-operation");
        const match = op && /^op (\\d+\\.\\d+)$/.exec(op.textContent);
        if (match && !seenOps.has(match[1])) {
            seenOps.add(match[1]);
            record("op", parseFloat(match[1]));
        }
    });
    observer.observe(cell, {subtree: true, childList: true, characterData: true});
}"""


@contextlib.contextmanager
def _lab() -> Iterator[Any]:
    from tests.browser import conftest

    with tempfile.TemporaryDirectory() as tmp, conftest.running_jupyter("lab", Path(tmp)) as lab:
        yield lab


def _log_loudly(reporter: Any, lines: int) -> None:
    """The training loop: ``update()`` every 10 ms, a timed line every 0.2-0.6 s."""
    rng = random.Random(7)
    step = 0
    for _ in range(lines):
        due = time.monotonic() + rng.uniform(0.2, 0.6)
        while time.monotonic() < due:
            step += 1
            reporter.update(min(99.0, step / 1000), f"op {time.time():.3f}")
            time.sleep(0.01)
        reporter.log(f"lat {time.time():.3f}")


def measure(url: str, lines: int = LINES) -> tuple[list[float], list[float]]:
    """(log latencies, operation latencies) in ms, worker call to the change drawn."""
    from playwright.sync_api import sync_playwright

    from jobwatch import Reporter
    from tests.browser import conftest

    job = f"dom-{random.randrange(16**6):06x}"
    reporter = Reporter(job, url=url, gpu=False)
    reporter.update(0.0, "start")
    if not reporter.flush(timeout=10):
        raise RuntimeError("the job was not created")
    executable = conftest.chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium")
    cells = ["import jobwatch", f"jobwatch.JobMonitor({job!r}, url={url!r})"]
    with _lab() as jupyter, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=conftest.CHROMIUM_ARGS, headless=True
        )
        try:
            jupyter.write_notebook("latency.ipynb", cells)
            context = browser.new_context(viewport=conftest.VIEWPORT, device_scale_factor=1)
            context.set_default_timeout(conftest.PAGE_TIMEOUT_MS)
            notebook = conftest.Notebook(context.new_page(), jupyter, "latency.ipynb")
            notebook.open()
            notebook.run_and_wait(0, conftest.KERNEL_START_TIMEOUT_MS)
            notebook.run_and_wait(1)
            notebook.page.wait_for_selector(".jobwatch-monitor .jobwatch-logview")
            time.sleep(2.0)  # the monitor is live: its first renders are done
            notebook.page.evaluate(OBSERVE, 1)
            _log_loudly(reporter, lines)
            time.sleep(2.0)  # the last line is drawn
            got: dict[str, list[float]] = notebook.page.evaluate("() => window.__jobwatchLatency")
            jupyter.shut_down_kernels()
        finally:
            browser.close()
            reporter.close(timeout=10)
    return got["log"], got["op"]


def run(quick: bool = False) -> list[Row]:
    """Rows: a log line and an update, worker call to the DOM, in JupyterLab."""
    from jobwatch.server.deploy.process import ServerProcess, serve_command

    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            ServerProcess(serve_command(Path(tmp) / "jobs.db")) as server,
        ):
            logs, ops = measure(server.url, 20 if quick else LINES)
    except Exception as exc:  # no Chromium or JupyterLab here: say so in the table
        return [Row("latency", "Reporter.log() to the DOM", "not run", None, "", str(exc))]

    def figure(values: list[float]) -> str:
        return (
            f"p50 {percentile(values, 50):.0f} ms, p99 {percentile(values, 99):.0f} ms, "
            f"max {max(values, default=float('nan')):.0f} ms ({len(values)} changes)"
        )

    return [
        Row(
            "latency",
            "Reporter.log() to the line drawn in JupyterLab, default settings",
            figure(logs),
            None,
            f"p99 <= {GOAL_MS:.0f} ms",
            "JobMonitor cell, headless Chromium; jobwatch serve in a subprocess",
        ),
        Row(
            "latency",
            "Reporter.update() to the operation drawn in JupyterLab, default settings",
            figure(ops),
            None,
            "",
            "includes the Reporter's 1 s interval (one request a second per worker)",
        ),
    ]


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(f"{row.what}: {row.figure} {row.note}")
