"""One server per module (EmbeddedServer.stop() takes about 0.5 s), a fresh job id
per test, and every ``api`` answer checked for strict JSON and the error envelope.

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


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    """Shared by a module's tests, so they use it relatively."""
    return FakeClock()


@pytest.fixture(scope="module")
def server(clock: FakeClock) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:", "CLOCK": clock})
    yield srv
    srv.stop()


@pytest.fixture
def job_id() -> str:
    """A fresh job id per test (the server lives as long as the module)."""
    return f"job-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _strict_answers(api: Any) -> None:
    api.session.hooks["response"].append(check_answer)
