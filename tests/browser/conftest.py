"""JupyterLab 4 or Notebook 7 in a subprocess and headless Chromium, for the browser tests.

Each test that uses a notebook runs once per front-end (``[lab]``, ``[notebook]``),
both served by one Jupyter server per test process: JupyterLab at ``/lab`` and
Notebook 7 at ``/notebooks`` (with both installed, either's server serves both
front-ends). The server runs from this interpreter's environment with its own config,
data, runtime, settings and workspace folders under a temporary directory, so
nothing of the user's Jupyter setup is read or changed; its one kernel is a
kernelspec that starts this interpreter. Chromium is Debian's, driven by
Playwright's sync API (Playwright's own browser download is not needed). Every
WebSocket frame the page receives from the kernel is kept, decoded, so a test
can weigh the widget messages the browser really got.

Without Chromium, Playwright, JupyterLab or Notebook the tests skip with the
reason; with ``CI=true`` they fail instead, since nothing may be skipped silently in CI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
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

from tests.conftest import free_port

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
SERVER_START_TIMEOUT = 60.0
"""Seconds the Jupyter server may take to answer ``/api/status``."""
SERVER_STOP_TIMEOUT = 15.0
"""Seconds the Jupyter server may take to shut down its kernels after SIGTERM."""
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


FRONTENDS = {"lab": "JupyterLab 4", "notebook": "Notebook 7"}
"""The front-ends every notebook test runs in: the module to run -> what it is."""


@dataclass
class Jupyter:
    """A running Jupyter server with one front-end: where it is, and where its notebooks go."""

    frontend: str
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        """The page that opens notebook ``name`` in this front-end."""
        if self.frontend == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        # The notebook alone in a workspace of its own (a shared one would reopen others).
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


def _wait_until_up(process: subprocess.Popen[bytes], jupyter: Jupyter) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter exited with {process.returncode}:\n{jupyter.log_tail()}")
        try:
            jupyter.api("/api/status")
            return
        except requests.RequestException:
            time.sleep(0.25)
    pytest.fail(f"jupyter did not answer in {SERVER_START_TIMEOUT:.0f} s:\n{jupyter.log_tail()}")


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
        process.wait(SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        if with_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(5)


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    """One Jupyter server for every notebook test of this process, serving both
    front-ends: started once (it takes seconds of CPU), not once per front-end and module."""
    try:
        import ipykernel  # noqa: F401
        import jupyterlab  # noqa: F401
        import notebook  # noqa: F401
    except ImportError as exc:
        unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')")
    with running_jupyter("lab", tmp_path_factory.mktemp("jupyter")) as jupyter:
        yield jupyter


@pytest.fixture(params=list(FRONTENDS))
def jupyter(request: pytest.FixtureRequest, jupyter_server: Jupyter) -> Jupyter:
    """JupyterLab (``lab``) or Notebook 7 (``notebook``) of :func:`jupyter_server`, on a
    free loopback port, with a token and a root folder."""
    return dataclasses.replace(jupyter_server, frontend=request.param)


@contextlib.contextmanager
def running_jupyter(frontend: str, tmp: Path) -> Iterator[Jupyter]:
    """JupyterLab (``"lab"``) or Notebook 7 (``"notebook"``) on a free loopback port,
    with a token, a home and a root folder under ``tmp``; stopped on leaving (the
    browser tests' fixture and ``benchmarks/kernel_browser.py`` start it so). The
    server serves the other front-end too, set up the same way: the returned
    :class:`Jupyter` opens pages of ``frontend``, a copy with the other
    (``dataclasses.replace``) pages of the other."""
    env = _prepare_home(tmp)
    port = free_port()
    jupyter = Jupyter(
        frontend=frontend,
        url=f"http://127.0.0.1:{port}",
        token=secrets.token_hex(16),
        root=tmp / "notebooks",
        log=tmp / "jupyter.log",
    )
    # Each front-end's own app holds its settings, workspaces and window.jupyterapp.
    module = "jupyterlab" if frontend == "lab" else "notebook"
    apps = ("LabApp", "JupyterNotebookApp")
    command = [
        sys.executable, "-m", module,
        "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={jupyter.token}",
        f"--ServerApp.root_dir={jupyter.root}",
        "--ServerApp.terminals_enabled=False",
        # Nothing that reaches for the internet.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(f"--{app}.user_settings_dir={tmp / 'settings'}" for app in apps),
        *(f"--{app}.workspaces_dir={tmp / 'workspaces'}" for app in apps),
        *(f"--{app}.expose_app_in_browser=True" for app in apps),
    ]  # fmt: skip
    with jupyter.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=jupyter.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(process, jupyter)
        yield jupyter
    finally:
        _stop(process)


@pytest.fixture(scope="session")
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


@dataclass
class Frame:
    """One WebSocket message the page received on a kernel's channels socket.

    ``size`` is its payload in bytes as the browser received it; ``msg`` the
    Jupyter message in it (``channel``, ``header``, ``parent_header``,
    ``metadata``, ``content``), or ``None`` where it did not decode as one.
    """

    size: int
    msg: dict[str, Any] | None

    @property
    def msg_type(self) -> str | None:
        return self.msg["header"].get("msg_type") if self.msg else None

    @property
    def comm_id(self) -> str | None:
        return self.msg["content"].get("comm_id") if self.msg else None


def decode_frame(payload: str | bytes) -> Frame:
    """A kernel WebSocket frame: JSON text (the legacy protocol) or the binary
    ``v1.kernel.websocket.jupyter.org`` protocol, decoded by jupyter_server's own code."""
    from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

    if isinstance(payload, str):
        size = len(payload.encode())
        try:
            msg = json.loads(payload)
        except ValueError:
            return Frame(size, None)
        return Frame(size, msg if isinstance(msg, dict) and "header" in msg else None)
    try:
        channel, parts = deserialize_msg_from_ws_v1(payload)
        header, parent, metadata, content = (json.loads(part) for part in parts[:4])
    except (ValueError, IndexError):  # not a v1 frame (UnicodeDecodeError is a ValueError)
        return Frame(len(payload), None)
    msg = {
        "channel": channel,
        "header": header,
        "parent_header": parent,
        "metadata": metadata,
        "content": content,
    }
    return Frame(len(payload), msg)


class Notebook:
    """One notebook open in JupyterLab or Notebook 7 in its own browser page.

    Cells are run as a person would: click into the cell's editor, press
    Shift+Enter. Each cell's prompt tells whether it is queued or running
    (``[*]:``) or done (``[n]:``). ``frames`` holds every frame the page
    received from its kernel, in order.
    """

    def __init__(self, page: Any, jupyter: Jupyter, name: str) -> None:
        self.page = page
        self.jupyter = jupyter
        self.name = name
        self.console = ConsoleLog()
        self.frames: list[Frame] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("websocket", self._on_websocket)

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

    def _on_websocket(self, socket: Any) -> None:
        if re.search(r"/api/kernels/[^/]+/channels", socket.url):
            socket.on("framereceived", lambda payload: self.frames.append(decode_frame(payload)))

    def open(self) -> None:
        self.page.goto(self.jupyter.notebook_url(self.name), wait_until="domcontentloaded")
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
            "() => { const shell = window.jupyterapp.shell;"
            " if (shell.collapseLeft && !shell.leftCollapsed) shell.collapseLeft(); }"
        )

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def prompt(self, index: int) -> str:
        text: str = self.cell(index).locator(".jp-InputPrompt").inner_text()
        return text.strip()

    def output(self, index: int) -> str:
        """The text of cell ``index``'s outputs."""
        output = self.cell(index).locator(".jp-OutputArea")
        text: str = output.inner_text() if output.count() else ""
        return text

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
                    f"console errors: {self.console.errors}\n"
                    f"jupyter: {self.jupyter.log_tail()}"
                )
            time.sleep(0.1)
        text = self.output(index)
        if "Traceback" in text:
            pytest.fail(f"cell {index} raised:\n{text[-3000:]}")

    def run_and_wait(self, index: int, timeout_ms: float = PAGE_TIMEOUT_MS) -> None:
        self.run(index)
        self.wait_done(index, timeout_ms)

    def running(self, index: int) -> bool:
        return self.prompt(index) == "[*]:"


def assert_no_jobwatch_js_errors(notebook: Notebook) -> None:
    ours = notebook.console.ours()
    assert not ours, "JavaScript errors from jobwatch:\n" + "\n".join(ours)


def screenshot(notebook: Notebook, name: str, element: Any = None) -> None:
    """A picture of ``element`` (default: the page's monitor) in ``artifacts/NAME-FRONTEND.png``."""
    shown = element if element is not None else notebook.page.locator(".jobwatch-monitor")
    shown.scroll_into_view_if_needed()
    # The pointer off the charts, or bqplot shows its toolbar over a title.
    notebook.page.mouse.move(0, 0)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}-{notebook.jupyter.frontend}.png"
    shown.screenshot(path=str(path), animations="disabled")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Lets open_notebook know whether the test failed (pytest's documented recipe).
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def open_notebook(request: pytest.FixtureRequest, browser: Any, jupyter: Jupyter) -> Iterator[Any]:
    """``open_notebook(name, cells)``: write the notebook, open it in a fresh page.

    Afterwards each page's console goes to ``artifacts/NAME-FRONTEND-console.txt``
    and, if the test failed, a picture of the page to ``artifacts/NAME-FRONTEND-failure.png``.
    """
    contexts: list[tuple[Any, Notebook]] = []

    def open_(name: str, cells: list[str]) -> Notebook:
        jupyter.write_notebook(name, cells)
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        notebook = Notebook(context.new_page(), jupyter, name)
        contexts.append((context, notebook))
        notebook.open()
        return notebook

    yield open_
    failed = request.node.stash.get(FAILED, True)
    ARTIFACTS.mkdir(exist_ok=True)
    for context, notebook in contexts:
        stem = f"{Path(notebook.name).stem}-{jupyter.frontend}"
        notebook.console.save(ARTIFACTS / f"{stem}-console.txt")
        if failed:
            notebook.page.screenshot(path=str(ARTIFACTS / f"{stem}-failure.png"))
        context.close()
    jupyter.shut_down_kernels()
