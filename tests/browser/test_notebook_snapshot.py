"""The monitor outlives its kernel: a saved notebook shows the run's snapshot, in
JupyterLab 4 and Notebook 7, in nbconvert's HTML, and readably in the dark theme.

One notebook per front-end: ``jobwatch.track`` runs a short loop; while the
widget is on the page its static snapshot is hidden. The notebook is saved,
its kernel shut down, and the notebook opened again in a new page without
running anything: the snapshot shows the job's status, cost and last log
line, and so does ``jupyter nbconvert --to html`` of the saved file. In
JupyterLab's dark theme the main text of the widget and of the snapshot keeps
WCAG AA contrast (4.5:1) against the background it is drawn on, read from the
rendered colours. Pictures go to ``artifacts/`` (docs/images/ holds copies).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.browser.conftest import (
    PAGE_TIMEOUT_MS,
    VIEWPORT,
    Notebook,
    assert_no_jobwatch_js_errors,
    screenshot,
)
from tests.browser.contrast import AA_NORMAL_TEXT, rendered_contrast

pytestmark = pytest.mark.browser

NAME = "saved.ipynb"
CELLS = [
    "import os, time\n"
    'os.environ["CUDA_VISIBLE_DEVICES"] = ""\n'
    "import jobwatch\n"
    "server = jobwatch.serve()",
    'steps = jobwatch.track(range(6), name="saved run", price_per_hour=36.0)\n'
    "for step in steps:\n"
    "    time.sleep(0.2)\n"
    '    steps.log(f"step {step} done <ok>")',
]
RUN = 1
LAST_LINE = "step 5 done <ok>"
DARK = "JupyterLab Dark"


def set_theme(notebook: Notebook, theme: str) -> None:
    notebook.page.evaluate(
        "(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme
    )
    notebook.page.wait_for_function(
        "(theme) => document.body.dataset.jpThemeName === theme", arg=theme
    )


def assert_readable(locator: Any, what: str) -> None:
    ratio, colours = rendered_contrast(locator)
    assert ratio >= AA_NORMAL_TEXT, f"{what}: contrast {ratio:.2f}:1 ({colours})"


def test_a_saved_notebook_shows_the_snapshot_without_its_kernel(
    open_notebook: Any, browser: Any
) -> None:
    from playwright.sync_api import expect  # installed: the browser fixture checked

    notebook: Notebook = open_notebook(NAME, CELLS)
    notebook.run_and_wait(0, timeout_ms=45_000)
    notebook.run_and_wait(RUN, timeout_ms=60_000)
    cell = notebook.cell(RUN)
    monitor = cell.locator(".jobwatch-monitor")
    expect(monitor.locator(".jobwatch-status")).to_have_text("completed", timeout=10_000)
    # Live: the widget shows, its snapshot is in the page but hidden.
    expect(cell.locator(".jobwatch-snapshot")).to_have_count(1)
    expect(cell.locator(".jobwatch-snapshot")).to_be_hidden()
    expect(cell.locator(".jobwatch-snapshot")).to_contain_text("completed")

    set_theme(notebook, DARK)
    assert_readable(monitor.locator(".jobwatch-operation"), "the widget's operation, dark")
    assert_readable(monitor.locator(".jobwatch-elapsed"), "the widget's times, dark")
    assert_readable(
        monitor.locator(".jobwatch-log-line .jobwatch-log-message").last, "a log line, dark"
    )
    screenshot(notebook, "monitor-dark", monitor)
    set_theme(notebook, "JupyterLab Light")

    notebook.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    saved = notebook.jupyter.root / NAME
    notebook.page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"
    )
    assert_no_jobwatch_js_errors(notebook)
    notebook.jupyter.shut_down_kernels()

    # Opened again without running a cell: the snapshot is what shows.
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        again = Notebook(context.new_page(), notebook.jupyter, NAME)
        again.open()
        snapshot = again.cell(RUN).locator(".jobwatch-snapshot")
        expect(snapshot).to_be_visible(timeout=20_000)
        expect(snapshot.locator(".jobwatch-snapshot-status")).to_have_text("completed")
        text = snapshot.inner_text()
        assert "saved run" in text and "100.0%" in text, text
        assert "QUBIC" in text and LAST_LINE in text, text
        assert "✔ completed" in text and "not live (the job ended)" in text, text
        screenshot(again, "snapshot-reopened", snapshot)
        assert_readable(snapshot.locator(".jobwatch-snapshot-logs"), "the snapshot's log lines")
        set_theme(again, DARK)
        assert_readable(snapshot, "the snapshot's text, dark")
        assert_readable(snapshot.locator(".jobwatch-snapshot-logs"), "the snapshot's log, dark")
        assert_readable(snapshot.locator(".jobwatch-snapshot-status"), "the status badge, dark")
        screenshot(again, "snapshot-dark", snapshot)
    finally:
        context.close()

    # nbconvert's HTML of the saved notebook has the same figures (no widget state saved).
    html = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--stdout", str(saved)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert 'class="jobwatch-snapshot' in html
    assert ">completed<" in html and "QUBIC" in html
    assert "step 5 done &lt;ok&gt;" in html
    outputs = json.loads(saved.read_text())["cells"][RUN]["outputs"]
    assert sum("text/html" in out.get("data", {}) for out in outputs) == 1, outputs
