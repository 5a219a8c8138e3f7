"""Time from running a ``JobMonitor`` cell to its progress bar drawn, in JupyterLab.

JupyterLab 4 runs in a subprocess (the browser tests' set-up:
:mod:`tests.browser.conftest`) and headless Chromium opens a notebook. The
page times each cell itself: ``performance.now()`` when Shift+Enter goes down
(the execute request leaves on that key), and again at the first animation
frame after the cell's output holds a progress bar drawn with a width (its
value). The job holds :data:`~benchmarks.kernel.HISTORY` samples of 8 GPUs,
all in the ``/monitor`` snapshot the monitor starts from. The baseline, in the
same page and kernel: a cell showing a plain ``ipywidgets.IntProgress``.

The first monitor cell of a kernel also pays for importing bqplot and
anywidget in the kernel and loading their JavaScript in the page ("cold");
the later ones do not ("warm"). The notebook's first cell imports jobwatch
and ipywidgets, as a user's first cell would.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.report import Row, percentile

GOAL_MS = 500.0
"""Most milliseconds from running a monitor cell to its progress bar drawn: a cell should answer within half a second."""

ARM = """(index) => {
    const cell = document.querySelectorAll(".jp-Notebook .jp-Cell")[index];
    window.__jobwatchDrawn = new Promise((resolve) => {
        let t0 = null;
        const onKey = (event) => {
            if (t0 === null && event.key === "Enter" && event.shiftKey) t0 = performance.now();
        };
        document.addEventListener("keydown", onKey, true);
        const check = () => {
            const bar = cell.querySelector(".jp-OutputArea .progress-bar");
            if (t0 === null || !bar || !(parseFloat(bar.style.width) > 0)) return;
            observer.disconnect();
            document.removeEventListener("keydown", onKey, true);
            requestAnimationFrame(() => resolve(performance.now() - t0));
        };
        const observer = new MutationObserver(check);
        observer.observe(cell, {subtree: true, childList: true, attributes: true});
    });
}"""


@contextlib.contextmanager
def _lab() -> Iterator[Any]:
    """A JupyterLab server as the browser tests start it (``tests.browser.conftest``)."""
    from tests.browser import conftest

    with tempfile.TemporaryDirectory() as tmp, conftest.running_jupyter("lab", Path(tmp)) as lab:
        yield lab


def _timed(notebook: Any, index: int) -> float:
    """Milliseconds from Shift+Enter in cell ``index`` to its progress bar drawn."""
    notebook.page.evaluate(ARM, index)
    notebook.cell(index).locator(".cm-content").click()
    notebook.page.keyboard.press("Shift+Enter")
    drawn: float = notebook.page.evaluate("() => window.__jobwatchDrawn")
    notebook.wait_done(index)
    return drawn


def draw_times(url: str, job_id: str, repeats: int) -> tuple[list[float], list[float]]:
    """(IntProgress times, JobMonitor times) in ms; the first of each is the cold one."""
    from playwright.sync_api import sync_playwright

    from tests.browser import conftest

    cells = ["import jobwatch, ipywidgets"]
    for _ in range(repeats):
        cells.append("ipywidgets.IntProgress(value=42, max=100)")
        cells.append(f"jobwatch.JobMonitor({job_id!r}, url={url!r})")
    plain: list[float] = []
    monitor: list[float] = []
    executable = conftest.chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium")
    with _lab() as jupyter, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=conftest.CHROMIUM_ARGS, headless=True
        )
        try:
            jupyter.write_notebook("draw.ipynb", cells)
            context = browser.new_context(viewport=conftest.VIEWPORT, device_scale_factor=1)
            context.set_default_timeout(conftest.PAGE_TIMEOUT_MS)
            notebook = conftest.Notebook(context.new_page(), jupyter, "draw.ipynb")
            notebook.open()
            notebook.run_and_wait(0, conftest.KERNEL_START_TIMEOUT_MS)
            for k in range(repeats):
                plain.append(_timed(notebook, 1 + 2 * k))
                monitor.append(_timed(notebook, 2 + 2 * k))
            jupyter.shut_down_kernels()
        finally:
            browser.close()
    return plain, monitor


def rows(url: str, job_id: str, quick: bool) -> list[Row]:
    """Rows: the plain bar (baseline) and the monitor's bar, cold and warm."""
    repeats = 2 if quick else 6
    try:
        plain, monitor = draw_times(url, job_id, repeats)
    except Exception as exc:  # no Chromium or JupyterLab here: say so in the table
        return [
            Row("kernel", "time to the progress bar in JupyterLab", "not run", None, "", str(exc))
        ]
    warm_plain, warm_monitor = percentile(plain[1:], 50), percentile(monitor[1:], 50)
    note = f"{repeats} runs each, alternating; warm = median of runs 2-{repeats}"
    return [
        Row(
            "kernel",
            "cell to a plain IntProgress drawn, warm (baseline)",
            f"{warm_plain:.0f} ms (cold {plain[0]:.0f} ms)",
            1.0,
            "",
            note,
        ),
        Row(
            "kernel",
            f"cell to the JobMonitor's progress bar drawn, warm ({len(monitor)} runs)",
            f"{warm_monitor:.0f} ms (max {max(monitor[1:]):.0f} ms)",
            warm_monitor / warm_plain,
            f"<= {GOAL_MS:.0f} ms",
            "2,000 samples x 8 GPUs of history in /monitor",
        ),
        Row(
            "kernel",
            "cell to the JobMonitor's progress bar drawn, cold (first in the kernel)",
            f"{monitor[0]:.0f} ms",
            monitor[0] / plain[0],
            f"<= {GOAL_MS:.0f} ms",
            "imports bqplot/anywidget, page loads their JS; ratio to the cold IntProgress",
        ),
    ]
