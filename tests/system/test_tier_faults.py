"""The scale-out tier under real faults: PostgreSQL frozen (SIGSTOP) or
silently partitioned, Redis silently partitioned from one server process, a
gunicorn worker killed while PostgreSQL is down.

Every service here is the test's own (tests/faults.py), on loopback; the
machine's shared PostgreSQL and Redis are never touched. The servers run as
shipped (``jobwatch serve``: gunicorn, gevent) with short timeouts, so a fault
is seen within a few seconds; the requests' own timeouts are far longer, so a
hang fails the test instead of passing as slow.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import websocket

from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.faults import (
    PartitionProxy,
    PrivatePostgres,
    PrivateRedis,
    private_postgres_problem,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        private_postgres_problem() is not None, reason=str(private_postgres_problem())
    ),
]

TIMEOUT = "2"
"""--database-timeout and --redis-timeout of the servers under test (seconds)."""
HANG = 60
"""Seconds a request may take before the test calls it a hang."""


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.close()


def serve(database: str, *extra: str) -> ServerProcess:
    return ServerProcess(serve_command(database, "--database-timeout", TIMEOUT, *extra))


def post(url: str, job_id: str, progress: float) -> requests.Response:
    body = {"workerId": "w", "progress": progress}
    return requests.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=HANG)


def new_job(url: str) -> str:
    answer = requests.post(f"{url}/api/jobs", json={"workerId": "w"}, timeout=HANG)
    job_id: str = answer.json()["job"]["id"]
    return job_id


def assert_unavailable(response: requests.Response, code: str = "store_unavailable") -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == code
    assert float(response.headers["Retry-After"]) >= 1


def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s"
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["frozen", "partitioned"])
def test_a_frozen_or_partitioned_postgres_answers_503_then_recovers(
    postgres: PrivatePostgres, fault: str
) -> None:
    proxy = PartitionProxy(("127.0.0.1", postgres.port)) if fault == "partitioned" else None
    database = postgres.url if proxy is None else proxy.url_for(postgres.url, postgres.port)
    server = serve(database)
    try:
        job_id = new_job(server.url)
        assert post(server.url, job_id, 10).status_code == 200
        assert requests.get(f"{server.url}/api/ready", timeout=HANG).status_code == 200

        postgres.freeze() if proxy is None else proxy.partition()
        assert_unavailable(post(server.url, job_id, 20))
        assert_unavailable(requests.get(f"{server.url}/api/jobs/{job_id}", timeout=HANG))
        assert_unavailable(requests.get(f"{server.url}/api/ready", timeout=HANG))
        assert requests.get(f"{server.url}/api/health", timeout=HANG).status_code == 200

        postgres.thaw() if proxy is None else proxy.heal()
        eventually(lambda: post(server.url, job_id, 30).status_code == 200)
        assert requests.get(f"{server.url}/api/ready", timeout=HANG).status_code == 200
        output = server.output()
    finally:
        server.kill()
        if proxy is not None:
            proxy.close()
    assert "Traceback" not in output
    assert "requests answer 503" in output or "database is unavailable" in output


def test_a_worker_killed_while_postgres_is_down_serves_again_when_it_returns(
    postgres: PrivatePostgres,
) -> None:
    server = serve(postgres.url)
    try:
        job_id = new_job(server.url)
        postgres.stop()
        master = psutil.Process(server.pid)
        (worker,) = master.children()
        worker.kill()
        # the master starts a new worker, which boots without its database
        eventually(lambda: [w.pid for w in master.children()] not in ([], [worker.pid]))
        eventually(lambda: _status(f"{server.url}/api/health") == 200)
        assert server.proc.poll() is None
        assert_unavailable(requests.get(f"{server.url}/api/ready", timeout=HANG))
        assert_unavailable(post(server.url, job_id, 10))

        postgres.start()
        eventually(lambda: post(server.url, job_id, 20).status_code == 200)
        assert _status(f"{server.url}/api/ready") == 200
    finally:
        server.kill()


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


class Viewer:
    """A WebSocket subscriber to one job, collecting its progress values."""

    def __init__(self, ws_url: str, job_id: str) -> None:
        self.progress: list[float] = []
        self._ws = websocket.create_connection(ws_url, timeout=HANG)
        self._ws.settimeout(1)
        self._ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": job_id}))
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.subscribed.wait(HANG)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                message: dict[str, Any] = json.loads(self._ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError, ValueError):
                return
            if message.get("type") == "subscribed":
                self.subscribed.set()
            if message.get("type") == "JOB_PROGRESS":
                self.progress.append(message["data"]["progress"])

    def close(self) -> None:
        self._stop.set()
        self._ws.close()
        self._thread.join(5)


def test_a_silently_partitioned_redis_is_logged_and_viewers_follow_from_the_database(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    redis = PrivateRedis(tmp_path)
    proxy = PartitionProxy(("127.0.0.1", redis.port))
    cut_off = proxy.url_for(redis.url, redis.port)
    timeouts = ("--redis-timeout", TIMEOUT)
    writer = serve(postgres.url, "--redis-url", redis.url, *timeouts)
    watched = serve(postgres.url, "--redis-url", cut_off, *timeouts)
    viewer = None
    try:
        job_id = new_job(writer.url)
        viewer = Viewer(watched.ws_url, job_id)
        assert post(writer.url, job_id, 1).status_code == 200
        eventually(lambda: 1 in viewer.progress)

        proxy.partition()
        progress = 2.0

        def delivered_meanwhile() -> bool:
            nonlocal progress
            progress += 1
            assert post(writer.url, job_id, progress).status_code == 200
            return any(2 < p <= progress for p in viewer.progress)

        eventually(delivered_meanwhile)
        eventually(lambda: "lost the Redis subscription" in watched.output())
        answer = requests.get(f"{watched.url}/api/ready", timeout=HANG)
        assert_unavailable(answer, "broker_unavailable")

        proxy.heal()
        eventually(lambda: "Redis subscription restored" in watched.output())
        assert _status(f"{watched.url}/api/ready") == 200
        progress += 1
        assert post(writer.url, job_id, progress).status_code == 200
        eventually(lambda: progress in viewer.progress)
        output = watched.output()
    finally:
        if viewer is not None:
            viewer.close()
        writer.kill()
        watched.kill()
        proxy.close()
        redis.stop()
    assert "Traceback" not in output
