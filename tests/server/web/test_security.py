"""Tokens, allowed origins and per-worker rate limits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
import websocket

from jobwatch import Client, Reporter, errors
from jobwatch.cli.commands import main
from jobwatch.server import EmbeddedServer
from jobwatch.server.deploy.process import ServerProcess, serve_command

WRITE, READ = "write-s3cret-0123456789", "read-only-0123456789"
BODY = {"workerId": "w", "progress": 10}


@pytest.fixture(scope="module")
def secured():
    with EmbeddedServer(config={"WRITE_TOKEN": WRITE, "READ_TOKEN": READ}) as server:
        requests.put(
            f"{server.url}/api/jobs/secret-job", json={}, headers=_auth(WRITE), timeout=5
        ).raise_for_status()
        yield server


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_writes_need_the_write_token(secured):
    url = f"{secured.url}/api/jobs/secret-job/progress"
    missing = requests.post(url, json=BODY, timeout=5)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(url, json=BODY, headers=_auth("nope"), timeout=5).status_code == 401
    read_only = requests.post(url, json=BODY, headers=_auth(READ), timeout=5)
    # a valid token that may not write: 403 forbidden (RFC 9110, 15.5.4); 401 is for no token
    assert read_only.status_code == 403 and read_only.json()["error"]["code"] == "forbidden"
    assert "may only read" in read_only.json()["error"]["message"]
    job = requests.get(f"{secured.url}/api/jobs/secret-job", headers=_auth(READ), timeout=5)
    assert job.json()["job"]["progress"] == 0  # the refused writes changed nothing
    assert requests.post(url, json=BODY, headers=_auth(WRITE), timeout=5).status_code == 200


def test_reads_need_a_token_and_health_is_open(secured):
    assert requests.get(f"{secured.url}/api/health", timeout=5).status_code == 200
    assert requests.get(f"{secured.url}/api/jobs", timeout=5).status_code == 401
    assert (
        requests.get(f"{secured.url}/api/jobs", headers=_auth(READ), timeout=5).status_code == 200
    )
    # ?token= is for browsers' WebSockets only: a query string ends up in logs and histories.
    query = requests.get(f"{secured.url}/api/jobs?token={READ}", timeout=5)
    assert query.status_code == 401
    write = requests.post(
        f"{secured.url}/api/jobs/secret-job/progress?token={WRITE}", json=BODY, timeout=5
    )
    assert write.status_code == 401


def test_the_websocket_checks_the_token(secured):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(secured.ws_url, timeout=5)
    assert refused.value.status_code == 401
    for ws in (
        websocket.create_connection(f"{secured.ws_url}?token={READ}", timeout=5),
        websocket.create_connection(
            secured.ws_url, timeout=5, header=[f"Authorization: Bearer {READ}"]
        ),
    ):
        ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": "secret-job"}))
        assert json.loads(ws.recv())["type"] == "subscribed"
        ws.close()


def test_client_and_reporter_take_the_token(secured, monkeypatch):
    with Client(secured.url) as anonymous, pytest.raises(errors.AuthenticationError):
        anonymous.get_job("secret-job")
    monkeypatch.setenv("JOBWATCH_TOKEN", WRITE)
    with Client(secured.url) as from_env:
        assert from_env.get_job("secret-job")["id"] == "secret-job"
    with Reporter("token-job", url=secured.url, gpu=False, interval=0.05) as reporter:
        reporter.update(50)
    with Client(secured.url, token=READ) as viewer:
        assert viewer.get_job("token-job")["status"] == "completed"
        events = list(viewer.subscribe("token-job"))
        assert events[-1]["type"] == "JOB_COMPLETED"


def test_browser_origins():
    config = {"CORS_ORIGINS": ("https://app.example.com",)}
    with EmbeddedServer(config=config) as server:
        preflight = requests.options(
            f"{server.url}/api/jobs",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
            timeout=5,
        )
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        other = requests.get(
            f"{server.url}/api/jobs", headers={"Origin": "https://evil.example"}, timeout=5
        )
        assert "Access-Control-Allow-Origin" not in other.headers
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(server.ws_url, timeout=5, origin="https://evil.example")
        assert refused.value.status_code == 403
        allowed = websocket.create_connection(
            server.ws_url, timeout=5, origin="https://app.example.com"
        )
        allowed.close()
        websocket.create_connection(server.ws_url, timeout=5, suppress_origin=True).close()


def test_per_worker_rate_limit_answers_429_with_retry_after():
    with EmbeddedServer(config={"RATE_LIMIT": 5}) as server:
        requests.put(f"{server.url}/api/jobs/busy", json={}, timeout=5)
        answers = [
            requests.post(
                f"{server.url}/api/jobs/busy/progress", json={**BODY, "progress": i}, timeout=5
            )
            for i in range(8)
        ]
        codes = [a.status_code for a in answers]
        assert codes[:5] == [200] * 5 and 429 in codes[5:]
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        job = requests.get(f"{server.url}/api/jobs/busy", timeout=5).json()["job"]
        assert job["seq"] == codes.count(200)  # refused updates stored nothing
        other = requests.post(
            f"{server.url}/api/jobs/busy/progress", json={**BODY, "workerId": "w"}, timeout=5
        )
        assert other.status_code in (200, 429)


def test_serve_refuses_open_non_loopback_addresses(capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything listens: run in this process, the command's own code
    (``jobwatch serve`` itself, in a child process, is tested in tests/server/deploy)."""
    assert main(["serve", "--host", "0.0.0.0", "--db", ":memory:"]) == 2
    assert "without a token" in capsys.readouterr().err
    assert main(["serve", "--read-token", "r", "--db", ":memory:"]) == 2
    assert "--read-token needs --token" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_uses_the_token_from_the_environment(tmp_path):
    with ServerProcess(serve_command(tmp_path / "db", "--token", WRITE)) as server:
        assert "tokens required" in server.output()
        command = [sys.executable, "-m", "jobwatch", "jobs", "list", "--url", server.url]
        denied = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False, env={"PATH": ""}
        )
        assert denied.returncode == 1 and "needs a token" in denied.stderr
        import os

        env = {**os.environ, "JOBWATCH_TOKEN": WRITE}
        allowed = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False, env=env
        )
        assert allowed.returncode == 0, allowed.stderr
