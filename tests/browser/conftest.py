"""JupyterLab in a subprocess and headless Chromium, for the browser tests.

JupyterLab runs from this interpreter's environment with its own config,
data, runtime, settings and workspace folders under a temporary directory, so
nothing of the user's Jupyter setup is read or changed; its one kernel is a
kernelspec that starts this interpreter. Chromium is Debian's, driven by
Playwright's sync API (Playwright's own browser download is not needed).

Without Chromium, Playwright or JupyterLab the tests skip with the reason; with
``CI=true`` they fail instead, since nothing may be skipped silently in CI.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
"""Screenshots go here (git-ignored) for people to look at."""

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium; ``$JOBWATCH_TEST_CHROMIUM`` may name another."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # Without these Chromium stalls on a machine with no outside network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1100}
KERNEL = "jobwatch-test"
LAB_START_TIMEOUT = 60.0
"""Seconds JupyterLab may take to answer ``/api/status``."""
LAB_STOP_TIMEOUT = 15.0
"""Seconds JupyterLab may take to shut down its kernels after SIGTERM."""
PAGE_TIMEOUT_MS = 30_000
"""Default Playwright timeout for one action or wait (ms)."""
KERNEL_START_TIMEOUT_MS = 60_000
"""How long the first cell may wait for the kernel and its imports (ms)."""


def unavailable(reason: str) -> None:
    """Skip with ``reason`` on a laptop; fail with it when ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: browser tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """The Chromium executable to drive, or ``None`` if there is none."""
    wanted = os.environ.get("JOBWATCH_TEST_CHROMIUM", CHROMIUM)
    if Path(wanted).is_file() and os.access(wanted, os.X_OK):
        return wanted
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class JupyterLab:
    """A running JupyterLab server: where it is, and where its notebooks go."""

    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        """The notebook alone in a workspace of its own (a shared one would reopen others)."""
        return f"{self.url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        """Call a Jupyter server REST path (``/api/...``) and return its JSON, if any."""
        response = requests.request(
            method, self.url + path, headers={"Authorization": f"token {self.token}"}, timeout=10
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def shut_down_kernels(self) -> None:
        """End every notebook session and its kernel (with the kernel's threads and server)."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def write_notebook(self, name: str, cells: list[str]) -> None:
        """Write a notebook of code ``cells`` that opens with this server's test kernel."""
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {
            "name": KERNEL,
            "display_name": "jobwatch test (Python)",
            "language": "python",
        }
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(notebook, self.root / name)


def _prepare_home(tmp: Path) -> dict[str, str]:
    """Jupyter folders under ``tmp``, a kernelspec for this interpreter, and the env for them."""
    kernel_dir = tmp / "share" / "jupyter" / "kernels" / KERNEL
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "jobwatch test (Python)",
                "language": "python",
            }
        )
    )
    settings = {
        # All cells attached to the page: the monitor keeps its layout while
        # later cells are run, whatever is scrolled into view.
        "notebook-extension/tracker": {"windowingMode": "none"},
        # No "get Jupyter news?" toast over the page, no update check.
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for plugin, values in settings.items():
        path = tmp / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    (tmp / "notebooks").mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_PATH": str(tmp / "share" / "jupyter"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "PYTHONPATH": pythonpath,
    }


def _wait_until_up(process: subprocess.Popen[bytes], lab: JupyterLab) -> None:
    deadline = time.monotonic() + LAB_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("/api/status")
            return
        except requests.RequestException:
            time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer in {LAB_START_TIMEOUT:.0f} s:\n{lab.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    with_group = os.getpgid(process.pid) == process.pid
    try:
        if with_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        process.wait(LAB_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        if with_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab on a free loopback port, with a token and a fresh root folder."""
    try:
        import ipykernel  # noqa: F401
        import jupyterlab  # noqa: F401
    except ImportError as exc:
        unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("jupyter")
    env = _prepare_home(tmp)
    port = _free_port()
    lab = JupyterLab(
        url=f"http://127.0.0.1:{port}",
        token=secrets.token_hex(16),
        root=tmp / "notebooks",
        log=tmp / "jupyter-lab.log",
    )
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={lab.token}",
        f"--ServerApp.root_dir={lab.root}",
        "--ServerApp.terminals_enabled=False",
        # Nothing that reaches for the internet.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={tmp / 'settings'}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    with lab.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=lab.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(process, lab)
        yield lab
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Playwright ``Browser``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        unavailable(
            f"no Chromium at {CHROMIUM} or on PATH (apt-get install chromium, "
            "or set JOBWATCH_TEST_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True, timeout=PAGE_TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


OUR_JS = re.compile(r"jobwatch|logview|anywidget|widget|bqplot|blob:", re.I)
"""What marks a page error as the monitor's: its own ES module (anywidget loads it
from a blob: URL), or the widget libraries that draw the monitor's parts."""


@dataclass
class ConsoleLog:
    """What the page said on its console and what it threw."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ours(self) -> list[str]:
        """Errors from the monitor's JavaScript (its ES module or the widgets it is made of)."""
        return [text for text in self.errors if OUR_JS.search(text)]

    def save(self, path: Path) -> None:
        lines = [f"error: {text}" for text in self.errors]
        lines += [f"warning: {text}" for text in self.warnings]
        path.write_text("\n".join(lines) + "\n" if lines else "")


class Notebook:
    """One notebook open in JupyterLab in its own browser page.

    Cells are run as a person would: click into the cell's editor, press
    Shift+Enter. Each cell's prompt tells whether it is queued or running
    (``[*]:``) or done (``[n]:``).
    """

    def __init__(self, page: Any, lab: JupyterLab, name: str) -> None:
        self.page = page
        self.lab = lab
        self.name = name
        self.console = ConsoleLog()
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_console(self, message: Any) -> None:
        location = message.location or {}
        where = location.get("url", "")
        text = f"{message.text} ({where})" if where else message.text
        if message.type == "error":
            self.console.errors.append(text)
        elif message.type == "warning":
            self.console.warnings.append(text)

    def _on_page_error(self, error: Any) -> None:
        self.console.errors.append(f"uncaught: {error.message}\n{error.stack or ''}".strip())

    def open(self) -> None:
        self.page.goto(self.lab.notebook_url(self.name), wait_until="domcontentloaded")
        self.page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content")
        # Cells run before the kernel is connected are silently not run.
        self.page.wait_for_function(
            "() => { const widget = window.jupyterapp?.shell.currentWidget;"
            " const kernel = widget?.sessionContext?.session?.kernel;"
            " return kernel?.connectionStatus === 'connected' && kernel?.status === 'idle'; }",
            timeout=KERNEL_START_TIMEOUT_MS,
        )
        kernel = self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.name"
        )
        assert kernel == KERNEL, f"the notebook runs kernel {kernel!r}, not {KERNEL!r}"
        # A wider notebook gives the three charts room; the file browser is not needed.
        self.page.evaluate(
            "() => { const app = window.jupyterapp; if (app && !app.shell.leftCollapsed)"
            " app.shell.collapseLeft(); }"
        )

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def prompt(self, index: int) -> str:
        text: str = self.cell(index).locator(".jp-InputPrompt").inner_text()
        return text.strip()

    def run(self, index: int) -> None:
        """Run one cell with Shift+Enter."""
        self.cell(index).locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")

    def wait_done(self, index: int, timeout_ms: float = PAGE_TIMEOUT_MS) -> None:
        """Wait until cell ``index`` has run (its prompt holds a number); fail on an error."""
        prompt = self.cell(index).locator(".jp-InputPrompt")
        deadline = time.monotonic() + timeout_ms / 1000
        while not re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"cell {index} did not finish; prompt {prompt.inner_text()!r}\n"
                    f"console errors: {self.console.errors}\njupyter lab: {self.lab.log_tail()}"
                )
            time.sleep(0.1)
        output = self.cell(index).locator(".jp-OutputArea")
        text = output.inner_text() if output.count() else ""
        if "Traceback" in text:
            pytest.fail(f"cell {index} raised:\n{text[-3000:]}")

    def running(self, index: int) -> bool:
        return self.prompt(index) == "[*]:"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Lets open_notebook know whether the test failed (pytest's documented recipe).
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def open_notebook(
    request: pytest.FixtureRequest, browser: Any, jupyter_lab: JupyterLab
) -> Iterator[Any]:
    """``open_notebook(name, cells)``: write the notebook, open it in a fresh page.

    Afterwards each page's console goes to ``artifacts/NAME-console.txt`` and,
    if the test failed, a picture of the page to ``artifacts/NAME-failure.png``.
    """
    contexts: list[tuple[Any, Notebook]] = []

    def open_(name: str, cells: list[str]) -> Notebook:
        jupyter_lab.write_notebook(name, cells)
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        notebook = Notebook(context.new_page(), jupyter_lab, name)
        contexts.append((context, notebook))
        notebook.open()
        return notebook

    yield open_
    failed = request.node.stash.get(FAILED, True)
    ARTIFACTS.mkdir(exist_ok=True)
    for context, notebook in contexts:
        stem = Path(notebook.name).stem
        notebook.console.save(ARTIFACTS / f"{stem}-console.txt")
        if failed:
            notebook.page.screenshot(path=str(ARTIFACTS / f"{stem}-failure.png"))
        context.close()
    jupyter_lab.shut_down_kernels()
