"""Log line ids: the ids a stream's events carry are the ids the store keeps,
however the group commit batches the lines of many concurrent updates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jobwatch import Client
from jobwatch.server import EmbeddedServer

JOBS = 3
POSTERS = 12
UPDATES = 10
LINES = 3


@pytest.fixture(params=["memory", "file"])
def store_server(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[EmbeddedServer]:
    database = ":memory:" if request.param == "memory" else str(tmp_path / "logs.db")
    server = EmbeddedServer(config={"DATABASE": database, "STALL_CHECK_INTERVAL": 0})
    yield server
    server.stop()


def test_event_line_ids_are_the_stored_ids_under_concurrent_posts(
    store_server: EmbeddedServer,
) -> None:
    url = store_server.url
    client = Client(url)
    jobs = [client.create_job(name=f"logs {k}")["id"] for k in range(JOBS)]
    seen: dict[str, dict[int, str]] = {job: {} for job in jobs}
    live = [threading.Event() for _ in jobs]

    def on_state(k: int) -> Any:
        return lambda state: live[k].set() if state == "live" else None

    # live before the first post: every line comes as it is written, none replayed
    subscriptions = [client.subscribe(job, on_state=on_state(k)) for k, job in enumerate(jobs)]

    def read(job: str, subscription: Any) -> None:
        for event in subscription:
            if event["type"] == "JOB_LOGS":
                for line in event["data"]["logs"]:
                    seen[job][line["id"]] = line["message"]
            if len(seen[job]) >= POSTERS * UPDATES * LINES // JOBS:
                return

    readers = [
        threading.Thread(target=read, args=(job, sub), daemon=True)
        for job, sub in zip(jobs, subscriptions, strict=True)
    ]
    for reader in readers:
        reader.start()

    def post(poster: int) -> None:
        with requests.Session() as session:
            for i in range(UPDATES):
                job = jobs[(poster + i) % JOBS]
                body = {
                    "workerId": "w",
                    "progress": 1 + i,
                    "logLines": [
                        {"level": "info", "message": f"p{poster} u{i} l{k}"} for k in range(LINES)
                    ],
                }
                answer = session.post(f"{url}/api/jobs/{job}/progress", json=body, timeout=30)
                if answer.status_code != 200:
                    errors.append(answer.text)
                    return

    assert all(event.wait(10) for event in live)
    errors: list[str] = []
    posters = [threading.Thread(target=post, args=(p,)) for p in range(POSTERS)]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join(60)
    assert not errors, errors[0]
    deadline = time.monotonic() + 20
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
    for subscription in subscriptions:
        subscription.close()
    assert sum(map(len, seen.values())) == POSTERS * UPDATES * LINES
    for job in jobs:
        stored = client.logs(job, limit=1000)["logs"]
        assert {line["id"]: line["message"] for line in stored} == seen[job]
    client.close()
