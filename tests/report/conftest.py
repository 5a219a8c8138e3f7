"""What the Reporter tests share: one real server per module, a client of it,
reporters that are closed (and their threads checked gone) after each test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import wait_for


@pytest.fixture(scope="module")
def module_server() -> Iterator[EmbeddedServer]:
    """An embedded server (SQLite in memory) for one test module: each test uses its own job."""
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    yield srv
    srv.stop()


@pytest.fixture
def client(module_server: EmbeddedServer) -> Iterator[Client]:
    """A client of ``module_server``, closed after the test."""
    with Client(module_server.url) as c:
        yield c


@pytest.fixture
def job_id() -> str:
    """A fresh job id per test (the server lives as long as the module)."""
    return f"job-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_reporter(module_server: EmbeddedServer) -> Iterator[Callable[..., Reporter]]:
    """Reporters on the module's server (gpu off, fast interval; a fresh job id unless
    one is given); closed after the test, and their threads checked gone."""
    made: list[Reporter] = []

    def make(job_id: str | None = None, **kwargs: Any) -> Reporter:
        kwargs.setdefault("url", module_server.url)
        kwargs.setdefault("gpu", False)
        kwargs.setdefault("interval", 0.05)
        reporter = Reporter(job_id or f"job-{uuid.uuid4().hex[:10]}", **kwargs)
        made.append(reporter)
        return reporter

    yield make
    for reporter in made:
        reporter.close(timeout=5)
    names = {f"jobwatch-reporter-{r.job_id}" for r in made}
    wait_for(lambda: not names & {t.name for t in threading.enumerate()}, 15)


def all_logs(client: Client, job_id: str) -> list[dict[str, Any]]:
    """Every stored log line of ``job_id``, oldest first (page by page)."""
    logs: list[dict[str, Any]] = []
    while True:
        page = client.logs(job_id, limit=1000, offset=len(logs))
        logs += page["logs"]
        if len(logs) >= page["total"]:
            return logs


def log_messages(client: Client, job_id: str) -> list[str]:
    """The messages of every stored log line of ``job_id``, oldest first."""
    return [line["message"] for line in all_logs(client, job_id)]
