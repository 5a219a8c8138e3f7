"""The web pages as files: served at their routes with their headers, loadable
without a token (which they then ask for), and shipped in the wheel."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobwatch.contract.job_fields import VIEWED_FIELDS
from jobwatch.contract.metrics import METRIC_FIELDS
from jobwatch.server import EmbeddedServer
from jobwatch.server.web.pages import (
    STATIC,
    WIDGET_FILES,
    WIDGETS_STATIC,
    job_fields_module,
    metrics_module,
)
from tests.conftest import Api
from tests.paths import REPO

TOKEN = "page-token-0123456789"


@pytest.fixture
def locked() -> Iterator[Api]:
    """A server that needs a token."""
    with EmbeddedServer(config={"WRITE_TOKEN": TOKEN, "STALL_CHECK_INTERVAL": 0}) as server:
        yield Api(server.url)


@pytest.mark.parametrize("path", ["/", "/jobs/resnet-1", "/jobs/no-such-job"])
def test_pages_are_html_with_a_strict_content_security_policy(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "'unsafe-inline'" not in policy  # no inline script or style can run
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert '<script type="module"' in response.text


def test_every_static_file_is_served_as_it_is_in_the_package(api: Api) -> None:
    files = [path for path in STATIC.rglob("*") if path.is_file()]
    assert len(files) > 10
    for path in files:
        response = api.get(f"/assets/{path.relative_to(STATIC).as_posix()}")
        assert response.status_code == 200, path
        assert response.content == path.read_bytes(), path
    assert api.get("/assets/job.js").headers["Content-Type"].startswith("text/javascript")


def test_the_log_view_is_the_notebooks_own_file(api: Api) -> None:
    for name in WIDGET_FILES:
        response = api.get(f"/assets/widgets/{name}")
        assert response.status_code == 200
        assert response.content == (WIDGETS_STATIC / name).read_bytes()


def test_the_job_pages_field_list_is_written_from_the_job_table(api: Api) -> None:
    response = api.get("/assets/job_fields.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Content-Security-Policy"]
    assert response.text == job_fields_module()
    assert f"export const JOB_FIELDS = {json.dumps(list(VIEWED_FIELDS))};" in response.text
    assert not (STATIC / "job_fields.js").exists()  # no copy to fall behind the table


def test_the_job_pages_metric_list_is_written_from_the_metrics_table(api: Api) -> None:
    response = api.get("/assets/metrics.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.text == metrics_module()
    prefix = "export const METRICS = "
    [line] = [line for line in response.text.splitlines() if line.startswith(prefix)]
    entries = json.loads(line.removeprefix(prefix).rstrip(";"))
    assert [e["wire"] for e in entries] == list(METRIC_FIELDS)
    assert {e["wire"]: e["scope"] for e in entries}["cpuUtilization"] == "system"
    assert {e["wire"]: e["atMost"] for e in entries}["memoryUsed"] == "memoryTotal"
    assert not (STATIC / "metrics.js").exists()


@pytest.mark.parametrize(
    "path", ["/assets/widgets/logview.py", "/assets/widgets/../pages.py", "/assets/nothing.js"]
)
def test_other_paths_are_not_found_with_the_error_envelope(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_page_cannot_be_posted_to(api: Api) -> None:
    response = api.post("/", json={})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_with_a_token_the_pages_load_but_the_data_stays_locked(locked: Api) -> None:
    for path in ["/", "/jobs/x", "/assets/api.js", "/assets/widgets/logview.js"]:
        assert locked.get(path).status_code == 200, path
    for path in ["/api/jobs", "/api/jobs/x/monitor", "/nothing"]:
        response = locked.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert locked.get("/api/jobs", headers=headers).status_code == 200


def test_the_wheel_ships_every_page_file(tmp_path: Path) -> None:
    """Built with the project's own backend and settings (pyproject's hatch config)."""
    from hatchling.builders.wheel import WheelBuilder

    wheel = next(
        iter(WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"]))
    )
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    needed = [
        path.relative_to(REPO).as_posix()
        for folder in (STATIC, WIDGETS_STATIC)
        for path in folder.rglob("*")
        if path.is_file()
    ]
    assert "jobwatch/server/web/static/vendor/uplot/uPlot.iife.min.js" in needed
    assert "jobwatch/server/web/static/vendor/uplot/LICENSE" in needed
    assert [path for path in needed if path not in shipped] == []
