"""The deployment in ``server/``: its compose file, its gunicorn config serving
for real, and its nginx config in front of two real server processes."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
import yaml

from jobwatch import Client
from jobwatch.errors import APIError, JobNotFound
from jobwatch.server.deploy import settings as wsgi_settings
from jobwatch.server.deploy.process import ServerProcess, serve_command
from jobwatch.server.deploy.run import gunicorn_options
from tests.conftest import free_port, wait_for
from tests.paths import REPO
from tests.services import fresh_channel, fresh_schema, scale_urls

SERVER_DIR = REPO / "server"
GUNICORN_CONF = SERVER_DIR / "gunicorn.conf.py"
NGINX_CONF = SERVER_DIR / "nginx.conf"
WSGI_APP = "jobwatch.server.wsgi:app_from_env()"
WAIT = 20.0  # seconds any one thing may take before the test fails


# -- compose.yaml and the Dockerfile ----------------------------------------------------


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((SERVER_DIR / "compose.yaml").read_text())
    return compose


def _documented_settings() -> set[str]:
    """``JOBWATCH_*`` names the settings table (settings.py) and gunicorn.conf.py document."""
    conf_doc = ast.get_docstring(ast.parse(GUNICORN_CONF.read_text()))
    table = {setting.env for setting in wsgi_settings.SETTINGS}
    return table | set(re.findall(r"``(JOBWATCH_[A-Z_]+)``", f"{conf_doc}"))


def test_compose_runs_jobwatch_on_postgres_and_redis_behind_nginx():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "jobwatch", "nginx"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])

    jobwatch = services["jobwatch"]
    assert jobwatch["build"] == {"context": "..", "dockerfile": "server/Dockerfile"}
    assert jobwatch["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert jobwatch["deploy"]["replicas"] >= 2
    env = jobwatch["environment"]
    assert env["JOBWATCH_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["JOBWATCH_DATABASE_URL"]
    assert env["JOBWATCH_REDIS_URL"] == "redis://redis:6379/0"
    assert env["JOBWATCH_TOKEN"].startswith("${JOBWATCH_TOKEN:?")  # no default token
    assert int(env["JOBWATCH_WORKERS"].strip("${}").split(":-")[-1]) >= 1

    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:")
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert "8765:8765" in nginx["ports"]
    assert nginx["depends_on"] == {"jobwatch": {"condition": "service_healthy"}}


def test_compose_sets_only_settings_the_server_documents():
    env = _compose()["services"]["jobwatch"]["environment"]
    assert set(env) <= _documented_settings()


def test_the_image_builds_from_the_repository_root_and_runs_the_gunicorn_config():
    dockerfile = (SERVER_DIR / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'pip install ".[server,scale]"' in dockerfile
    assert "COPY server/gunicorn.conf.py" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "/api/health" in dockerfile
    assert f'"{WSGI_APP}"' in dockerfile
    ignored = (SERVER_DIR / "Dockerfile.dockerignore").read_text().split()
    copied = re.findall(r"^COPY (.+) \S+$", dockerfile, re.M)
    for source in " ".join(copied).split():
        assert f"!{source}" in ignored or f"!{source}/" in ignored, source


# -- gunicorn.conf.py ---------------------------------------------------------------------


def _load_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    names = ("JOBWATCH_BIND", "JOBWATCH_WORKERS", "JOBWATCH_REDIS_URL", "JOBWATCH_INSECURE")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBWATCH_TOKEN", "t")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_conf_mirrors_jobwatch_serve(monkeypatch):
    conf = _load_conf(monkeypatch)
    expected = gunicorn_options("0.0.0.0", 8765)
    for name in ("bind", *(k for k in expected if k != "bind")):
        assert conf[name] == expected[name], name
    assert conf["workers"] == 1
    assert conf["preload_app"] is False


def test_gunicorn_conf_workers_default_to_cpus_only_with_redis(monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    conf = _load_conf(monkeypatch, JOBWATCH_REDIS_URL="redis://127.0.0.1:6379/0")
    assert conf["workers"] == min(cpus, 64)
    conf = _load_conf(monkeypatch, JOBWATCH_REDIS_URL="redis://r/0", JOBWATCH_WORKERS="3")
    assert conf["workers"] == 3


@pytest.mark.parametrize("workers", ["0", "65", "two", "3"])
def test_gunicorn_conf_refuses_workers_it_cannot_serve(monkeypatch, capsys, workers):
    with pytest.raises(SystemExit) as exited:
        _load_conf(monkeypatch, JOBWATCH_WORKERS=workers)
    assert exited.value.code == 2
    assert "JOBWATCH_WORKERS" in capsys.readouterr().err


def test_gunicorn_conf_refuses_an_open_bind_without_a_token(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        _load_conf(monkeypatch, JOBWATCH_TOKEN="")
    assert exited.value.code == 2
    assert "refusing to listen on 0.0.0.0:8765 without a token" in capsys.readouterr().err
    assert _load_conf(monkeypatch, JOBWATCH_TOKEN="", JOBWATCH_INSECURE="1")["bind"]
    assert _load_conf(monkeypatch, JOBWATCH_TOKEN="", JOBWATCH_BIND="127.0.0.1:9")["bind"]


@pytest.mark.slow
def test_gunicorn_with_the_conf_serves_two_workers_on_postgres_and_redis():
    postgres, redis_url = scale_urls()
    with fresh_schema(postgres) as database:
        env = {
            "JOBWATCH_DATABASE_URL": database,
            "JOBWATCH_REDIS_URL": redis_url,
            "JOBWATCH_REDIS_CHANNEL": fresh_channel(),
            "JOBWATCH_TOKEN": "deploy-test-token",
            "JOBWATCH_BIND": "127.0.0.1:0",
            "JOBWATCH_WORKERS": "2",
        }
        command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), WSGI_APP]
        server = ServerProcess(command, env=env)
        try:
            assert "2 worker(s); tokens required" in server.output()
            wait_for(lambda: len(_children(server.pid)) == 2, WAIT, "two worker processes")
            with Client(server.url, token="deploy-test-token") as client:
                assert client.health()["status"] == "ok"
                job = client.create_job(name="gunicorn-conf")
                follower = Follower(client, job["id"], job["seq"])
                try:
                    follower.wait_live()
                    acked = [client.report_progress(job["id"], "w", p)["seq"] for p in (10, 60)]
                    acked.append(client.complete_job(job["id"], "w")["seq"])
                    follower.wait_finished()
                finally:
                    follower.close()
                assert follower.seqs() == acked
            assert "Traceback" not in server.output()
        finally:
            server.stop()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


# -- nginx.conf with real nginx --------------------------------------------------------


def _nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found:
        return found
    reason = "nginx is not installed (apt-get install -y nginx): server/nginx.conf is untested"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI must provide it)")
    pytest.skip(reason)


def render_nginx_conf(backends: list[int], listen_port: int, temp_dir: Path) -> str:
    """server/nginx.conf with its upstream servers at 127.0.0.1:``backends`` (keeping
    their parameters, without Docker's DNS), listening on 127.0.0.1:``listen_port``
    and keeping temp files under ``temp_dir``."""
    conf = NGINX_CONF.read_text()
    server_line = re.compile(r"^(\s*)server jobwatch:8765 resolve ([^;]*);$", re.M)
    match = server_line.search(conf)
    assert match, "server/nginx.conf no longer names `server jobwatch:8765 resolve ...;`"
    indent, params = match.groups()
    servers = "\n".join(f"{indent}server 127.0.0.1:{port} {params};" for port in backends)
    conf = server_line.sub(lambda _: servers, conf, count=1)
    conf, listens = re.subn(r"listen 8765;", f"listen 127.0.0.1:{listen_port};", conf)
    assert listens == 1, "server/nginx.conf no longer has one `listen 8765;`"
    temp_paths = "".join(
        f"\n    {kind}_temp_path {temp_dir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return conf.replace("http {", "http {" + temp_paths, 1)


class Nginx:
    """nginx in the foreground in a child process, with ``conf`` as its nginx.conf."""

    def __init__(self, binary: str, conf: str, port: int, directory: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = directory / "nginx.log"
        (directory / "nginx.conf").write_text(conf)
        with self.log_path.open("ab") as log:  # O_APPEND: access and error lines interleave whole
            self.proc = subprocess.Popen(
                [
                    binary,
                    "-p",
                    str(directory),
                    "-c",
                    str(directory / "nginx.conf"),
                    "-e",
                    "stderr",
                    "-g",
                    f"pid {directory / 'nginx.pid'}; daemon off;",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_for(lambda: _accepts(port) or self.proc.poll() is not None, WAIT, "nginx to listen")
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx did not start:\n{self.log()}")

    def log(self) -> str:
        """Everything nginx wrote: its access lines and its errors."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop nginx at once (SIGTERM), or kill it after 10 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


class Follower:
    """A ``Client.subscribe`` iterated in a thread: every event it yields, in order."""

    def __init__(self, client: Client, job_id: str, since: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.subscription = client.subscribe(job_id, since=since)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.events.extend(self.subscription)
        except BaseException as exc:
            self.error = exc

    def wait_live(self) -> None:
        """Wait until the subscription is connected and subscribed."""
        wait_for(lambda: self.subscription.state == "live", WAIT, "the subscription to be live")

    def wait_finished(self) -> None:
        """Wait until the stream ended with ``JOB_COMPLETED``."""
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"no JOB_COMPLETED; got seqs {self.seqs()}"
        assert self.error is None, self.error

    def seqs(self) -> list[int]:
        """The ``seq`` of every event so far."""
        return [event["seq"] for event in list(self.events)]

    def close(self) -> None:
        """Stop following and wait for the thread."""
        self.subscription.close()
        self.thread.join(WAIT)


def _report(client: Client, job_id: str, progress: float) -> int:
    """One progress update through nginx with the log line ``f"at {progress}"``; its seq.

    Retries a 503 from nginx (no process took the request) as the Reporter
    does: the backend is killed between requests, so a refused request was
    never stored and its retry cannot duplicate an event.
    """
    line = {"level": "info", "message": f"at {progress:g}"}
    for attempt in range(3):
        try:
            reply = client.report_progress(job_id, "deploy-worker", progress, logs=[line])
            seq: int = reply["seq"]
            return seq
        except APIError as exc:
            if exc.status != 503 or attempt == 2:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _check_resumed_stream(events: list[dict[str, Any]], progress: list[float]) -> None:
    """The contract's promise across a reconnect with ``since``: events in seq
    order, none twice, every log line, the newest progress, then the completion
    (a progress superseded while the subscriber was away may be skipped)."""
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs)), f"an event came twice or out of order: {seqs}"
    logs = [
        line["message"]
        for event in events
        if event["type"] == "JOB_LOGS"
        for line in event["data"]["logs"]
    ]
    assert logs == [f"at {p:g}" for p in progress]
    newest = [e["data"]["progress"] for e in events if e["type"] == "JOB_PROGRESS"][-1]
    assert newest == progress[-1]
    assert events[-1]["type"] == "JOB_COMPLETED"


@pytest.mark.slow
def test_nginx_conf_balances_two_processes_and_a_subscriber_survives_kill_9(tmp_path):
    binary = _nginx_binary()
    postgres, redis_url = scale_urls()
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(fresh_schema(postgres))
        backends: list[ServerProcess] = []
        stack.callback(lambda: [print(server.output()) for server in backends])
        stack.callback(lambda: [server.stop() for server in backends])

        channel = fresh_channel()  # both backends share it, and no other test does

        def backend(port: int = 0) -> ServerProcess:
            command = serve_command(
                database, "--redis-url", redis_url, "--redis-channel", channel, "--port", str(port)
            )
            backends.append(ServerProcess(command))
            return backends[-1]

        # Only A serves at first, so the subscriber's connection surely lands on A.
        a, port_b, listen = backend(), free_port(), free_port()
        conf = render_nginx_conf([_port(a), port_b], listen, tmp_path)
        proxy = Nginx(binary, conf, listen, tmp_path)
        stack.callback(lambda: print(proxy.log()))  # pytest shows it if the test fails
        stack.callback(proxy.stop)
        client = stack.enter_context(Client(proxy.url))

        job_id = f"deploy-{uuid.uuid4().hex[:12]}"
        with Client(a.url) as direct:
            since = direct.create_job(job_id=job_id, price_per_hour=1.0)["seq"]
        follower = Follower(client, job_id, since)
        stack.callback(follower.close)
        follower.wait_live()
        b = backend(port_b)

        _check_rest_through_nginx(client, proxy, job_id)
        progress = [float(p) for p in range(1, 9)]
        acked = [_report(client, job_id, p) for p in progress]
        # While both serve, every event reaches the subscriber live, through Redis.
        everything = list(range(since + 1, acked[-1] + 1))
        wait_for(lambda: follower.seqs() == everything, WAIT, f"events {everything}")
        progress_lines = re.findall(r'"POST /api/jobs/\S+/progress .*', proxy.log())
        used = {port for line in progress_lines for port in re.findall(r"127.0.0.1:(\d+)", line)}
        assert used == {str(_port(a)), str(port_b)}, "nginx sent every update to one process"

        a.kill()
        progress += [float(p) for p in range(10, 90, 10)]
        for p in progress[-8:]:
            _report(client, job_id, p)
        completed = client.complete_job(job_id, "deploy-worker")["seq"]
        follower.wait_finished()
        _check_resumed_stream(follower.events, progress)
        assert follower.seqs()[-1] == completed
        assert follower.subscription.reconnects == 1
        assert "Traceback" not in b.output()


def _check_rest_through_nginx(client: Client, proxy: Nginx, job_id: str) -> None:
    assert client.health()["status"] == "ok"
    assert client.get_job(job_id)["id"] == job_id
    with pytest.raises(JobNotFound):
        client.get_job("no-such-job")
    too_big = requests.post(
        f"{proxy.url}/api/jobs",
        data=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"
    # A browser page served from nginx's own address opens the WebSocket: the
    # server compares the Origin with the Host nginx passes on.
    ws_url = proxy.url.replace("http://", "ws://") + "/ws"
    ws = websocket.create_connection(ws_url, timeout=10, origin=proxy.url)
    try:
        ws.send(f'{{"type": "subscribe:job", "subscriptionId": "{job_id}"}}')
        assert '"subscribed"' in ws.recv()
    finally:
        ws.close()
