"""Several server processes on one PostgreSQL and one Redis act as one server.

Real ``jobwatch serve`` processes (gunicorn + gevent, as shipped), real
PostgreSQL and Redis (``tests/services.py``), real WebSocket connections.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.conftest import WsClient
from tests.services import fresh_channel, fresh_schema, scale_urls

pytestmark = pytest.mark.slow

THREADS = 4
POSTS_PER_THREAD = 40


@pytest.fixture
def pair() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two ``jobwatch serve`` processes sharing a fresh schema and a fresh channel."""
    postgres, redis_url = scale_urls()
    with fresh_schema(postgres) as database:
        env = {"JOBWATCH_REDIS_CHANNEL": fresh_channel()}
        command = serve_command(database, "--redis-url", redis_url)
        a = ServerProcess(command, env=env)
        try:
            b = ServerProcess(command, env=env)
        except BaseException:
            a.kill()
            raise
        try:
            yield a, b
        finally:
            a.kill()
            b.kill()


def post(url: str, job_id: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=30)


def log_messages(events: list[dict[str, Any]]) -> list[str]:
    return [
        line["message"] for e in events if e["type"] == "JOB_LOGS" for line in e["data"]["logs"]
    ]


def receive_until_seq(ws: WsClient, seq: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Events from ``ws`` until one with ``seq`` or more arrives."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["seq"] < seq:
        events.append(ws.recv(timeout))
    return events


def post_concurrently(urls: list[str], job_id: str) -> None:
    """THREADS workers' threads, alternating between ``urls``, each posting its own numbered lines."""
    errors: list[str] = []

    def work(thread: int) -> None:
        url = urls[thread % len(urls)]
        for i in range(POSTS_PER_THREAD):
            body = {
                "workerId": "w",
                "progress": i * 100 / POSTS_PER_THREAD,
                "logLines": [{"level": "info", "message": f"t{thread}-{i:03d}"}],
            }
            r = post(url, job_id, body)
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]


def check_complete_and_ordered(events: list[dict[str, Any]]) -> None:
    """Seqs strictly increase, every line arrives exactly once, each thread's lines in order."""
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "events out of order or repeated"
    messages = log_messages(events)
    assert len(messages) == len(set(messages)) == THREADS * POSTS_PER_THREAD
    for thread in range(THREADS):
        mine = [m for m in messages if m.startswith(f"t{thread}-")]
        assert mine == sorted(mine)


def test_subscriber_on_one_process_gets_every_event_posted_to_either_in_seq_order(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    job = requests.post(f"{a.url}/api/jobs", json={"name": "shared"}, timeout=10).json()["job"]
    ws = WsClient(a.ws_url)
    try:
        assert ws.subscribe(job["id"])["seq"] == 0
        post_concurrently([a.url, b.url], job["id"])
        total = THREADS * POSTS_PER_THREAD * 2  # one progress + one logs event per post
        events = receive_until_seq(ws, total)
    finally:
        ws.close()
    check_complete_and_ordered(events)
    assert events[-1]["seq"] == total
    # seq is gap-free across the two writers: the stored job counts every event
    for server in pair:
        stored = requests.get(f"{server.url}/api/jobs/{job['id']}", timeout=10).json()["job"]
        assert stored["seq"] == total


def test_since_replay_is_the_same_on_either_process(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    job = requests.post(f"{b.url}/api/jobs", json={}, timeout=10).json()["job"]
    post_concurrently([a.url, b.url], job["id"])
    replays = []
    for server in pair:
        ws = WsClient(server.ws_url)
        try:
            ack = ws.subscribe(job["id"], since=100)
            replays.append(receive_until_seq(ws, ack["seq"]))
        finally:
            ws.close()
    assert replays[0] == replays[1]
    messages = log_messages(replays[0])
    assert len(messages) == len(set(messages)) > 0
    assert all(e["seq"] > 100 for e in replays[0])


def test_subscribers_of_a_killed_process_resume_on_another_without_loss(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    job_id = requests.post(f"{b.url}/api/jobs", json={}, timeout=10).json()["job"]["id"]
    ws = WsClient(a.ws_url)
    ws.subscribe(job_id)

    def line(i: int) -> None:
        body = {
            "workerId": "w",
            "progress": i,
            "logLines": [{"level": "info", "message": f"line {i}"}],
        }
        assert post(b.url, job_id, body).status_code == 200

    for i in range(10):
        line(i)
    before = receive_until_seq(ws, 20)
    a.kill()  # SIGKILL: its subscriber's connection drops without a close frame
    ws.close()
    for i in range(10, 20):  # posted while the subscriber has no connection
        line(i)
    resumed = WsClient(b.ws_url)
    try:
        resumed.subscribe(job_id, since=before[-1]["seq"])
        for i in range(20, 25):
            line(i)
        after = receive_until_seq(resumed, 50)
    finally:
        resumed.close()
    assert log_messages(before + after) == [f"line {i}" for i in range(25)]
    seqs = [e["seq"] for e in before + after]
    assert seqs == sorted(set(seqs))
