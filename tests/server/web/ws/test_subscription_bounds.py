"""What one WebSocket's subscriptions may hold: repeated subscriptions to one job are
one, each socket's subscriptions are capped, every queued item counts its cost."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobwatch.server import EmbeddedServer
from jobwatch.server.core.ws_session import JobStream
from jobwatch.server.web.ws.items import ITEM_COST, Start, size
from jobwatch.server.web.ws.session import MAX_JOB_SUBSCRIPTIONS, Session
from tests.conftest import Api, WsClient, wait_for


def _frame(body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


@pytest.fixture
def deaf(server: EmbeddedServer) -> Iterator[socket.socket]:
    """A WebSocket that never reads past its handshake (4 KiB receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    yield sock
    sock.close()


def _session(server: EmbeddedServer) -> Session:
    wait_for(lambda: len(server.services.sessions) == 1)
    (session,) = list(server.services.sessions)
    assert isinstance(session, Session)
    return session


def test_repeated_subscriptions_to_one_job_queue_one_start(
    server: EmbeddedServer, api: Api, deaf: socket.socket
) -> None:
    for i in range(6):
        api.put(f"/api/jobs/big{i}", json={})
        body = {"workerId": "w", "result": "r" * 1_000_000}
        api.post(f"/api/jobs/big{i}/complete", json=body)
    api.put("/api/jobs/probe", json={})
    # 6 MB of replays: more than the socket buffers hold, so the sender waits
    for i in range(6):
        deaf.sendall(_frame({"type": "subscribe:job", "subscriptionId": f"big{i}", "since": 0}))
    for _ in range(300):
        deaf.sendall(_frame({"type": "subscribe:job", "subscriptionId": "big5", "since": 0}))
    deaf.sendall(_frame({"type": "subscribe:job", "subscriptionId": "probe"}))
    # messages are handled in order: once the probe is subscribed, all were
    wait_for(lambda: server.services.broker.subscriber_count("probe") == 1)
    session = _session(server)
    # at most one start per job (6 + the probe) and a frame's rest
    assert session.queued_items() <= 8
    assert session.subscription_count() == 7


def test_a_queued_start_counts_its_cost() -> None:
    assert size(Start(JobStream("j", 1024, 8 << 20), since=0)) == ITEM_COST > 0


def test_each_socket_holds_at_most_the_documented_subscriptions(
    server: EmbeddedServer, api: Api, ws_factory: Callable[[], WsClient]
) -> None:
    for i in range(MAX_JOB_SUBSCRIPTIONS + 2):
        api.put(f"/api/jobs/j{i}", json={})
    ws = ws_factory()
    for i in range(MAX_JOB_SUBSCRIPTIONS):
        assert ws.subscribe(f"j{i}")["type"] == "subscribed"
    refused = ws.subscribe(f"j{MAX_JOB_SUBSCRIPTIONS}")
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "too_many_subscriptions"
    assert refused["subscriptionId"] == f"j{MAX_JOB_SUBSCRIPTIONS}"
    assert str(MAX_JOB_SUBSCRIPTIONS) in refused["error"]["message"]
    # subscribing again to one already held is no new subscription
    assert ws.subscribe("j0")["type"] == "subscribed"
    # and unsubscribing makes room
    ws.send({"type": "unsubscribe:job", "subscriptionId": "j1"})
    assert ws.recv()["type"] == "unsubscribed"
    assert ws.subscribe(f"j{MAX_JOB_SUBSCRIPTIONS}")["type"] == "subscribed"
