"""Who may reach the server and what it takes: currency codes, tokens, Host and
Origin (DNS rebinding), the embedded server's bind, 413 for any large body,
and a rate limit that counts only a worker's own accepted updates."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st

import jobwatch
import jobwatch.cli.commands as cli
from jobwatch.contract.requests import MAX_BODY_BYTES
from jobwatch.server import EmbeddedServer, create_app
from jobwatch.server.deploy.accesslog import RedactingLogger, without_query
from jobwatch.server.web.security import is_loopback_host

TOKEN = "0123456789abcdef-token"


# -- currency ------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["usd", "QUBIC", "Eur", "X1", "A" * 16])
def test_a_currency_code_is_stored_upper_case(api: Any, currency: str) -> None:
    answer = api.put("/api/jobs/c1", json={"currency": currency})
    assert answer.status_code in (200, 201)
    assert answer.json()["job"]["currency"] == currency.upper()


@pytest.mark.parametrize(
    "currency",
    ["<base href=//x>", "", "A" * 17, "US D", "€", "\uff35\uff33\uff24", "usd\n", "\x1b[2J"],
)
def test_anything_else_as_currency_is_refused_and_changes_nothing(api: Any, currency: str) -> None:
    api.put("/api/jobs/c2", json={"currency": "USD"})
    answer = api.put("/api/jobs/c2", json={"currency": currency})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert [d["field"] for d in error["details"]] == ["currency"]
    assert "A-Z" in error["details"][0]["message"]
    assert api.get("/api/jobs/c2").json()["job"]["currency"] == "USD"
    assert api.post("/api/jobs", json={"currency": currency}).status_code == 400


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_currency_fuzz_is_a_code_or_a_clear_400(currency: str) -> None:
    from jobwatch.contract.requests import JobSpec, parse_body
    from jobwatch.errors import ValidationError

    try:
        spec = parse_body(JobSpec, json.dumps({"currency": currency}).encode())
    except ValidationError as exc:
        assert exc.details[0]["field"] == "currency"
        return
    assert spec.currency is not None
    assert re.fullmatch(r"[A-Z0-9]{1,16}", spec.currency)
    assert spec.currency == currency.upper()


def test_the_reporter_refuses_a_bad_currency_at_once() -> None:
    with pytest.raises(ValueError, match="A-Z"):
        jobwatch.Reporter("r1", url="http://127.0.0.1:9", currency="<b>", gpu=False)


def test_a_job_id_with_a_trailing_newline_is_refused(api: Any) -> None:
    assert api.put("/api/jobs/abc%0A", json={}).status_code == 400
    assert api.post("/api/jobs", json={"id": "abc\n"}).status_code == 400


# -- bodies --------------------------------------------------------------------


def _chunks(total: int) -> Iterator[bytes]:
    piece = b" " * 65536
    for _ in range(total // len(piece)):
        yield piece


def test_a_chunked_body_over_the_limit_answers_413(server: EmbeddedServer) -> None:
    answer = requests.post(
        f"{server.url}/api/jobs",
        data=_chunks(10 * MAX_BODY_BYTES),  # a generator: sent chunked, no Content-Length
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_body_under_the_limit_is_read(server: EmbeddedServer) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"chunked"}'

    answer = requests.post(
        f"{server.url}/api/jobs",
        data=body(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["job"]["name"] == "chunked"


# -- tokens --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"WRITE_TOKEN": "short"}, "at least 16 characters"),
        ({"WRITE_TOKEN": f" {TOKEN}"}, "whitespace"),
        ({"WRITE_TOKEN": f"{TOKEN}\n"}, "whitespace"),
        ({"WRITE_TOKEN": TOKEN, "READ_TOKEN": "viewer"}, "at least 16 characters"),
    ],
)
def test_weak_tokens_are_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(config)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "short"], "--token must be at least 16 characters"),
        (["--token", f"{TOKEN} "], "--token has whitespace"),
        (["--token", TOKEN, "--read-token", "viewer"], "--read-token must be at least 16"),
    ],
)
def test_serve_refuses_weak_tokens(args: list[str], message: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "jobwatch", "serve", "--port", "0", "--db", ":memory:", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == cli.EXIT_USAGE
    assert message in refused.stderr


def test_the_access_log_never_holds_a_query_string_or_a_token() -> None:
    from types import SimpleNamespace

    from gunicorn.config import Config

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/ws?token={TOKEN}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "QUERY_STRING": f"token={TOKEN}",
        "PATH_INFO": "/ws",
        "HTTP_REFERER": f"http://127.0.0.1/page?token={TOKEN}",
    }
    request = SimpleNamespace(headers=[("AUTHORIZATION", f"Bearer {TOKEN}")])
    response = SimpleNamespace(status="101 Switching Protocols", headers=[], sent=0)
    from datetime import timedelta

    atoms = RedactingLogger(Config()).atoms(response, request, environ, timedelta(seconds=1))
    assert TOKEN not in json.dumps(atoms, default=str)
    assert atoms["r"] == "GET /ws?<redacted> HTTP/1.1"
    assert without_query("/api/jobs") == "/api/jobs"


# -- Host and Origin: DNS rebinding -------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("[::1]", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("10.0.0.1", False),
    ],
)
def test_loopback_names(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def _get(url: str, host: str, path: str = "/api/jobs") -> int:
    return requests.get(f"{url}{path}", headers={"Host": host}, timeout=5).status_code


def test_a_tokenless_server_answers_only_loopback_host_names(server: EmbeddedServer) -> None:
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        assert _get(server.url, host) == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"192.168.1.5:{port}", "[bad", ""):
        answer = requests.get(f"{server.url}/api/jobs", headers={"Host": host}, timeout=5)
        assert answer.status_code == 403, host
        assert answer.json()["error"]["code"] == "host_not_allowed"
    assert _get(server.url, "evil.example", "/api/health") == 200  # probes stay open
    assert _get(server.url, "evil.example", "/") == 403  # pages too: a rebound page reads on
    write = requests.put(
        f"{server.url}/api/jobs/rebound", json={}, headers={"Host": "evil.example"}, timeout=5
    )
    assert write.status_code == 403
    assert _get(server.url, f"127.0.0.1:{port}", "/api/jobs/rebound") == 404  # nothing written


def _ws_status(url: str, **headers: str) -> int:
    try:
        ws = websocket.create_connection(
            url,
            timeout=5,
            header=[f"{k}: {v}" for k, v in headers.items() if k != "Host"],
            host=headers.get("Host"),
            suppress_origin=True,
        )
    except websocket.WebSocketBadStatusException as exc:
        return int(exc.status_code)
    ws.close()
    return 101


def test_a_rebound_websocket_is_refused(server: EmbeddedServer) -> None:
    evil = f"evil.example:{server.port}"
    assert _ws_status(server.ws_url, Host=evil) == 403
    # The Origin check compares with the allowlist, not with the request's own Host.
    assert _ws_status(server.ws_url, Host=evil, Origin=f"http://{evil}") == 403
    here = f"127.0.0.1:{server.port}"
    assert _ws_status(server.ws_url, Host=here, Origin=f"http://{evil}") == 403
    assert _ws_status(server.ws_url, Host=here, Origin="http://localhost:8888") == 101
    assert _ws_status(server.ws_url, Host=here) == 101


def test_allowed_hosts_are_answered(clock: Any) -> None:
    config = {"CLOCK": clock, "ALLOWED_HOSTS": ("gpu-box",)}
    with EmbeddedServer(config=config) as server:
        assert _get(server.url, f"gpu-box:{server.port}") == 200
        assert _get(server.url, "other-box") == 403
        here = f"127.0.0.1:{server.port}"
        assert _ws_status(server.ws_url, Host=here, Origin="http://gpu-box:3000") == 101


def test_a_server_with_a_token_answers_any_host(clock: Any) -> None:
    with EmbeddedServer(config={"CLOCK": clock, "WRITE_TOKEN": TOKEN}) as server:
        answer = requests.get(
            f"{server.url}/api/jobs",
            headers={"Host": "jobs.example", "Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert answer.status_code == 200


# -- the embedded server -------------------------------------------------------


def test_serve_refuses_a_non_loopback_host_without_a_token() -> None:
    with pytest.raises(ValueError, match="without a token"):
        jobwatch.serve(host="0.0.0.0")
    with pytest.raises(ValueError, match="at least 16"):
        EmbeddedServer(config={"WRITE_TOKEN": "short"})


def test_serve_takes_a_token() -> None:
    from jobwatch.server.deploy import run as embedded

    if embedded._running is not None:  # another test's server: serve() would return it
        embedded._running.stop()
    server = jobwatch.serve(token=TOKEN)
    try:
        assert requests.get(f"{server.url}/api/jobs", timeout=5).status_code == 401
        with jobwatch.Client(server.url, token=TOKEN) as client:
            assert client.list_jobs()["total"] >= 0
    finally:
        server.stop()


# -- the rate limit ------------------------------------------------------------


def _post_from(server: EmbeddedServer, source: str, job: str, worker: str) -> int:
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=5, source_address=(source, 0)
    )
    try:
        body = json.dumps({"workerId": worker, "progress": 1})
        connection.request(
            "POST", f"/api/jobs/{job}/progress", body, {"Content-Type": "application/json"}
        )
        return connection.getresponse().status
    finally:
        connection.close()


def test_refused_updates_do_not_spend_a_workers_allowance(clock: Any) -> None:
    with EmbeddedServer(config={"CLOCK": clock, "RATE_LIMIT": 2}) as server:
        requests.put(f"{server.url}/api/jobs/mine", json={"workerId": "w"}, timeout=5)
        requests.put(f"{server.url}/api/jobs/theirs", json={"workerId": "x"}, timeout=5)
        for _ in range(6):  # as worker w: to a missing job, to a job bound to another
            assert _post_from(server, "127.0.0.1", "missing", "w") == 404
            assert _post_from(server, "127.0.0.1", "theirs", "w") == 403
        assert _post_from(server, "127.0.0.1", "mine", "w") == 200


def test_the_rate_limit_is_per_client_address(clock: Any) -> None:
    with EmbeddedServer(config={"CLOCK": clock, "RATE_LIMIT": 2}) as server:
        requests.put(f"{server.url}/api/jobs/mine", json={"workerId": "w"}, timeout=5)
        codes = [_post_from(server, "127.0.0.2", "mine", "w") for _ in range(5)]
        assert 429 in codes  # someone else, sending as worker w, is limited...
        assert _post_from(server, "127.0.0.1", "mine", "w") == 200  # ...not the worker


# -- fuzzing the new limits ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_token_rules_fuzz(token: str) -> None:
    from jobwatch.server.web.security import token_problem

    problem = token_problem("JOBWATCH_TOKEN", token)
    acceptable = len(token) >= 16 and token == token.strip()
    assert (problem is None) == acceptable
    if problem:
        assert problem.startswith("JOBWATCH_TOKEN ")


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=60))
def test_any_host_header_is_answered_200_or_403(fuzz_server: EmbeddedServer, host: str) -> None:
    """Whatever ``Host`` a client sends, a tokenless server answers 200 for a
    loopback name and 403 ``host_not_allowed`` for anything else; never 5xx."""
    status = _raw_status(fuzz_server.port, host)
    assert status in (200, 400, 403), (host, status)
    if status == 200:
        assert is_loopback_host(host.rsplit(":", 1)[0] if "]" not in host else host)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


def _raw_status(port: int, host: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /api/jobs HTTP/1.1\r\nHost: " + host.encode("latin-1") + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        head = sock.recv(64)
    return int(head.split()[1])
