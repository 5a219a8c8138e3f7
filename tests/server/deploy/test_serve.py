"""``jobwatch serve`` as shipped (gunicorn + gevent), in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket

from jobwatch.server.deploy.process import ServerProcess, serve_command
from jobwatch.server.deploy.run import gunicorn_options
from tests.services import fresh_channel, fresh_schema, scale_urls

pytestmark = pytest.mark.slow


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobwatch", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_acknowledged_updates_survive_kill_9(tmp_path):
    db = tmp_path / "jobs.db"
    served = ServerProcess(serve_command(db))
    n_workers, per_worker = 8, 40
    try:
        for w in range(n_workers):
            r = requests.put(
                f"{served.url}/api/jobs/job-{w}", json={"pricePerHour": 1.0}, timeout=10
            )
            assert r.status_code == 201

        def work(w: int) -> list[int]:
            acked = []
            with requests.Session() as session:
                for i in range(per_worker):
                    body = {
                        "workerId": f"worker-{w}",
                        "progress": (i + 1) * 100 / per_worker,
                        "currentOperation": f"step {i}",
                        "metrics": {"gpuUtilization": 50, "gpuMemoryUsed": 1, "gpuMemoryTotal": 2},
                        "logLines": [{"level": "info", "message": f"w{w} line {i}"}],
                    }
                    r = session.post(
                        f"{served.url}/api/jobs/job-{w}/progress", json=body, timeout=10
                    )
                    assert r.status_code == 200, r.text
                    acked.append(r.json()["seq"])
            return acked

        with ThreadPoolExecutor(n_workers) as pool:
            acked = list(pool.map(work, range(n_workers)))
    finally:
        served.kill()  # SIGKILL right after the last acknowledgement

    restarted = ServerProcess(serve_command(db))
    try:
        for w in range(n_workers):
            logs = requests.get(
                f"{restarted.url}/api/jobs/job-{w}/logs", params={"limit": 1000}, timeout=10
            ).json()
            assert [line["message"] for line in logs["logs"]] == [
                f"w{w} line {i}" for i in range(per_worker)
            ]
            job = requests.get(f"{restarted.url}/api/jobs/job-{w}", timeout=10).json()["job"]
            assert job["progress"] == 100.0
            assert job["seq"] == acked[w][-1] == 2 * per_worker
            samples = requests.get(
                f"{restarted.url}/api/jobs/job-{w}/metrics", params={"timeRange": 3600}, timeout=10
            ).json()["metrics"]
            assert len(samples) == per_worker
    finally:
        restarted.stop()


def test_a_server_stopped_as_it_starts_exits_by_itself(tmp_path):
    # Its gunicorn worker may still be booting, when a SIGTERM is lost (it comes before
    # the worker's own handlers); stopped in less than gunicorn's graceful timeout, the
    # server must still end by itself, not be killed.
    graceful = gunicorn_options("127.0.0.1", 0)["graceful_timeout"]
    served = ServerProcess(serve_command(tmp_path / "jobs.db"))
    served.stop(timeout=graceful - 2)
    assert served.proc.returncode == 0, served.output()


def test_cli_creates_and_lists_jobs_and_streams(tmp_path):
    served = ServerProcess(serve_command(tmp_path / "jobs.db"))
    try:
        created = _cli(
            "jobs", "create", "--name", "resnet", "--price-per-hour", "2.5", url=served.url
        )
        assert created.returncode == 0, created.stderr
        job_id = created.stdout.strip()
        listing = _cli("jobs", "list", url=served.url)
        assert listing.returncode == 0
        assert (
            job_id in listing.stdout and "resnet" in listing.stdout and "pending" in listing.stdout
        )

        ws = websocket.create_connection(served.ws_url, timeout=5)
        ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": job_id}))
        assert json.loads(ws.recv())["type"] == "subscribed"
        requests.post(
            f"{served.url}/api/jobs/{job_id}/progress",
            json={"workerId": "w", "progress": 45, "currentOperation": "Training epoch 5/10"},
            timeout=10,
        )
        event = json.loads(ws.recv())
        assert event["type"] == "JOB_PROGRESS"
        assert event["data"]["progress"] == 45
        assert event["data"]["currentOperation"] == "Training epoch 5/10"
        ws.close()
    finally:
        served.stop()


def test_cli_errors_are_clear(tmp_path):
    bad_price = _cli("jobs", "create", "--price-per-hour", "abc", url="http://127.0.0.1:9")
    assert bad_price.returncode == 2
    assert "price must be a number" in bad_price.stderr
    unreachable = _cli("jobs", "list", url="http://127.0.0.1:9")
    assert unreachable.returncode == 3
    assert "cannot reach the server" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    served = ServerProcess(serve_command(tmp_path / "jobs.db"))
    try:
        first = _cli("jobs", "create", "--id", "dup", url=served.url)
        assert first.returncode == 0
        second = _cli("jobs", "create", "--id", "dup", url=served.url)
        assert second.returncode == 1
        assert "already exists" in second.stderr
    finally:
        served.stop()


def test_serve_prints_urls_and_database(tmp_path):
    served = ServerProcess(serve_command(tmp_path / "x.db"))
    try:
        out = served.output()
        assert f"WebSocket {served.ws_url}" in out
        assert str(tmp_path / "x.db") in out
    finally:
        served.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """A SQLite file, or a fresh schema on the test PostgreSQL."""
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.db")
        return
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        yield url


def test_prune_deletes_only_old_finished_jobs(database):
    db = database
    served = ServerProcess(serve_command(db))
    try:
        base = served.url
        for job_id in ("done", "live"):
            requests.put(f"{base}/api/jobs/{job_id}", json={}, timeout=10)
            requests.post(
                f"{base}/api/jobs/{job_id}/progress",
                json={
                    "workerId": "w",
                    "progress": 50,
                    "logLines": [{"level": "info", "message": "x"}],
                    "metrics": {"gpuUtilization": 1},
                },
                timeout=10,
            )
        requests.post(f"{base}/api/jobs/done/complete", json={"workerId": "w"}, timeout=10)
    finally:
        served.stop()
    keep = subprocess.run(
        [sys.executable, "-m", "jobwatch", "prune", "--days", "1", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert keep.returncode == 0, keep.stderr
    assert "deleted 0 jobs" in keep.stdout
    gone = subprocess.run(
        [sys.executable, "-m", "jobwatch", "prune", "--days", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "deleted 1 jobs, 1 samples, 1 log lines" in gone.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "jobwatch", "prune", "--days", "-3", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "days must be a number from 0" in bad.stderr
    restarted = ServerProcess(serve_command(db))
    try:
        assert requests.get(f"{restarted.url}/api/jobs/done", timeout=10).status_code == 404
        live = requests.get(f"{restarted.url}/api/jobs/live/logs", timeout=10).json()
        assert live["total"] == 1
    finally:
        restarted.stop()


def test_serve_with_two_workers_on_postgres_and_redis(tmp_path):
    postgres, redis_url = scale_urls()
    with fresh_schema(postgres) as url:
        served = ServerProcess(
            serve_command(
                url, "--redis-url", redis_url, "--redis-channel", fresh_channel(), "--workers", "2"
            )
        )
        try:
            assert "2 worker(s)" in served.output()
            assert "broker: redis://" in served.output()
            created = requests.post(f"{served.url}/api/jobs", json={"name": "n"}, timeout=10)
            assert created.status_code == 201
        finally:
            served.stop()
