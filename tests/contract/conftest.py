"""One server per module and backend (EmbeddedServer.stop() takes about 0.5 s), a
fresh job id per test, and every ``api`` answer checked for strict JSON and the
error envelope. Each module runs on SQLite and again on PostgreSQL + Redis.

``clock`` and ``server`` here override the per-test ones of tests/conftest.py;
``api``, ``ws_factory`` and ``make_job`` from there then use this module's server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock
from tests.contract.helpers import check_answer
from tests.services import fresh_channel, fresh_schema, scale_urls


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every contract test runs twice: on the embedded default (SQLite in memory,
    in-process broker) and on the scale-out tier (PostgreSQL store, Redis broker)."""
    return str(request.param)


@pytest.fixture(scope="module")
def clock(backend: str) -> FakeClock:
    """Shared by a module's tests on one backend, so they use it relatively."""
    return FakeClock()


@pytest.fixture(scope="module")
def server(backend: str, clock: FakeClock) -> Iterator[EmbeddedServer]:
    if backend == "sqlite":
        srv = EmbeddedServer(
            config={"DATABASE": ":memory:", "CLOCK": clock, "STALL_CHECK_INTERVAL": 0}
        )
        yield srv
        srv.stop()
        return
    postgres, redis_url = scale_urls()
    with fresh_schema(postgres) as database:
        config = {
            "DATABASE": database,
            "REDIS_URL": redis_url,
            "REDIS_CHANNEL": fresh_channel(),
            "CLOCK": clock,
            "STALL_CHECK_INTERVAL": 0,  # tests mark stalls themselves, on the fake clock
        }
        srv = EmbeddedServer(config=config)
        yield srv
        srv.stop()


@pytest.fixture
def job_id() -> str:
    """A fresh job id per test (the server lives as long as the module)."""
    return f"job-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def job(api: Any, job_id: str, request: pytest.FixtureRequest) -> str:
    """``job_id``, created; priced at the test module's ``PRICE`` (per hour) where it has one."""
    fields: dict[str, Any] = {"id": job_id}
    price = getattr(request.module, "PRICE", None)
    if price is not None:
        fields["pricePerHour"] = price
    assert api.post("/api/jobs", json=fields).status_code == 201
    return job_id


@pytest.fixture(autouse=True)
def _strict_answers(request: pytest.FixtureRequest) -> None:
    """Every answer a test reads through ``api`` is checked (strict JSON, the error
    envelope). Asked for by name, not as a parameter: a test that uses no backend's
    server (pure validators, a server of its own) then runs once, not once per backend."""
    if "api" in request.fixturenames:
        request.getfixturevalue("api").session.hooks["response"].append(check_answer)
