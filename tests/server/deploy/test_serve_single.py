"""``jobwatch serve`` without gunicorn (Windows, or not installed): one process on
Werkzeug's threaded server, forced here by making ``import gunicorn`` fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess
from tests.conftest import WsClient

pytestmark = pytest.mark.slow

WITHOUT_GUNICORN = (
    "import sys; sys.modules['gunicorn'] = None; "  # None in sys.modules: import raises
    "from jobwatch.cli.commands import main; sys.exit(main(sys.argv[1:]))"
)


def serve_without_gunicorn(db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", WITHOUT_GUNICORN, "serve", "--port", "0", "--db", str(db), *extra]


def test_serves_everything_in_one_process(tmp_path: Path) -> None:
    with ServerProcess(serve_without_gunicorn(tmp_path / "db", "--token", "w" * 20)) as server:
        said = server.output()
        assert said.count("gunicorn unavailable (gunicorn is not installed)") == 1
        auth = {"Authorization": "Bearer " + "w" * 20}
        assert requests.get(f"{server.url}/api/jobs", timeout=10).status_code == 401
        requests.put(
            f"{server.url}/api/jobs/one", json={"pricePerHour": 1}, headers=auth, timeout=10
        )
        ws = WsClient(server.ws_url + "?token=" + "w" * 20)
        try:
            assert ws.subscribe("one")["type"] == "subscribed"
            body = {
                "workerId": "w",
                "progress": 30,
                "logLines": [{"level": "info", "message": "hi"}],
            }
            answer = requests.post(
                f"{server.url}/api/jobs/one/progress", json=body, headers=auth, timeout=10
            )
            assert answer.status_code == 200
            kinds = [m["type"] for m in ws.recv_until(lambda m: m["type"] == "JOB_LOGS")]
            assert kinds == ["JOB_PROGRESS", "JOB_LOGS"]
        finally:
            ws.close()
        too_big = requests.post(
            f"{server.url}/api/jobs/one/progress",
            data=b'{"x": "' + b"a" * (1024 * 1024) + b'"}',
            headers={**auth, "Content-Type": "application/json"},
            timeout=10,
        )
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "payload_too_large"
        metrics = requests.get(f"{server.url}/api/prometheus", headers=auth, timeout=10)
        assert 'jobwatch_job_progress_percent{job_id="one"' in metrics.text
        server.stop()
        assert server.proc.returncode == 0
    # what was committed survives the stop
    with ServerProcess(serve_without_gunicorn(tmp_path / "db")) as server:
        job = requests.get(f"{server.url}/api/jobs/one", timeout=10).json()["job"]
        assert job["progress"] == 30


def test_several_workers_need_gunicorn(tmp_path: Path) -> None:
    done = subprocess.run(
        serve_without_gunicorn(tmp_path / "db", "--workers", "2"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers 2 needs gunicorn" in done.stderr


def test_the_access_log_never_shows_a_query_string(tmp_path: Path) -> None:
    secret = "s" * 24
    command = serve_without_gunicorn(tmp_path / "db", "--token", secret, "--access-log")
    with ServerProcess(command) as server:
        requests.get(f"{server.url}/api/health?token={secret}", timeout=10)
        requests.get(f"{server.url}/api/jobs?token={secret}&x=1", timeout=10)
        ws = WsClient(server.ws_url + "?token=" + secret)
        ws.close()
        server.stop()
        said = server.output()
    assert "/api/health?<redacted>" in said
    assert secret not in said
