"""A busy server paces its workers: progress answers carry ``minInterval``, which the
Reporter obeys (docs/api.md "Progress")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from jobwatch import Client, Reporter
from jobwatch.server import EmbeddedServer


@pytest.fixture
def busy() -> Iterator[EmbeddedServer]:
    """A server that is busy from its first update (above 0.5 a second) and asks for 7 s."""
    srv = EmbeddedServer(
        config={
            "DATABASE": ":memory:",
            "STALL_CHECK_INTERVAL": 0,
            "PACE_ABOVE": 0.5,
            "PACE_INTERVAL": 7.0,
        }
    )
    yield srv
    srv.stop()


def _post(url: str, job: str) -> requests.Response:
    return requests.post(
        f"{url}/api/jobs/{job}/progress", json={"workerId": "w", "progress": 10}, timeout=10
    )


def test_a_busy_server_answers_progress_with_min_interval(busy: EmbeddedServer) -> None:
    with Client(busy.url) as client:
        client.create_job(job_id="j")
    answer = _post(busy.url, "j")
    assert answer.status_code == 200
    assert answer.json()["minInterval"] == 7.0
    assert answer.json()["progress"] == 10  # the update itself was applied


def test_a_server_that_is_not_busy_leaves_it_out(server: EmbeddedServer, client: Client) -> None:
    client.create_job(job_id="j")
    for _ in range(3):
        answer = _post(server.url, "j")
        assert answer.status_code == 200 and "minInterval" not in answer.json()


def test_the_reporter_takes_the_pace_from_the_answer(busy: EmbeddedServer) -> None:
    with Reporter("paced", url=busy.url, gpu=False) as reporter:
        reporter.update(5.0, "step")
        assert reporter.flush(timeout=10)
        assert reporter._sender._policy.paced == 7.0
        assert reporter._sender._policy.spacing == 7.0
