"""The web pages in headless Chromium against a real server: the fleet table at
``/`` and a job's monitor at ``/jobs/<id>``, live as workers post, and the token form.

The server runs in this process (EmbeddedServer, real HTTP and WebSocket) on a
fake clock, so that stalls are made by moving the clock, not by waiting. The
tests read the page only, as a person would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from jobwatch import Reporter
from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.browser.conftest import ARTIFACTS
from tests.browser.pages import Recorded, open_page
from tests.conftest import FakeClock

pytestmark = pytest.mark.browser
__all__ = ["open_page"]  # the fixture, used by name

TOKEN = "browser-token-0123456789"
HOSTILE = '<img src=x onerror="window.hacked=1">'
ESC = "\x1b"
WERKZEUG_AFTER_CLOSE = r"WebSocket connection to .* failed: Invalid frame header"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def site(clock: FakeClock) -> Iterator[EmbeddedServer]:
    config = {"CLOCK": clock, "STALL_CHECK_INTERVAL": 0, "STALL_AFTER": 60}
    with EmbeddedServer(config=config) as server:
        yield server


@pytest.fixture
def client(site: EmbeddedServer) -> Iterator[Client]:
    with Client(site.url) as c:
        yield c


def gpus(util: float) -> dict[str, Any]:
    return {
        "gpus": [
            {"index": 0, "gpuUtilization": util, "gpuMemoryUsed": 2048, "gpuMemoryTotal": 8192,
             "gpuTemperature": 70, "powerUsage": 200},
            {"index": 1, "gpuUtilization": util - 10, "gpuMemoryUsed": 1024,
             "gpuMemoryTotal": 8192, "gpuTemperature": 60, "powerUsage": 150},
        ]
    }  # fmt: skip


def row(page: Any, job_id: str) -> Any:
    return page.locator(f'tr[data-job-id="{job_id}"]')


def cell(page: Any, job_id: str, column: str) -> str:
    text: str = row(page, job_id).locator(f".jobwatch-col-{column}").inner_text()
    return text.strip()


def shown_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        ".jobwatch-fleet tbody tr", "rows => rows.map(r => r.dataset.jobId)"
    )
    return ids


def money(text: str) -> float:
    match = re.fullmatch(r"([\d.,]+) QUBIC", text.strip())
    assert match, text
    return float(match.group(1).replace(",", ""))


def save(recorded: Recorded, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    recorded.page.mouse.move(0, 0)
    recorded.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_fleet_page_shows_every_job_and_follows_them_live(
    site: EmbeddedServer, client: Client, clock: FakeClock, open_page: Any
) -> None:
    client.create_job(job_id="sweep-1", name="sweep lr=0.1", price_per_hour=3.6)
    client.report_progress(
        "sweep-1", "w1", 25, "epoch 1/4", metrics={"gpuUtilization": 81, "gpuTemperature": 71}
    )
    client.ensure_job("sweep-2", name="sweep lr=0.01", price_per_hour=3.6, budget=0.5)
    client.report_progress("sweep-2", "w2", 50, "epoch 2/4")
    clock.advance(600)
    client.complete_job("sweep-2", "w2")
    client.create_job(job_id="other-3", name=HOSTILE)

    recorded = open_page(site.url + "/")
    page = recorded.page
    page.locator(".jobwatch-fleet tbody tr").nth(2).wait_for()
    page.locator(".jobwatch-connection", has_text="live").wait_for()

    # Sorted by status (running first), then newest update.
    assert shown_ids(page) == ["sweep-1", "other-3", "sweep-2"]
    assert cell(page, "sweep-1", "status") == "running"
    assert cell(page, "sweep-2", "status") == "completed"
    assert cell(page, "other-3", "status") == "pending"
    assert cell(page, "sweep-1", "progress").splitlines() == ["25.0%", "epoch 1/4"]
    assert cell(page, "sweep-1", "gpu") == "81%"
    assert cell(page, "sweep-1", "temperature") == "71°C"
    assert cell(page, "sweep-2", "progress").startswith("100.0%")
    cost_lines = cell(page, "sweep-2", "cost").splitlines()
    assert money(cost_lines[0]) == pytest.approx(0.6, rel=0.01)  # 10 min at 3.6/h
    # its budget of 0.50 is spent: the cost and the budget line in red
    assert cost_lines[1] == "est. 0.600 / budget 0.500 QUBIC"
    spent = row(page, "sweep-2").locator(".jobwatch-col-cost")
    assert spent.get_attribute("data-over") == "spent"
    colour = "e => getComputedStyle(e).color"
    assert spent.locator(".jobwatch-cost-value").evaluate(colour) == "rgb(185, 28, 28)"
    assert row(page, "sweep-1").locator(".jobwatch-col-cost").get_attribute("data-over") == "none"
    assert cell(page, "sweep-1", "cost").splitlines()[1].startswith("est. ")
    assert re.fullmatch(r"\d+(s|m \d\ds) ago", cell(page, "sweep-1", "updated"))
    # A hostile name is text: no element made of it, no script run.
    assert row(page, "other-3").locator(".jobwatch-job-link").inner_text() == HOSTILE
    assert page.locator(".jobwatch-fleet img").count() == 0
    assert page.evaluate("window.hacked") is None
    assert page.inner_text(".jobwatch-total-jobs") == "3 jobs: 1 running"
    running = money(page.inner_text(".jobwatch-total-running"))
    assert running >= 0.6  # sweep-1 has run 10 minutes at 3.6/h
    # today and this month: the server's report (both jobs ran today: 0.6 each, and on)
    page.wait_for_function(
        "() => document.querySelector('.jobwatch-total-month').textContent.includes('QUBIC')"
    )
    today = money(page.inner_text(".jobwatch-total-today"))
    assert today >= 1.2 and money(page.inner_text(".jobwatch-total-month")) >= today

    # Live: a worker posts, a job is created, an alert fires, a job stalls.
    client.report_progress(
        "sweep-1", "w1", 60, "epoch 3/4", metrics={"gpuUtilization": 95, "gpuTemperature": 80}
    )
    row(page, "sweep-1").locator(".jobwatch-percent", has_text="60.0%").wait_for()
    assert cell(page, "sweep-1", "gpu") == "95%"
    clock.advance(1)
    client.create_job(job_id="sweep-4", name="sweep lr=1")
    client.report_progress("sweep-4", "w4", 5, alerts=[{"title": "loss is nan", "level": "error"}])
    row(page, "sweep-4").locator(".jobwatch-col-alerts", has_text="1").wait_for()
    assert shown_ids(page)[:2] == ["sweep-4", "sweep-1"]  # both running, newest update first
    clock.advance(120)
    client.report_progress("sweep-1", "w1", 70)
    site.services.watchdog.check()  # sweep-4: 120 s without an update
    row(page, "sweep-4").locator(".jobwatch-stalled").wait_for()
    assert row(page, "sweep-1").locator(".jobwatch-stalled").count() == 0
    page.locator(".jobwatch-total-jobs", has_text="4 jobs: 2 running (1 stalled)").wait_for()
    save(recorded, "pages-fleet.png")

    # Filters: by name, by status, both; kept in the URL.
    page.fill(".jobwatch-filter-name", "SWEEP LR=0.")
    expect(page.locator(".jobwatch-fleet tbody tr")).to_have_count(2)
    assert sorted(shown_ids(page)) == ["sweep-1", "sweep-2"]
    page.select_option(".jobwatch-filter-status", "completed")
    expect(page.locator(".jobwatch-fleet tbody tr")).to_have_count(1)
    assert shown_ids(page) == ["sweep-2"]
    assert "status=completed" in page.url and "q=SWEEP" in page.url
    page.fill(".jobwatch-filter-name", "")
    page.select_option(".jobwatch-filter-status", "stalled")
    expect(page.locator(".jobwatch-fleet tbody tr")).to_have_count(1)
    assert shown_ids(page) == ["sweep-4"]
    page.fill(".jobwatch-filter-name", "no such job")
    page.locator(".jobwatch-empty", has_text="No job matches the filter.").wait_for()
    page.fill(".jobwatch-filter-name", "")
    page.select_option(".jobwatch-filter-status", "")

    # Sorting: a header sorts by its column; again, the other way.
    page.click("th[data-sort=progress]")
    expect(page.locator("tbody tr").first).to_have_attribute("data-job-id", "other-3")
    assert shown_ids(page) == ["other-3", "sweep-4", "sweep-1", "sweep-2"]  # 0, 5, 70, 100
    page.click("th[data-sort=progress]")
    expect(page.locator("tbody tr").first).to_have_attribute("data-job-id", "sweep-2")
    assert shown_ids(page) == ["sweep-2", "sweep-1", "sweep-4", "other-3"]
    assert page.get_attribute("th[data-sort=progress]", "aria-sort") == "descending"

    # A row links to its job's page.
    row(page, "sweep-1").locator(".jobwatch-job-link").click()
    page.wait_for_url(re.compile(r"/jobs/sweep-1$"))
    page.locator(".jobwatch-name", has_text="sweep lr=0.1").wait_for()
    assert recorded.errors() == []


def test_job_page_shows_progress_charts_training_metrics_logs_and_alerts(
    site: EmbeddedServer, client: Client, clock: FakeClock, open_page: Any
) -> None:
    client.create_job(job_id="train-1", name="resnet", price_per_hour=3.6)
    client.ensure_job("train-1", budget=0.06)
    older = [{"level": "info", "message": f"setup line {i}"} for i in range(150)]
    client.report_progress("train-1", "w", 0, "loading data", logs=older)
    for step in range(1, 6):
        clock.advance(10)
        client.report_progress(
            "train-1", "w", step * 10, f"epoch {step}/10", metrics=gpus(50 + step),
            logs=[{"level": "info", "message": f"{ESC}[1;31mERROR{ESC}[0m epoch {step} {ESC}[32mok{ESC}[39m"},
                  {"level": "warning", "message": f" 10%|#   |\r 90%|####| step {step}"}],
            scalars=[{"step": step * 10 + i, "values": {"loss": 1 / (step * 10 + i), "acc": step / 10}}
                     for i in range(2)],
        )  # fmt: skip
    client.report_progress("train-1", "w", 55, alerts=[{"title": "GPU hot", "text": HOSTILE}])

    recorded = open_page(site.url + "/jobs/train-1")
    page = recorded.page
    page.locator(".jobwatch-connection", has_text="live").wait_for()
    page.locator(".jobwatch-chart-scalars[data-points='10']").wait_for()

    assert page.inner_text(".jobwatch-name") == "resnet"
    assert page.inner_text(".jobwatch-id") == "train-1"
    assert page.inner_text(".jobwatch-badges").strip() == "running"
    assert page.inner_text(".jobwatch-percent") == "55.0%"
    assert page.inner_text(".jobwatch-operation") == "epoch 5/10"
    assert re.fullmatch(r"\d+s", page.inner_text(".jobwatch-eta"))
    cost = money(page.inner_text(".jobwatch-cost"))
    assert cost == pytest.approx(0.05, rel=0.05)  # 50 s at 3.6/h
    # The budget: under it so far (0.05 of 0.06), but the estimate is over it: amber.
    assert client.monitor("train-1")["estimatedTotalCost"] > 0.06
    spend = page.locator(".jobwatch-spend")
    assert spend.get_attribute("data-over") == "projected"
    assert (
        page.inner_text(".jobwatch-budget-words") == " · budget 0.0600 QUBIC: projected over budget"
    )
    colour = "e => getComputedStyle(e).color"
    assert page.eval_on_selector(".jobwatch-estimate", colour) == "rgb(180, 83, 9)"  # #b45309
    assert page.eval_on_selector(".jobwatch-cost", colour) != "rgb(185, 28, 28)"
    assert page.inner_text(".jobwatch-gpu") == (
        "GPU 50% mean · memory 3.0/16.0 GiB total · 70°C hottest · 350 W total (2 GPUs)"
    )
    assert page.inner_text(".jobwatch-scalars-latest") == "acc 0.5 · loss 0.01961 at step 51"

    # GPU charts: one line per GPU; training metrics: one line per name, by step.
    utilization = page.locator(".jobwatch-chart-utilization")
    assert utilization.get_attribute("data-series") == "GPU 0 util|GPU 1 util|GPU 0 temp|GPU 1 temp"
    assert int(utilization.get_attribute("data-points") or 0) == 5
    assert page.get_attribute(".jobwatch-chart-memory", "data-series") == (
        "GPU 0 used|GPU 1 used|GPU 0 total|GPU 1 total"
    )
    assert page.get_attribute(".jobwatch-chart-power", "data-series") == "GPU 0|GPU 1"
    assert page.get_attribute(".jobwatch-chart-scalars", "data-series") == "acc|loss"
    assert page.locator(".jobwatch-chart canvas").count() == 4
    # Training metrics against the money spent: logged at 10-50 s at 0.001 a second.
    page.select_option(".jobwatch-x-axis", "cost")
    chart = ".jobwatch-chart-scalars[data-axis='cost']"
    page.locator(chart).wait_for()
    assert float(page.get_attribute(chart, "data-x-last") or "nan") == pytest.approx(0.05)
    assert page.get_attribute(chart, "data-points") == "5"  # two steps a moment: one cost each
    assert "x=cost" in page.url  # a link opens the chart against cost
    page.select_option(".jobwatch-x-axis", "step")
    page.locator(".jobwatch-chart-scalars[data-axis='step']").wait_for()

    # The alert banner: the newest alert, its text as text.
    banner = page.locator(".jobwatch-alert")
    assert banner.get_attribute("data-level") == "warning"
    assert banner.locator(".jobwatch-alert-title").inner_text() == "GPU hot"
    assert banner.locator(".jobwatch-alert-text").inner_text() == f": {HOSTILE}"
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.hacked") is None

    # Logs: the newest 100 at first, coloured as a terminal shows them.
    lines = page.locator(".jobwatch-log-line")
    assert lines.count() == 100
    coloured = page.locator(".jobwatch-log-line", has_text="ERROR epoch 5 ok").first
    # Bold in one of the first 8 colours is drawn bright, as a JupyterLab cell does.
    red = coloured.locator("span.jobwatch-ansi-fg-9.jobwatch-ansi-bold")
    assert red.inner_text() == "ERROR"
    assert coloured.locator("span.jobwatch-ansi-fg-2").inner_text() == "ok"
    tqdm = page.locator('.jobwatch-log-line[data-level="warning"] .jobwatch-log-message').last
    assert tqdm.inner_text() == " 90%|####| step 5"  # the last \r frame only
    assert ESC not in page.inner_text(".jobwatch-log-list")
    assert page.inner_text(".jobwatch-log-count") == "showing 100 of 160"

    # The level filter, as in the notebook.
    page.select_option(".jobwatch-log-filter", "warning")
    page.locator(".jobwatch-log-count", has_text="showing 5 warning of 100 loaded").wait_for()
    visible = page.eval_on_selector_all(
        ".jobwatch-log-line",
        "rows => rows.filter(r => r.offsetHeight > 0).map(r => r.dataset.level)",
    )
    assert visible == ["warning"] * 5
    page.select_option(".jobwatch-log-filter", "all")

    # Older lines on demand.
    page.click(".jobwatch-log-older")
    page.locator(".jobwatch-log-count", has_text="showing 160 of 160").wait_for()
    assert page.locator(".jobwatch-log-line").first.inner_text().endswith("setup line 0")
    assert page.locator(".jobwatch-log-older").is_hidden()

    # Live: progress, a sample, a training step, a log line, another alert (the budget's
    # two so far, projected over and 80 % spent, came before; 55 s is under the 0.06).
    clock.advance(5)
    client.report_progress(
        "train-1", "w", 80, "epoch 8/10", metrics=gpus(90),
        logs=[{"level": "error", "message": "CUDA warning"}],
        scalars=[{"step": 60, "values": {"loss": 0.01}}],
        alerts=[{"title": "loss spike", "level": "error"}],
    )  # fmt: skip
    page.locator(".jobwatch-percent", has_text="80.0%").wait_for()
    page.locator(".jobwatch-chart-scalars[data-points='11']").wait_for()
    page.locator(".jobwatch-chart-utilization[data-points='6']").wait_for()
    page.locator(".jobwatch-log-line", has_text="CUDA warning").wait_for()
    assert page.inner_text(".jobwatch-log-count") == "showing 161 of 161"
    page.locator(".jobwatch-alert[data-level=error]", has_text="(4 alerts)").wait_for()
    assert banner.locator(".jobwatch-alert-title").inner_text() == "loss spike"
    assert page.locator(".jobwatch-alert-item").count() == 4
    save(recorded, "pages-job.png")

    # A stall shows as a badge; the end as the job's result.
    clock.advance(120)
    site.services.watchdog.check()
    page.locator(".jobwatch-badges .jobwatch-stalled").wait_for()
    client.complete_job("train-1", "w", result={"accuracy": 0.97})
    page.locator(".jobwatch-final", has_text="completed").wait_for()
    assert '"accuracy": 0.97' in page.inner_text(".jobwatch-final")
    assert page.inner_text(".jobwatch-percent") == "100.0%"
    page.locator(".jobwatch-spend[data-over='spent']").wait_for()  # 175 s: 0.175 of 0.06
    assert page.inner_text(".jobwatch-budget-words") == " · budget 0.0600 QUBIC: over budget"
    assert page.eval_on_selector(".jobwatch-cost", colour) == "rgb(185, 28, 28)"  # #b91c1c
    page.locator(".jobwatch-connection", has_text="not live (the job ended)").wait_for()
    assert page.locator(".jobwatch-badges .jobwatch-stalled").count() == 0
    # The page closes its socket once the job ended; Werkzeug (the embedded server)
    # then writes an HTTP answer after the close frame (flask-sock's werkzeug mode),
    # which Chromium reports. gunicorn (`jobwatch serve`) does not.
    assert recorded.errors(allowed=WERKZEUG_AFTER_CLOSE) == []


def test_job_page_draws_two_mig_slices_of_gpu_0_as_two_lines(
    site: EmbeddedServer, client: Client, clock: FakeClock, open_page: Any
) -> None:
    slices = [
        {"index": 0, "uuid": "MIG-11111111-aaaa", "name": "NVIDIA A100 MIG 3g.20gb",
         "gpuMemoryUsed": 4096, "gpuMemoryTotal": 19968},
        {"index": 0, "uuid": "MIG-22222222-aaaa", "name": "NVIDIA A100 MIG 1g.5gb",
         "gpuMemoryUsed": 1024, "gpuMemoryTotal": 4864},
    ]  # fmt: skip
    client.create_job(job_id="mig-1")
    for step in range(3):
        clock.advance(10)
        client.report_progress("mig-1", "w", step, metrics={"gpus": slices})
    recorded = open_page(site.url + "/jobs/mig-1")
    page = recorded.page
    page.locator(".jobwatch-chart-memory[data-points='3']").wait_for()
    assert page.get_attribute(".jobwatch-chart-memory", "data-series") == (
        "GPU 0 (MIG 3g.20gb) used|GPU 0 (MIG 1g.5gb) used|"
        "GPU 0 (MIG 3g.20gb) total|GPU 0 (MIG 1g.5gb) total"
    )
    assert recorded.errors() == []


def test_job_page_charts_the_system_metrics_of_a_job_without_a_gpu(
    site: EmbeddedServer, client: Client, clock: FakeClock, open_page: Any
) -> None:
    """A Reporter on this machine (no NVIDIA GPU) sends its system metrics: the page
    draws them where the GPU charts would be, and a job with both gets a picker."""
    with Reporter("cpu-1", url=site.url, name="no gpu", interval=0.05) as report:  # gpu="auto"
        for step in range(4):
            report.update(step * 10, f"epoch {step}")
            assert report.flush(timeout=10)
            clock.advance(10)
        recorded = open_page(site.url + "/jobs/cpu-1")
        page = recorded.page
        page.locator(".jobwatch-chart-system-cpu[data-points]").wait_for()
        assert int(page.get_attribute(".jobwatch-chart-system-cpu", "data-points") or 0) >= 4
        assert (
            page.get_attribute(".jobwatch-chart-system-cpu", "data-series") == "CPU utilization (%)"
        )
        assert page.get_attribute(".jobwatch-chart-system-memory", "data-series") == (
            "memory in use|memory in all|process memory (RSS)"
        )
        assert page.get_attribute(".jobwatch-chart-system-io", "data-series") == (
            "disk read|disk write|network received|network sent"
        )
        assert page.locator(".jobwatch-chart-row-system canvas").count() == 3
        assert page.locator(".jobwatch-chart-row-gpu").is_hidden()
        assert page.locator(".jobwatch-chart-kind-label").is_hidden()  # nothing to pick from
        assert page.inner_text(".jobwatch-gpu") == "no GPU metrics reported"
        system = page.inner_text(".jobwatch-system")
        assert re.fullmatch(
            r"CPU (\d+%|-) mem [\d.]+/[\d.]+ GiB process [\d.]+ GiB disk [\d.]+/[\d.]+ GiB "
            r"read \S+ \S+ write \S+ \S+ net in \S+ \S+ out \S+ \S+",
            " ".join(system.split()),
        ), system
        points = int(page.get_attribute(".jobwatch-chart-system-cpu", "data-points") or 0)
        clock.advance(10)
        report.update(50, "epoch 5")  # live: more samples come over the socket
        page.wait_for_function(
            "n => Number(document.querySelector('.jobwatch-chart-system-cpu').dataset.points) > n",
            arg=points,
        )
    save(recorded, "pages-job-system.png")

    client.create_job(job_id="both-1")
    system_values = {"cpuUtilization": 40, "memoryUsed": 4096, "memoryTotal": 8192}
    for step in range(3):
        clock.advance(10)
        client.report_progress("both-1", "w", step, metrics={**gpus(50), **system_values})
    recorded = open_page(site.url + "/jobs/both-1")
    page = recorded.page
    page.locator(".jobwatch-chart-utilization[data-points='3']").wait_for()
    assert page.locator(".jobwatch-chart-kind-label").is_visible()
    assert page.locator(".jobwatch-chart-row-system").is_hidden()  # GPU first
    page.select_option(".jobwatch-chart-kind", "system")
    page.locator(".jobwatch-chart-system-cpu[data-points='3']").wait_for()
    assert page.locator(".jobwatch-chart-row-gpu").is_hidden()
    assert page.locator(".jobwatch-chart-row-system").is_visible()
    assert page.inner_text(".jobwatch-gpu").startswith("GPU 45% mean")
    assert " ".join(page.inner_text(".jobwatch-system").split()) == (
        "CPU 40% mem 4.0/8.0 GiB process - disk - read - write - net in - out -"
    )
    assert recorded.errors() == []


def test_job_page_waits_for_a_job_that_does_not_exist_yet(
    site: EmbeddedServer, client: Client, open_page: Any
) -> None:
    recorded = open_page(site.url + "/jobs/later-1")
    page = recorded.page
    page.locator(".jobwatch-operation", has_text="waiting for job later-1").wait_for()
    assert page.inner_text(".jobwatch-connection") == "● waiting for the job"
    client.create_job(job_id="later-1", name="later")
    client.report_progress("later-1", "w", 30, "started")
    page.locator(".jobwatch-connection", has_text="live").wait_for()
    client.report_progress(
        "later-1", "w", 40, "going", logs=[{"level": "info", "message": "hello"}]
    )
    page.locator(".jobwatch-percent", has_text="40.0%").wait_for()
    page.locator(".jobwatch-log-line", has_text="hello").wait_for()
    # The page polls /monitor while waiting: those 404s are the only console errors.
    assert recorded.errors(allowed=r"404 \(NOT FOUND\)") == []


def test_a_malformed_job_id_says_what_a_job_id_is_instead_of_waiting(
    site: EmbeddedServer, open_page: Any
) -> None:
    recorded = open_page(site.url + "/jobs/bad%20id%3Cb%3E")
    page = recorded.page
    error = page.locator(".jobwatch-error")
    error.wait_for()
    assert error.inner_text() == (
        '"bad id<b>" is not a job id: job ids are 1-128 characters of letters,'
        " digits and . _ : @ -, starting with a letter or digit."
    )
    assert page.inner_text(".jobwatch-connection") == "● not live (closed)"
    assert page.locator(".jobwatch-error b, .jobwatch-id b").count() == 0
    assert recorded.errors() == []


def test_the_pages_ask_for_the_token_once_and_keep_it_for_the_session(
    clock: FakeClock, open_page: Any
) -> None:
    config = {"CLOCK": clock, "STALL_CHECK_INTERVAL": 0, "WRITE_TOKEN": TOKEN}
    with EmbeddedServer(config=config) as server, Client(server.url, token=TOKEN) as client:
        client.create_job(job_id="secret-1", name="secret")
        client.report_progress(
            "secret-1", "w", 10, "epoch 1", logs=[{"level": "info", "message": "hi"}]
        )

        recorded = open_page(server.url + "/")
        page = recorded.page
        form = page.locator("form.jobwatch-token")
        form.wait_for()
        assert page.locator(".jobwatch-fleet tbody tr").count() == 0
        page.fill(".jobwatch-token-input", "not-the-token-0123456789")
        page.click(".jobwatch-token-submit")
        page.locator(".jobwatch-token-why", has_text="refused").wait_for()
        page.fill(".jobwatch-token-input", TOKEN)
        page.click(".jobwatch-token-submit")
        row(page, "secret-1").wait_for()
        assert form.count() == 0
        assert page.evaluate("sessionStorage.getItem('jobwatch.token')") == TOKEN

        # The WebSocket carries the token too: live updates arrive.
        client.report_progress("secret-1", "w", 20, "epoch 2")
        row(page, "secret-1").locator(".jobwatch-percent", has_text="20.0%").wait_for()

        # Another page of the session: no question asked.
        row(page, "secret-1").locator(".jobwatch-job-link").click()
        page.wait_for_url(re.compile(r"/jobs/secret-1$"))
        page.locator(".jobwatch-connection", has_text="live").wait_for()
        page.locator(".jobwatch-log-line", has_text="hi").wait_for()
        assert page.locator("form.jobwatch-token").count() == 0
        client.report_progress("secret-1", "w", 30, "epoch 3")
        page.locator(".jobwatch-percent", has_text="30.0%").wait_for()
        # Only the first requests, before the token was given, were refused.
        assert recorded.errors(allowed=r"401 \(UNAUTHORIZED\)") == []
        assert any("401" in error for error in recorded.console.errors)


@pytest.mark.slow
def test_the_pages_work_against_jobwatch_serve_as_shipped(tmp_path: Any, open_page: Any) -> None:
    """gunicorn with its gevent worker, a token from the environment: the deployment's way."""
    server = ServerProcess(serve_command(tmp_path / "db"), env={"JOBWATCH_TOKEN": TOKEN})
    try:
        with Client(server.url, token=TOKEN) as client:
            client.create_job(job_id="served-1", name="served", price_per_hour=1.0)
            client.report_progress("served-1", "w", 10, logs=[{"level": "info", "message": "up"}])
            recorded = open_page(server.url + "/")
            page = recorded.page
            page.fill(".jobwatch-token-input", TOKEN)
            page.click(".jobwatch-token-submit")
            row(page, "served-1").wait_for()
            client.report_progress("served-1", "w", 35, "training")
            row(page, "served-1").locator(".jobwatch-percent", has_text="35.0%").wait_for()
            row(page, "served-1").locator(".jobwatch-job-link").click()
            page.locator(".jobwatch-connection", has_text="live").wait_for()
            page.locator(".jobwatch-log-line", has_text="up").wait_for()
            client.complete_job("served-1", "w")
            page.locator(".jobwatch-connection", has_text="not live (the job ended)").wait_for()
            page.locator(".jobwatch-final", has_text="completed").wait_for()
            # Under gunicorn the page's own close of its socket is clean.
            assert recorded.errors(allowed=r"401 \(UNAUTHORIZED\)") == []
            # The browser's open connections would hold the graceful stop (10 s).
            page.context.close()
    finally:
        server.stop()


SPOOF = "spoof-\u2067\u202e1"  # an unclosed isolate and an override: both would leak


def test_a_name_with_bidi_controls_cannot_reorder_the_text_beside_it(
    site: EmbeddedServer, client: Client, open_page: Any
) -> None:
    client.create_job(job_id="spoof", name=SPOOF)
    client.report_progress("spoof", "w\u202e1", 10, "op\u202eeration")
    fleet = open_page(site.url + "/").page
    link = fleet.locator(".jobwatch-job-link").first
    expect(link).to_have_text(SPOOF)
    for cell in (link, fleet.locator(".jobwatch-operation").first):
        assert cell.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    page = open_page(site.url + "/jobs/spoof").page
    name, job_id = page.locator(".jobwatch-name"), page.locator(".jobwatch-id")
    expect(name).to_have_text(SPOOF)
    expect(job_id).to_have_text("spoof")
    assert name.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    # the id, written after the name, is still drawn to its right: the
    # override inside the name did not carry over to it
    name_box, id_box = name.bounding_box(), job_id.bounding_box()
    assert id_box["x"] >= name_box["x"] + name_box["width"] - 1


PHONE = {"width": 390, "height": 844}
"""A phone's screen in CSS pixels (iPhone 12-15)."""
# Elements wider than the page, with what they are, and how wide the page scrolls.
OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const wide = [];
    for (const node of document.body.querySelectorAll("*")) {
        const box = node.getBoundingClientRect();
        if (box.width && box.right > width + 0.5 && getComputedStyle(node).position !== "fixed") {
            wide.push(`${node.tagName.toLowerCase()}.${node.className} right=${box.right}`);
        }
    }
    return {width, scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 10)};
}"""


def test_job_page_fits_a_390_px_phone_screen(
    site: EmbeddedServer, client: Client, clock: FakeClock, browser: Any
) -> None:
    client.create_job(job_id="phone-run-with-a-long-id-0123456789", name="resnet on a phone",
                      price_per_hour=3.6)  # fmt: skip
    for step in range(1, 4):
        clock.advance(10)
        client.report_progress(
            "phone-run-with-a-long-id-0123456789", "w", step * 20, f"epoch {step}/5",
            metrics=gpus(50 + step),
            logs=[{"level": "info", "message": "loss 0.1234 " * 12 + "a-very-long-token-" * 8}],
            scalars=[{"step": step, "values": {"loss": 1 / step}}],
        )  # fmt: skip
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(site.url + "/jobs/phone-run-with-a-long-id-0123456789")
        page.locator(".jobwatch-connection", has_text="live").wait_for()
        page.locator(".jobwatch-chart-scalars[data-points='3']").wait_for()
        layout = page.evaluate(OVERFLOW)
        assert layout["width"] == PHONE["width"], layout
        assert layout["scroll"] <= PHONE["width"], f"the page scrolls sideways: {layout}"
        assert not layout["wide"], f"wider than the screen: {layout['wide']}"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "pages-job-phone.png"), full_page=True)
    finally:
        context.close()
