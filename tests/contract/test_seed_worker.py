"""The seed's Python worker, run as written against ``jobwatch serve``."""

from __future__ import annotations

import time

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess, serve_command
from tests.paths import TESTS

SEED_WORKER = TESTS / "seed_worker.py"


@pytest.mark.slow
def test_the_seed_python_worker_runs_unchanged(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # it sleeps 10 s per epoch
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: its metrics are None
    with ServerProcess(serve_command(tmp_path / "seed.db")) as server:
        requests.put(f"{server.url}/api/jobs/seed-job", json={"pricePerHour": 2.0}, timeout=10)
        names = {
            "__name__": "seed_worker",
            "API_URL": server.url,
            "job_id": "seed-job",
            "worker_id": "seed-worker",
            "loss": 0.0234,
            "acc": 98.5,
        }
        exec(compile(SEED_WORKER.read_text(), str(SEED_WORKER), "exec"), names)
        job = requests.get(f"{server.url}/api/jobs/seed-job", timeout=10).json()["job"]
        logs = requests.get(f"{server.url}/api/jobs/seed-job/logs?limit=100", timeout=10).json()
    out = capsys.readouterr().out
    assert job["progress"] == 100 and job["status"] == "running"
    assert job["currentOperation"] == "Training epoch 10/10" and job["workerId"] == "seed-worker"
    assert logs["total"] == 20
    assert logs["logs"][1]["message"] == "Loss: 0.0234, Accuracy: 98.50%"
    assert out.count("Error getting GPU metrics") == 10
    printed = [line for line in out.splitlines() if line.startswith("Progress:")]
    assert len(printed) == 10 and printed[-1].startswith("Progress: 100% - Time remaining: 0")
