"""The seed's TypeScript clients, as written, in Node 20 against ``jobwatch serve``.

Each file under ``tests/seed_clients/`` holds one example of the seed document
verbatim, after the constants it leaves undefined (``API_URL``, ``jobId``);
esbuild strips the types and Node runs it.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import requests

from jobwatch.server.deploy.process import ServerProcess
from tests.paths import REPO
from tests.seed_clients.npm import Bundler, node, verbatim

SEED = REPO.parent / "shared" / "seed" / "000_6259494c81bd8af5.txt"
WORKER = "your_worker_id"
"""The ``workerId`` the seed's examples send."""
NUMBER = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"

pytestmark = pytest.mark.slow


def run_seed(bundler: Bundler, name: str, url: str, job_id: str) -> str:
    """Bundle and run one seed example; returns what it printed."""
    script = bundler.build(name)
    env = {**os.environ, "API_URL": url, "JOB_ID": job_id}
    done = subprocess.run(
        [node(), str(script)], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def get(served: ServerProcess, path: str) -> dict:
    response = requests.get(served.url + path, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def new_job(served: ServerProcess, job_id: str, *, started: bool = True) -> None:
    """A job priced like a GPU rental; ``started``: a first update at 10 % already came."""
    requests.put(f"{served.url}/api/jobs/{job_id}", json={"pricePerHour": 2.5}, timeout=10)
    if started:
        body = {"workerId": WORKER, "progress": 10}
        requests.post(f"{served.url}/api/jobs/{job_id}/progress", json=body, timeout=10)


@pytest.mark.parametrize(
    "name",
    [
        "worker_basic.ts",
        "worker_gpu.ts",
        "worker_logs.ts",
        "worker_complete.ts",
        "monitor.ts",
        "filtered_logs.ts",
    ],
)
def test_the_files_hold_the_seed_verbatim(name: str) -> None:
    if not SEED.is_file():
        pytest.skip(f"the seed document is not at {SEED} (outside this repository)")
    assert verbatim(name) in SEED.read_text()


def test_basic_update_prints_time_remaining_and_cost(
    served: ServerProcess, seed_bundler: Bundler
) -> None:
    new_job(served, "ts-basic")
    out = run_seed(seed_bundler, "worker_basic.ts", served.url, "ts-basic")
    # 10 % -> 45 % since the first update: the rate is known, so is the estimate
    assert re.fullmatch(rf"Time remaining: {NUMBER}s\nCost so far: {NUMBER} QUBIC\n", out), out
    job = get(served, "/api/jobs/ts-basic")["job"]
    assert (job["progress"], job["currentOperation"]) == (45, "Training epoch 5/10")
    assert job["workerId"] == WORKER


def test_basic_update_on_a_new_job_prints_a_time_remaining_and_null_cost(
    served: ServerProcess, seed_bundler: Bundler
) -> None:
    requests.put(f"{served.url}/api/jobs/ts-first", json={}, timeout=10)
    out = run_seed(seed_bundler, "worker_basic.ts", served.url, "ts-first")
    # the seed's troubleshooting: a number once started with progress > 0 (its
    # average, with nothing elapsed yet the documented minimum); no price, no cost
    assert out == "Time remaining: 0.001s\nCost so far: null QUBIC\n"


SEED_METRICS = {
    "gpuUtilization": 87,
    "gpuMemoryUsed": 18000,
    "gpuMemoryTotal": 24000,
    "gpuTemperature": 72,
    "powerUsage": 350,
}


def test_update_with_gpu_metrics_is_stored(served: ServerProcess, seed_bundler: Bundler) -> None:
    new_job(served, "ts-gpu")
    assert run_seed(seed_bundler, "worker_gpu.ts", served.url, "ts-gpu") == ""
    latest = get(served, "/api/jobs/ts-gpu/monitor")["metrics"]["latest"]
    assert {k: latest[k] for k in SEED_METRICS} == SEED_METRICS


def test_update_with_logs_is_stored(served: ServerProcess, seed_bundler: Bundler) -> None:
    new_job(served, "ts-logs")
    assert run_seed(seed_bundler, "worker_logs.ts", served.url, "ts-logs") == ""
    logs = get(served, "/api/jobs/ts-logs/logs")["logs"]
    assert [(line["level"], line["message"]) for line in logs] == [
        ("info", "Epoch 5/10 completed"),
        ("info", "Loss: 0.0234, Accuracy: 98.5%"),
        ("warning", "GPU temperature high: 82°C"),
    ]


def test_complete_update_then_the_monitoring_examples(
    served: ServerProcess, seed_bundler: Bundler
) -> None:
    new_job(served, "ts-full")
    assert run_seed(seed_bundler, "worker_complete.ts", served.url, "ts-full") == ""

    out = run_seed(seed_bundler, "monitor.ts", served.url, "ts-full").splitlines()
    assert out[:5] == [
        "Status: running",
        "Progress: 45%",
        "Operation: Training epoch 5/10",
        "GPU: 87%",
        "Temp: 72°C",
    ]
    assert re.fullmatch(rf"Time remaining: {NUMBER}s", out[5]), out
    assert re.fullmatch(rf"Cost so far: {NUMBER} QUBIC", out[6]), out

    out = run_seed(seed_bundler, "filtered_logs.ts", served.url, "ts-full").splitlines()
    assert [re.sub(r" \S+Z: ", " TS: ", line) for line in out] == [
        "[info] TS: Epoch 5/10 completed",
        "[info] TS: Loss: 0.0234, Accuracy: 98.5%",
    ]
