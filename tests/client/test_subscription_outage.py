"""``Client.subscribe()`` and the follower through a database outage: the
server's 503 ``store_unavailable`` is a retry, not the end of the stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jobwatch import Client
from jobwatch.server import EmbeddedServer
from jobwatch.view.follow import JobFollower
from tests.faults import PrivatePostgres, private_postgres_problem

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        private_postgres_problem() is not None, reason=str(private_postgres_problem())
    ),
]


@pytest.fixture
def outage() -> Iterator[tuple[PrivatePostgres, EmbeddedServer]]:
    postgres = PrivatePostgres()
    server = EmbeddedServer(config={"DATABASE": postgres.url, "DATABASE_TIMEOUT": 2.0})
    try:
        yield postgres, server
    finally:
        server.stop()
        postgres.close()


def post(server: EmbeddedServer, job_id: str, progress: float) -> int:
    body = {"workerId": "w", "progress": progress}
    url = f"{server.url}/api/jobs/{job_id}/progress"
    return requests.post(url, json=body, timeout=60).status_code


def test_subscribe_retries_while_the_database_is_down(
    outage: tuple[PrivatePostgres, EmbeddedServer],
) -> None:
    postgres, server = outage
    client = Client(server.url)
    job_id = client.create_job(worker_id="w")["id"]
    postgres.stop()
    events: list[Any] = []
    ended: list[BaseException | None] = []
    subscription = client.subscribe(job_id, since=0)

    def read() -> None:
        try:
            for event in subscription:
                events.append(event)
            ended.append(None)
        except BaseException as exc:  # what the old client raised: the test reports it
            ended.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while subscription.reconnects == 0 and subscription.state != "reconnecting":
            assert not ended, f"the stream ended: {ended[0]!r}"
            assert time.monotonic() < deadline, subscription.state
            time.sleep(0.1)
        assert not ended, f"the stream ended: {ended[0]!r}"
        postgres.start()
        deadline = time.monotonic() + 60
        while post(server, job_id, 10) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        while not any(e["type"] == "JOB_PROGRESS" for e in events):
            assert not ended, f"the stream ended: {ended[0]!r}"
            assert time.monotonic() < deadline, "the event never came"
            time.sleep(0.1)
    finally:
        subscription.close()
        reader.join(10)
        client.close()


def test_the_follower_waits_for_the_database(
    outage: tuple[PrivatePostgres, EmbeddedServer],
) -> None:
    postgres, server = outage
    client = Client(server.url)
    job_id = client.create_job(worker_id="w")["id"]
    postgres.stop()
    follower = JobFollower(client, job_id, wait=False)  # raised StoreUnavailable before
    try:
        assert follower.state.connection == "reconnecting"
        postgres.start()
        deadline = time.monotonic() + 60
        while post(server, job_id, 10) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        follower.close()
        client.close()
