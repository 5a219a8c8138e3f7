"""``jobwatch serve``'s worker against slow, idle and greedy clients (real gunicorn, real sockets).

Each server here runs with short deadlines and small caps set through the
worker's environment variables, so the tests stay fast.
"""

from __future__ import annotations

import contextlib
import json
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websocket

from jobwatch.contract.requests import MAX_BODY_BYTES
from jobwatch.server.deploy.process import ServerProcess, serve_command

pytestmark = pytest.mark.slow

TOKEN = "0123456789abcdef-token"


def _serve(tmp_path, *extra: str, **env: str) -> ServerProcess:
    return ServerProcess(serve_command(tmp_path / "db", *extra), env=env)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[ServerProcess]:
    env = {
        "JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS": "4",
        "JOBWATCH_HEAD_TIMEOUT": "1",
        "JOBWATCH_BODY_TIMEOUT": "1",
    }
    with _serve(tmp_path_factory.mktemp("guarded"), **env) as server:
        yield server


def _address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(_address(server), timeout=10, source_address=(source, 0))
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes; a timeout (10 s) fails the test."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _error(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]["code"]


def test_one_address_cannot_hold_more_than_its_share(guarded) -> None:
    held = [_connect(guarded, "127.0.0.2") for _ in range(4)]
    try:
        for sock in held:  # each is being served (a request answered on it)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        extra = _connect(guarded, "127.0.0.2")
        assert _error(_read_all(extra)) == (429, "too_many_connections")
        assert requests.get(f"{guarded.url}/api/health", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_request_head_that_trickles_in_is_cut_off(guarded) -> None:
    sock = _connect(guarded, "127.0.0.3")
    sock.sendall(b"GET /api/health HTTP/1.1\r\n")
    closed = False
    for _ in range(40):  # one header line every 0.25 s, 10 s at most
        try:
            sock.sendall(b"X-Slow: 1\r\n")
            sock.settimeout(0.25)
            closed = sock.recv(1) == b""
        except TimeoutError:
            continue
        except OSError:
            closed = True
        if closed:
            break
    sock.close()
    assert closed, "the server kept a trickling request head open"


def test_an_idle_connection_is_closed(guarded) -> None:
    sock = _connect(guarded, "127.0.0.3")
    assert _read_all(sock) == b""  # closed by the server, not by our 10 s timeout
    sock.close()


def test_a_body_that_stops_answers_408(guarded) -> None:
    sock = _connect(guarded, "127.0.0.4")
    sock.sendall(
        b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"name": '
    )
    assert _error(_read_all(sock)) == (408, "request_timeout")
    sock.close()


def test_a_large_chunked_body_answers_413(guarded) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10 * MAX_BODY_BYTES // 65536):
            yield b" " * 65536

    answer = requests.post(
        f"{guarded.url}/api/jobs",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    ok = requests.post(f"{guarded.url}/api/jobs", json={"name": "after"}, timeout=5)
    assert ok.status_code == 201


def test_past_the_total_cap_connections_are_refused_at_once(tmp_path) -> None:
    env = {"JOBWATCH_MAX_CONNECTIONS": "3", "JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    with _serve(tmp_path, **env) as server:
        held = [websocket.create_connection(server.ws_url, timeout=5) for _ in range(3)]
        try:
            extra = _connect(server)
            assert _error(_read_all(extra)) == (503, "server_busy")
        finally:
            for ws in held:
                ws.close()


def test_a_low_open_files_limit_is_raised_or_reported(tmp_path) -> None:
    command = " ".join(serve_command(tmp_path / "db"))
    with ServerProcess(
        ["bash", "-c", f"ulimit -Sn 256; ulimit -Hn 1000; exec {command}"]
    ) as server:
        assert requests.get(f"{server.url}/api/health", timeout=5).status_code == 200
        output = server.output()
    assert "the open-files limit is 1000" in output
    assert "LimitNOFILE" in output


def test_the_access_log_holds_no_token(tmp_path) -> None:
    with _serve(tmp_path, "--access-log", JOBWATCH_TOKEN=TOKEN) as server:
        ws = websocket.create_connection(f"{server.ws_url}?token={TOKEN}", timeout=5)
        ws.close()
        requests.get(f"{server.url}/api/jobs?token={TOKEN}&limit=5", timeout=5)
        requests.get(
            f"{server.url}/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        output = server.output()
    assert "/api/jobs?<redacted>" in output
    assert TOKEN not in output


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_worker_raises_its_soft_limit_to_the_hard_one(tmp_path) -> None:
    command = " ".join(serve_command(tmp_path / "db"))
    with ServerProcess(["bash", "-c", f"ulimit -Sn 512; exec {command}"]) as server:
        rows: list[str] = []
        deadline = time.monotonic() + 15  # a worker restarted under load comes back raised too
        while time.monotonic() < deadline:
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
            rows = [_open_files_row(pid) for pid in children]
            if any(row.split()[3] == row.split()[4] for row in rows if row):
                return
            time.sleep(0.2)
        raise AssertionError(f"no worker raised its soft limit: {rows}")


def _open_files_row(pid: str) -> str:
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
    except OSError:  # the child ended meanwhile
        return ""
    return next(line for line in limits.splitlines() if line.startswith("Max open files"))


def test_two_greenlets_contending_for_the_services_never_block_the_worker() -> None:
    """A gunicorn master imports the app's modules before its gevent worker patches
    ``threading``; a lock bound at import would be a real one, and a greenlet waiting
    for it would block the worker's only OS thread, so the greenlet holding it never
    runs again (seen: WORKER TIMEOUT under 600 idle WebSockets). Here one greenlet
    switches away while ``track`` holds the lock (the session's hash yields), and a
    second calls ``track`` meanwhile: both must finish."""
    code = (
        "import jobwatch.server.web.services as s\n"
        "from gevent import monkey; monkey.patch_all()\n"
        "import gevent\n"
        "class Session:\n"
        "    def __hash__(self):\n"
        "        gevent.sleep(0.05)\n"
        "        return id(self)\n"
        "    def stalled(self, now): return False\n"
        "services = s.Services(store=None, broker=None, clock=None, ws_queue_size=1,\n"
        "                      send_timeout=3600)\n"
        "greenlets = [gevent.spawn(services.track, Session()) for _ in range(2)]\n"
        "gevent.joinall(greenlets, timeout=10)\n"
        "print([g.value for g in greenlets])\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the worker's OS thread blocked on a lock that gevent did not patch")
    assert out.stdout.strip() == "[True, True]", out.stdout + out.stderr


def test_freed_heap_memory_is_given_back_where_glibc_is() -> None:
    from jobwatch.server.deploy.gunicorn_worker import trim_memory

    blocks = [bytearray(1000) for _ in range(100_000)]  # 100 MB of small blocks: from the heap
    keep = bytearray(1000)  # allocated last, above them: free() alone cannot shrink the heap
    del blocks
    released = trim_memory()
    assert released is (platform.libc_ver()[0] == "glibc")
    del keep
