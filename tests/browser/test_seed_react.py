"""The seed's React ``JobMonitor`` component, as written, in headless Chromium against
``jobwatch serve``, live while a worker posts.

The component fetches ``/api/jobs/{jobId}/monitor`` by a relative URL, so it
must be served from jobwatch's origin. Playwright's request interception serves
the page and its bundle at that origin (``page.route``); every ``/api`` request
and the WebSocket go to the real ``jobwatch serve``. A page fulfilled by
interception has no server address, so Chromium's Local Network Access checks
would block its WebSocket to loopback as if it came from the internet; this
module's browser turns those checks off (a page served by jobwatch's host,
as in production, is not affected).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess
from tests.browser.conftest import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    PAGE_TIMEOUT_MS,
    chromium_path,
)
from tests.seed_clients.npm import Bundler

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WORKER = "your_worker_id"
PAGE = "/seed-react/"
NUMBER = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"
STEP_PAUSE = 0.2
"""Seconds between the worker's updates, so that the job's rate (and time remaining) is known."""
SETTLE = 1.0
"""Seconds to let the page handle a message it has surely been sent."""
HTML = """<!doctype html><html><head><meta charset="utf-8"><title>seed JobMonitor</title></head>
<body><div id="root"></div><script type="module" src="bundle.js"></script></body></html>"""


@pytest.fixture(scope="module")
def browser(browser: Any) -> Iterator[Any]:
    """Headless Chromium without Local Network Access checks (see the module's docstring),
    launched from the session's Playwright: a second ``sync_playwright`` in the same
    process would refuse to start inside the first one's event loop."""
    args = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
    chromium = browser.browser_type.launch(executable_path=chromium_path(), args=args)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Any, served: ServerProcess, seed_bundler: Bundler) -> Iterator[Any]:
    """A page whose ``/seed-react/`` is the bundled component, at jobwatch's origin."""
    bundle = seed_bundler.build("JobMonitor.tsx", browser=True).read_bytes()
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(error.message))
    page.route(
        served.url + PAGE + "?*",
        lambda route: route.fulfill(body=HTML, content_type="text/html"),
    )
    page.route(
        served.url + PAGE + "bundle.js",
        lambda route: route.fulfill(body=bundle, content_type="text/javascript"),
    )
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "seed-react-monitor.png"))
    context.close()
    assert not errors, errors


def post(served: ServerProcess, job_id: str, path: str, body: dict[str, Any]) -> None:
    response = requests.post(f"{served.url}/api/jobs/{job_id}/{path}", json=body, timeout=10)
    assert response.status_code == 200, response.text


def text_of(page: Any, prefix: str) -> str:
    return str(page.locator("p", has_text=prefix).inner_text())


def wait_text(page: Any, prefix: str, pattern: str) -> None:
    """Wait until the paragraph starting with ``prefix`` reads ``prefix`` + ``pattern``."""
    page.locator("p", has_text=re.compile("^" + re.escape(prefix) + pattern + "$")).wait_for()


def test_the_seed_component_shows_a_job_live(page: Any, served: ServerProcess) -> None:
    job_id = "react-seed"
    requests.put(f"{served.url}/api/jobs/{job_id}", json={"pricePerHour": 3600.0}, timeout=10)
    metrics = {"gpuUtilization": 60, "gpuMemoryUsed": 9000, "gpuMemoryTotal": 24000,
               "gpuTemperature": 65, "powerUsage": 250}  # fmt: skip
    post(served, job_id, "progress", {"workerId": WORKER, "progress": 5, "metrics": metrics})

    frames: list[str] = []

    def on_frame(payload: str | bytes) -> None:
        frames.append(str(payload))

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    page.goto(f"{served.url}{PAGE}?jobId={job_id}")
    page.get_by_role("heading", name=f"Job {job_id}").wait_for()
    wait_text(page, "Status: ", "running")
    wait_text(page, "Progress: ", "5%")
    # The seed subscribes without `since`: what is posted before its subscription is
    # acknowledged never reaches it, so the worker starts once it is.
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while not any('"subscribed"' in frame for frame in frames):
        assert time.monotonic() < deadline, "the seed's component never subscribed"
        page.wait_for_timeout(50)  # lets Playwright deliver the socket's frames

    for step, progress in enumerate((10, 20, 45), start=1):
        time.sleep(STEP_PAUSE)
        post(served, job_id, "progress", {
            "workerId": WORKER,
            "progress": progress,
            "currentOperation": f"Training epoch {step + 2}/10",
            "metrics": {**metrics, "gpuUtilization": 60 + 10 * step, "gpuTemperature": 65 + step},
            "logLines": [{"level": "info", "message": f"Epoch {step + 2}/10 completed"}],
        })  # fmt: skip
    wait_text(page, "Progress: ", "45%")
    wait_text(page, "Operation: ", "Training epoch 5/10")
    wait_text(page, "Time Remaining: ", NUMBER + "s")
    wait_text(page, "Cost So Far: ", NUMBER + " QUBIC")
    assert float(text_of(page, "Cost So Far: ").split()[3]) > 0

    # the chart: two lines (utilization and temperature) over the four samples
    page.locator(".recharts-line").nth(1).wait_for()
    assert page.locator(".recharts-line").count() == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('.recharts-line-curve')]"
        ".every(p => (p.getAttribute('d') || '').split(/[LC]/).length >= 4)"
    )
    for step in (3, 4, 5):
        page.get_by_text(f"[info] Epoch {step}/10 completed", exact=True).wait_for()
    page.wait_for_timeout(2000)  # recharts animates new lines in for 1.5 s
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "seed-react-live.png"))

    # What the seed's component cannot do as written: it never reads `status` from
    # JOB_PROGRESS and ignores JOB_COMPLETED, so Status stays as /monitor said at load.
    post(served, job_id, "complete", {"workerId": WORKER, "status": "completed"})
    page.evaluate(
        """jobId => new Promise(done => {
            const ws = new WebSocket(`ws://${location.host}/ws`);
            ws.onopen = () => ws.send(JSON.stringify({type: 'subscribe:job', subscriptionId: jobId}));
            ws.onmessage = e => { if (JSON.parse(e.data).type === 'JOB_COMPLETED') { ws.close(); done(); } };
        })""",
        job_id,
    )
    time.sleep(SETTLE)
    assert text_of(page, "Status: ") == "Status: running"
    page.reload()
    wait_text(page, "Status: ", "completed")
    wait_text(page, "Progress: ", "100%")
