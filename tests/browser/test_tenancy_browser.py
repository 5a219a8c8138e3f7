"""The pages in headless Chromium with tenants: a tenant's token shows its jobs only,
and a share link opens one job, live, until it expires.

A real server in this process (EmbeddedServer, real HTTP and WebSocket) with
an admin token and two tenants; its clock is fake, so a link expires by
moving the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jobwatch.client.rest import Client
from jobwatch.server import EmbeddedServer
from tests.browser.pages import open_page
from tests.conftest import FakeClock

pytestmark = pytest.mark.browser
__all__ = ["open_page"]  # the fixture, used by name

ADMIN = "admin-token-0123456789abcdef"


def admin(server: EmbeddedServer, method: str, path: str, **body: Any) -> dict[str, Any]:
    answer = requests.request(
        method,
        server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert answer.ok, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def site(clock: FakeClock) -> Iterator[EmbeddedServer]:
    config = {"CLOCK": clock, "STALL_CHECK_INTERVAL": 0, "WRITE_TOKEN": ADMIN}
    with EmbeddedServer(config=config) as server:
        for name in ("acme", "globex"):
            admin(server, "PUT", f"/api/admin/tenants/{name}")
        yield server


def tenant_client(site: EmbeddedServer, tenant: str, kind: str = "write") -> Client:
    secret = admin(site, "POST", "/api/admin/tokens", kind=kind, tenant=tenant)["secret"]
    return Client(site.url, token=secret)


def test_a_tenants_pages_show_its_jobs_only(site: EmbeddedServer, open_page: Any) -> None:
    with tenant_client(site, "acme") as acme, tenant_client(site, "globex") as globex:
        acme.ensure_job("acme:mine", worker_id="w")
        acme.report_progress("acme:mine", "w", 10, "epoch 1")
        globex.ensure_job("globex:theirs", worker_id="w")
        globex.report_progress("globex:theirs", "w", 50, "secret operation")
        reader = tenant_client(site, "acme", "read")

        recorded = open_page(site.url + "/")
        page = recorded.page
        page.locator("form.jobwatch-token").wait_for()
        page.fill(".jobwatch-token-input", reader.token or "")
        page.click(".jobwatch-token-submit")
        page.locator('tr[data-job-id="acme:mine"]').wait_for()
        # live: both tenants post; only acme's change reaches the page
        globex.report_progress("globex:theirs", "w", 60, "secret operation")
        acme.report_progress("acme:mine", "w", 20, "epoch 2")
        page.locator('tr[data-job-id="acme:mine"] .jobwatch-percent', has_text="20.0%").wait_for()
        ids = page.eval_on_selector_all(
            ".jobwatch-fleet tbody tr", "rows => rows.map(r => r.dataset.jobId)"
        )
        assert ids == ["acme:mine"]
        assert "secret operation" not in page.content()

        # another tenant's job page is a job that does not exist
        page.goto(site.url + "/jobs/globex:theirs")
        page.locator(".jobwatch-connection").wait_for()
        page.get_by_text("waiting for job globex:theirs").wait_for()
        assert "secret operation" not in page.content()
        reader.close()


def test_a_share_link_opens_one_job_live_until_it_expires(
    site: EmbeddedServer, clock: FakeClock, open_page: Any
) -> None:
    with tenant_client(site, "acme") as acme:
        acme.ensure_job("acme:shared", worker_id="w")
        acme.report_progress(
            "acme:shared", "w", 30, "epoch 3", logs=[{"level": "info", "message": "hello"}]
        )
        acme.ensure_job("acme:private", worker_id="w")
        acme.report_progress("acme:private", "w", 70, "private operation")
        made = acme.share_job("acme:shared", expires_in=600)

        recorded = open_page(made["url"])
        page = recorded.page
        page.locator(".jobwatch-connection", has_text="live").wait_for()
        page.locator(".jobwatch-percent", has_text="30.0%").wait_for()
        page.locator(".jobwatch-log-line", has_text="hello").wait_for()
        assert page.locator("form.jobwatch-token").count() == 0
        assert "#share=" not in page.url  # taken from the address bar
        assert page.evaluate("sessionStorage.getItem('jobwatch.token')") == made["secret"]
        acme.report_progress("acme:shared", "w", 40, "epoch 4")
        page.locator(".jobwatch-percent", has_text="40.0%").wait_for()

        # the link reads nothing else
        page.goto(site.url + "/jobs/acme:private")
        page.get_by_text("waiting for job acme:private").wait_for()
        assert "private operation" not in page.content()

        clock.advance(601)
        page.goto(site.url + "/jobs/acme:shared")
        page.locator("form.jobwatch-token").wait_for()
        assert page.locator(".jobwatch-token-why", has_text="refused").count() == 1
