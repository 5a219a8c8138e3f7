"""Tenancy across server processes: two ``jobwatch serve`` on one PostgreSQL and
one Redis. A token made through one process works on the other, revoking it
through one ends it on both (its WebSockets too), and two tenants stay apart
whichever process each talks to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.conftest import WsClient
from tests.services import fresh_channel, fresh_schema, scale_urls

pytestmark = pytest.mark.slow

ADMIN = "admin-token-0123456789abcdef"


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """The URLs of two ``jobwatch serve`` processes with an admin token, sharing a
    fresh schema and a fresh channel."""
    postgres, redis_url = scale_urls()
    with fresh_schema(postgres) as database:
        env = {"JOBWATCH_REDIS_CHANNEL": fresh_channel(), "JOBWATCH_TOKEN": ADMIN}
        command = serve_command(database, "--redis-url", redis_url)
        a = ServerProcess(command, env=env)
        try:
            b = ServerProcess(command, env=env)
        except BaseException:
            a.kill()
            raise
        try:
            yield a.url, b.url
        finally:
            a.kill()
            b.kill()


def call(method: str, url: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def make_token(url: str, **body: Any) -> tuple[str, str]:
    answer = call("POST", f"{url}/api/admin/tokens", ADMIN, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]["id"], answer.json()["secret"]


def ws_for(url: str, token: str) -> WsClient:
    return WsClient(url.replace("http://", "ws://") + f"/ws?token={token}")


def closed_for_revocation(ws: WsClient) -> bool:
    ws.conn.settimeout(15)
    while True:
        try:
            opcode, frame = ws.conn.recv_data_frame(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big") == 1008 and b"revoked" in frame.data


def test_two_tenants_stay_apart_across_processes(pair: tuple[str, str]) -> None:
    a, b = pair
    for name in ("acme", "globex"):
        assert call("PUT", f"{a}/api/admin/tenants/{name}", ADMIN, json={}).status_code == 201
    _, acme = make_token(a, kind="write", tenant="acme")
    _, globex = make_token(b, kind="write", tenant="globex")
    # each token, made through one process, works on both
    assert call("PUT", f"{b}/api/jobs/acme:run", acme, json={}).status_code == 201
    assert call("PUT", f"{a}/api/jobs/globex:run", globex, json={}).status_code == 201
    body = {"workerId": "w", "progress": 10}
    for url in (a, b):
        assert call("GET", f"{url}/api/jobs/globex:run", acme).status_code == 404
        assert (
            call("POST", f"{url}/api/jobs/globex:run/progress", acme, json=body).status_code == 404
        )
        assert call("PUT", f"{url}/api/jobs/globex:other", acme, json={}).status_code == 403
        listed = call("GET", f"{url}/api/jobs", acme).json()
        assert [j["id"] for j in listed["jobs"]] == ["acme:run"]
        assert "globex" not in call("GET", f"{url}/api/prometheus", acme).text
    # a fleet view on one process sees its tenant's live changes posted to the other, only
    ws = ws_for(a, acme)
    try:
        ws.send({"type": "subscribe:jobs"})
        ws.recv_until(lambda m: m["type"] == "JOBS_CHANGED", timeout=15)
        assert call("POST", f"{b}/api/jobs/globex:run/progress", globex, json=body).ok
        assert call("POST", f"{b}/api/jobs/acme:run/progress", acme, json=body).ok
        seen = ws.recv_until(
            lambda m: (
                m["type"] == "JOBS_CHANGED"
                and any(j["id"] == "acme:run" and j["progress"] == 10 for j in m["data"]["jobs"])
            ),
            timeout=15,
        )
        ids = {j["id"] for m in seen if m["type"] == "JOBS_CHANGED" for j in m["data"]["jobs"]}
        assert ids == {"acme:run"}
    finally:
        ws.close()


def test_a_token_revoked_through_one_process_ends_on_both(pair: tuple[str, str]) -> None:
    a, b = pair
    assert call("PUT", f"{a}/api/admin/tenants/acme", ADMIN, json={}).status_code == 201
    token_id, token = make_token(a, kind="read", tenant="acme")
    assert call("PUT", f"{a}/api/jobs/acme:run", ADMIN, json={}).status_code == 201
    sockets = [ws_for(url, token) for url in (a, b)]
    try:
        for ws in sockets:
            assert ws.subscribe("acme:run")["type"] == "subscribed"
        assert call("GET", f"{b}/api/jobs/acme:run", token).ok
        assert call("DELETE", f"{a}/api/admin/tokens/{token_id}", ADMIN).ok
        for ws in sockets:
            assert closed_for_revocation(ws)
        for url in (a, b):
            assert call("GET", f"{url}/api/jobs/acme:run", token).status_code == 401
    finally:
        for ws in sockets:
            ws.close()


def test_a_share_link_made_on_one_process_opens_the_job_on_the_other(
    pair: tuple[str, str],
) -> None:
    a, b = pair
    assert call("PUT", f"{a}/api/admin/tenants/acme", ADMIN, json={}).status_code == 201
    assert call("PUT", f"{a}/api/jobs/acme:shared", ADMIN, json={}).status_code == 201
    made = call("POST", f"{a}/api/jobs/acme:shared/shares", ADMIN, json={}).json()
    assert call("GET", f"{b}/api/jobs/acme:shared/monitor", made["secret"]).ok
    assert call("GET", f"{b}/api/jobs", made["secret"]).status_code == 403
