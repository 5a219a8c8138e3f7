"""The Redis broker's repairs: events published out of order, lost between
processes, or sent while Redis is down still reach subscribers complete and in
seq order.

Two in-process servers share a fresh PostgreSQL schema and a Redis channel;
faults are injected where they happen in production (a process slow or dead
between its commit and its publish; the Redis server itself stopping).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import requests

from jobwatch.server import EmbeddedServer
from jobwatch.server.core.serialize import Event
from jobwatch.server.events.redis_broker import RedisBroker
from tests.conftest import WsClient, free_port
from tests.faults import PrivateRedis
from tests.services import fresh_channel, fresh_schema, scale_urls

pytestmark = pytest.mark.slow


def start_pair(database: str, redis_url: str) -> tuple[EmbeddedServer, EmbeddedServer]:
    config = {"DATABASE": database, "REDIS_URL": redis_url, "REDIS_CHANNEL": fresh_channel()}
    return EmbeddedServer(config=config), EmbeddedServer(config=config)


@pytest.fixture
def database() -> Iterator[str]:
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        yield url


@pytest.fixture
def pair(database: str) -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    _, redis_url = scale_urls()
    a, b = start_pair(database, redis_url)
    yield a, b
    a.stop()
    b.stop()


def progress(server: EmbeddedServer, job_id: str, value: float, line: str) -> None:
    body = {"workerId": "w", "progress": value, "logLines": [{"level": "info", "message": line}]}
    r = requests.post(f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=10)
    assert r.status_code == 200, r.text


def new_job(server: EmbeddedServer) -> str:
    r = requests.post(f"{server.url}/api/jobs", json={}, timeout=10)
    job_id: str = r.json()["job"]["id"]
    return job_id


def events_until(ws: WsClient, seq: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    events = [ws.recv(timeout)]
    while events[-1]["seq"] < seq:
        events.append(ws.recv(timeout))
    return events


def reroute(server: EmbeddedServer, publish: Callable[[list[Event]], None]) -> None:
    """Make ``server``'s committed events go to ``publish`` instead of straight to Redis."""
    server.services.store.set_publisher(publish)


def test_an_event_published_late_by_one_process_is_delivered_before_later_ones(
    pair: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    a, b = pair
    job_id = new_job(a)
    broker = a.services.broker
    reroute(a, lambda events: threading.Timer(0.3, broker.publish, [events]).start())
    ws = WsClient(b.ws_url)
    try:
        ws.subscribe(job_id)
        progress(a, job_id, 10, "from a")  # seq 1, 2: committed now, published 0.3 s later
        progress(b, job_id, 20, "from b")  # seq 3, 4: published at once
        events = events_until(ws, 4)
    finally:
        ws.close()
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert events[0]["data"]["progress"] == 10  # the real event, not a store read
    assert [e["data"]["logs"][0]["message"] for e in events[1::2]] == ["from a", "from b"]


def test_an_event_never_published_is_read_from_the_store(
    pair: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    a, b = pair
    job_id = new_job(a)
    reroute(a, lambda events: None)  # a dies between its commit and its publish
    ws = WsClient(b.ws_url)
    try:
        ws.subscribe(job_id)
        progress(a, job_id, 10, "lost in transit")  # seq 1 (progress), 2 (logs)
        progress(b, job_id, 20, "published")  # seq 3, 4
        started = time.monotonic()
        events = events_until(ws, 4)
        waited = time.monotonic() - started
    finally:
        ws.close()
    # seq 1 was a progress event already superseded by seq 3: replay skips it
    assert [e["seq"] for e in events] == [2, 3, 4]
    assert events[0]["data"]["logs"][0]["message"] == "lost in transit"
    assert waited < 5


def test_events_sent_while_redis_is_down_reach_subscribers_when_it_is_back(
    database: str, private_redis: PrivateRedis
) -> None:
    a, b = start_pair(database, private_redis.url)
    ws = WsClient(a.ws_url)
    try:
        job_id = new_job(b)
        ws.subscribe(job_id)
        progress(b, job_id, 10, "before the outage")
        assert events_until(ws, 2)[-1]["seq"] == 2

        private_redis.stop()
        started = time.monotonic()
        for i in range(5):  # writes are stored although no event can be published
            progress(b, job_id, 20 + i, f"during the outage {i}")
        assert time.monotonic() - started < 5

        private_redis.start()
        events = events_until(ws, 12, timeout=20)
        progress(b, job_id, 90, "after the outage")
        events += events_until(ws, 14)
    finally:
        ws.close()
        a.stop()
        b.stop()
    lines = [
        line["message"] for e in events if e["type"] == "JOB_LOGS" for line in e["data"]["logs"]
    ]
    assert lines == [f"during the outage {i}" for i in range(5)] + ["after the outage"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert events[-2]["data"]["progress"] == 90


def test_after_losing_its_redis_subscription_a_process_resyncs_its_subscribers(
    database: str, private_redis: PrivateRedis
) -> None:
    """Events published while a process was cut off reach its subscribers once
    it reconnects, even when no later event reveals the gap."""
    a, b = start_pair(database, private_redis.url)
    ws = WsClient(a.ws_url)
    try:
        job_id = new_job(b)
        ws.subscribe(job_id)
        reroute(b, lambda events: None)  # what a missed while away never arrives
        progress(b, job_id, 50, "missed while cut off")
        private_redis.stop()
        private_redis.start()
        events = events_until(ws, 2, timeout=20)
    finally:
        ws.close()
        a.stop()
        b.stop()
    assert [e["seq"] for e in events] == [1, 2]
    assert events[1]["data"]["logs"][0]["message"] == "missed while cut off"


def test_a_failed_publish_is_announced_once_redis_answers(
    pair: tuple[EmbeddedServer, EmbeddedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that could not publish tells every process which jobs to resync."""
    a, b = pair
    job_id = new_job(a)
    broker = b.services.broker
    assert isinstance(broker, RedisBroker)
    real_pipeline = broker._redis.pipeline
    failures = [1]

    def flaky_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        if failures:
            failures.pop()

            def fail() -> None:
                raise redis.ConnectionError("injected: connection reset")

            pipe.execute = fail
        return pipe

    monkeypatch.setattr(broker._redis, "pipeline", flaky_pipeline)
    ws = WsClient(a.ws_url)
    try:
        ws.subscribe(job_id)
        progress(b, job_id, 50, "its publish failed")
        events = events_until(ws, 2)
    finally:
        ws.close()
    assert not failures
    assert events[-1]["data"]["logs"][0]["message"] == "its publish failed"


def test_the_broker_starts_without_redis_and_subscribes_once_it_answers(tmp_path: Any) -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    try:
        assert not broker.connected  # a process started during an outage still serves
        redis_server = PrivateRedis(tmp_path, port=port)
        try:
            deadline = time.monotonic() + 30
            while not broker.connected:
                assert time.monotonic() < deadline, "never subscribed"
                time.sleep(0.1)
        finally:
            redis_server.stop()
    finally:
        broker.close()


@pytest.fixture
def private_redis(tmp_path: Any) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()
