"""``jobwatch report`` as a shell script runs it, against ``jobwatch serve`` in a subprocess."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import uuid

import pytest

from jobwatch.client.rest import Client
from jobwatch.errors import JobNotFound
from jobwatch.server.deploy.process import ServerProcess
from tests.conftest import free_port

pytestmark = pytest.mark.slow


# `served` (jobwatch serve in a child process) and its `client`: tests/conftest.py


@pytest.fixture
def job_id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def report(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobwatch", "report", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_progress_operation_and_logs(
    served: ServerProcess, served_client: Client, job_id: str
) -> None:
    done = report(
        job_id,
        "--progress",
        "45",
        "--operation",
        "epoch 5/10",
        "--log",
        "info:epoch 5 done",
        "--log",
        "WARNING:loss: nan at step 3",
        url=served.url,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{job_id}: running 45%")
    job = served_client.get_job(job_id)
    assert (job["progress"], job["currentOperation"]) == (45, "epoch 5/10")
    assert job["workerId"] == socket.gethostname()
    logs = served_client.logs(job_id)["logs"]
    assert [(line["level"], line["message"]) for line in logs] == [
        ("info", "epoch 5 done"),
        ("warning", "loss: nan at step 3"),
    ]


def test_logs_without_progress_keep_the_current_progress(
    served: ServerProcess, served_client: Client, job_id: str
) -> None:
    assert report(job_id, "--progress", "30", "--worker-id", "w1", url=served.url).returncode == 0
    done = report(job_id, "--log", "error:disk full", "--worker-id", "w1", url=served.url)
    assert done.returncode == 0, done.stderr
    assert served_client.get_job(job_id)["progress"] == 30
    assert [line["message"] for line in served_client.logs(job_id)["logs"]] == ["disk full"]


def test_complete_with_result(served: ServerProcess, served_client: Client, job_id: str) -> None:
    done = report(job_id, "--complete", "--result", '{"accuracy": 0.93}', url=served.url)
    assert done.returncode == 0, done.stderr
    job = served_client.get_job(job_id)
    assert (job["status"], job["progress"], job["result"]) == ("completed", 100, {"accuracy": 0.93})


def test_fail_with_message(served: ServerProcess, served_client: Client, job_id: str) -> None:
    done = report(job_id, "--progress", "60", "--fail", "CUDA out of memory", url=served.url)
    assert done.returncode == 0, done.stderr
    job = served_client.get_job(job_id)
    assert (job["status"], job["progress"], job["error"]) == ("failed", 60, "CUDA out of memory")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--progress", "150"], "from 0 to 100"),
        (["--progress", "abc"], "must be a number"),
        (["--log", "no level here"], "LEVEL:MESSAGE"),
        (["--log", "debug:x"], "LEVEL:MESSAGE"),
        (["--complete", "--result", "{bad"], "must be JSON"),
        (["--complete", "--result", "NaN"], "must be JSON"),
        (["--complete", "--fail", "x"], "not allowed with"),
        (["--result", "1"], "--result needs --complete"),
    ],
)
def test_bad_usage_exits_2_without_a_request(
    served: ServerProcess, served_client: Client, job_id: str, args: list[str], message: str
) -> None:
    done = report(job_id, *args, url=served.url)
    assert done.returncode == 2
    assert message in done.stderr
    with pytest.raises(JobNotFound):
        served_client.get_job(job_id)


def test_server_refusal_exits_1_with_its_message(
    served: ServerProcess, served_client: Client, job_id: str
) -> None:
    served_client.ensure_job(job_id, worker_id="owner")
    done = report(job_id, "--progress", "10", "--worker-id", "intruder", url=served.url)
    assert done.returncode == 1
    assert "bound to worker 'owner'" in done.stderr
    assert "worker_mismatch" in done.stderr

    served_client.complete_job(job_id, "owner")
    done = report(job_id, "--progress", "10", "--worker-id", "owner", url=served.url)
    assert done.returncode == 1
    assert "job_finished" in done.stderr


def test_unreachable_server_exits_3() -> None:
    port = free_port()
    done = report("job-1", "--progress", "10", url=f"http://127.0.0.1:{port}")
    assert done.returncode == 3
    assert "cannot reach the server" in done.stderr


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers like nginx.conf with every backend down: 503 in the API's envelope."""

    def _answer(self) -> None:
        body = b'{"error": {"code": "unavailable", "message": "no jobwatch server answered; try again shortly", "details": []}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer  # noqa: N815 (http.server's names)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    "args",
    [["jobs", "list"], ["report", "job-1", "--progress", "5"], ["watch", "job-1"]],
)
def test_a_temporarily_unavailable_server_exits_3_not_1(args: list[str]) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "jobwatch", *args, "--url", url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 3, result.stderr
    assert "unavailable right now" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "list"],
        ["jobs", "create", "--name", "x"],
        ["tenants", "list"],
        ["tokens", "list"],
        ["share", "some-job"],
    ],
)
def test_a_bad_url_is_a_usage_error_not_a_traceback(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from jobwatch.cli import main

    assert main([*command, "--url", "notaurl"]) == 2
    err = capsys.readouterr().err
    assert "url must start with http:// or https://" in err
    assert "Traceback" not in err
