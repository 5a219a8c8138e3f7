"""PostgreSQL going away: every request gets 503 ``store_unavailable`` with
Retry-After (never a 500 or a broken WebSocket), nothing stored is lost, and the
server recovers by itself when the database is back.

The database is the real test PostgreSQL behind a TCP proxy the test cuts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import WsClient
from tests.services import CuttableProxy, fresh_channel, fresh_schema, scale_urls

pytestmark = pytest.mark.slow


@pytest.fixture
def outage() -> Iterator[tuple[EmbeddedServer, CuttableProxy]]:
    postgres, redis_url = scale_urls()
    parts = urlsplit(postgres)
    proxy = CuttableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        with fresh_schema(postgres) as database:
            config = {
                "DATABASE": proxy.url_for(database),
                "REDIS_URL": redis_url,
                "REDIS_CHANNEL": fresh_channel(),
            }
            server = EmbeddedServer(config=config)
            try:
                yield server, proxy
            finally:
                proxy.restore()
                server.stop()
    finally:
        proxy.close()


def post(server: EmbeddedServer, job_id: str, progress: float) -> requests.Response:
    body = {
        "workerId": "w",
        "progress": progress,
        "logLines": [{"level": "info", "message": f"at {progress}"}],
    }
    return requests.post(f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=30)


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "store_unavailable"
    assert error["message"] == "the database is unavailable; nothing was written, retry shortly"
    assert int(response.headers["Retry-After"]) >= 1


def test_a_database_outage_answers_503_and_recovers_without_loss(
    outage: tuple[EmbeddedServer, CuttableProxy], caplog: pytest.LogCaptureFixture
) -> None:
    server, proxy = outage
    job_id = requests.post(f"{server.url}/api/jobs", json={}, timeout=10).json()["job"]["id"]
    assert post(server, job_id, 10).status_code == 200

    proxy.cut()
    caplog.clear()
    for _ in range(5):
        assert_unavailable(post(server, job_id, 20))
    assert_unavailable(requests.get(f"{server.url}/api/jobs/{job_id}", timeout=30))
    assert_unavailable(requests.get(f"{server.url}/api/jobs/{job_id}/logs", timeout=30))
    assert_unavailable(requests.post(f"{server.url}/api/jobs", json={}, timeout=30))

    ws = WsClient(server.ws_url)
    try:
        refused = ws.subscribe(job_id)
        assert refused["type"] == "error"
        assert refused["subscriptionId"] == job_id
        assert refused["error"]["code"] == "store_unavailable"

        proxy.restore()
        deadline = time.monotonic() + 20
        while (answer := post(server, job_id, 30)).status_code == 503:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        # the same WebSocket still works: the outage did not break it
        assert ws.subscribe(job_id, since=0)["type"] == "subscribed"
    finally:
        ws.close()
    logs = requests.get(f"{server.url}/api/jobs/{job_id}/logs", timeout=10).json()["logs"]
    assert [line["message"] for line in logs] == ["at 10", "at 30"]
    # an outage is one warning in the log, not a traceback per request
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    warnings = [r for r in caplog.records if "database is unavailable" in r.getMessage()]
    assert 1 <= len(warnings) <= 2
