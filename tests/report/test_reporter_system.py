"""A Reporter on this machine (no NVIDIA GPU) sends its system metrics to a real server:
CPU, memory, the process tree's memory, disk and network, once per node."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
import requests

from jobwatch.client.rest import Client
from jobwatch.contract.metrics import GPU_FIELDS, SYSTEM_FIELDS, metric
from jobwatch.server import EmbeddedServer
from tests.conftest import wait_for

MIB = 1024 * 1024

BUSY_RUN = textwrap.dedent(
    """
    import multiprocessing, sys, time
    from jobwatch import Reporter

    def hold(ready):  # a DataLoader worker, say: 64 MiB resident
        data = bytearray(64 * 2**20)
        data[::4096] = b"x" * len(data[::4096])
        ready.set()
        time.sleep(120)

    if __name__ == "__main__":
        url, job_id = sys.argv[1:]
        ready = multiprocessing.get_context("fork").Event()
        worker = multiprocessing.get_context("fork").Process(target=hold, args=(ready,), daemon=True)
        worker.start()
        ready.wait(30)
        with Reporter(job_id, url=url, interval=0.2) as report:  # gpu="auto": none here
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < 2.5:  # busy, as training is
                sum(i * i for i in range(10_000))
                report.update(min(99.0, elapsed * 40), "busy")
        worker.kill()
    """
)


def test_a_busy_run_without_a_gpu_leaves_system_metrics(
    module_server: EmbeddedServer, client: Client, job_id: str
) -> None:
    """The failure this feature answers: a busy run on a machine without an NVIDIA GPU
    left ``/metrics`` empty."""
    done = subprocess.run(
        [sys.executable, "-c", BUSY_RUN, module_server.url, job_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = client.metrics(job_id, time_range=3600)
    assert len(rows) >= 5  # one a request, every 0.2 s: the metrics keep the requests coming
    for row in rows:
        assert {name: row[name] for name in GPU_FIELDS} == dict.fromkeys(GPU_FIELDS)
        assert "gpus" not in row
        assert row["memoryUsed"] <= row["memoryTotal"]
        assert row["diskUsed"] <= row["diskTotal"]
    newest = rows[-1]
    assert all(newest[name] is not None for name in SYSTEM_FIELDS), newest
    assert max(row["cpuUtilization"] or 0 for row in rows) > 0
    # the reporting process and its child, which holds 64 MiB
    assert newest["processMemory"] * MIB >= 64 * MIB + 20 * MIB
    assert client.get_job(job_id)["status"] == "completed"


def test_the_system_metrics_are_exported_to_prometheus(
    make_reporter: Any, module_server: EmbeddedServer, client: Client, job_id: str
) -> None:
    reporter = make_reporter(job_id, name="no gpu")
    reporter.update(5, "training")
    assert reporter.flush(timeout=10)
    wait_for(lambda: (client.monitor(job_id)["metrics"]["latest"] or {}).get("memoryTotal"))
    latest = client.monitor(job_id)["metrics"]["latest"]
    text = requests.get(f"{module_server.url}/api/prometheus", timeout=10).text
    labels = f'{{job_id="{job_id}",job_name="no gpu",worker="{reporter.worker_id}"}}'
    exported = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.endswith(tuple("0123456789")) and labels in line
    }
    total = metric("memoryTotal")
    assert exported[total.prometheus] == latest["memoryTotal"] * MIB
    assert "jobwatch_cpu_utilization_percent" in text
    assert "# HELP jobwatch_network_receive_bytes_per_second network received" in text
    assert not any(name.startswith("jobwatch_gpu_") for name in exported)  # no GPU, no series


def test_system_false_sends_gpu_metrics_alone(
    make_reporter: Any, client: Client, job_id: str
) -> None:
    reporter = make_reporter(job_id, gpu=lambda: {"gpuUtilization": 50.0}, system=False)
    reporter.update(1)
    assert reporter.flush(timeout=10)
    latest = client.monitor(job_id)["metrics"]["latest"]
    assert latest["gpuUtilization"] == 50.0
    assert not set(SYSTEM_FIELDS) & set(latest)


def test_a_gpu_callables_values_come_over_the_sampled_ones(
    make_reporter: Any, client: Client, job_id: str
) -> None:
    reporter = make_reporter(job_id, gpu=lambda: {"gpuUtilization": 50.0, "cpuUtilization": 12.5})
    reporter.update(1)
    assert reporter.flush(timeout=10)
    latest = client.monitor(job_id)["metrics"]["latest"]
    assert (latest["gpuUtilization"], latest["cpuUtilization"]) == (50.0, 12.5)
    assert latest["memoryTotal"] is not None  # the rest is sampled


@pytest.mark.parametrize(
    ("rank", "local_rank", "sends"),
    [(0, 0, True), (1, 1, False), (2, 0, True)],
    ids=["rank 0", "rank 1 on node 0", "rank 2, local rank 0 of node 1"],
)
def test_each_nodes_local_rank_0_sends_the_system_metrics(
    make_reporter: Any, client: Client, job_id: str, rank: int, local_rank: int, sends: bool
) -> None:
    """As a node's GPUs are sampled once, by its local rank 0 (jobwatch/report/launcher.py)."""
    reporter = make_reporter(
        job_id, rank=rank, world_size=4, local_rank=local_rank, node=f"node-{rank // 2}"
    )
    reporter.update(1)
    assert reporter.flush(timeout=10)
    latest = client.monitor(job_id)["metrics"]["latest"]
    if sends:
        assert latest is not None and latest["memoryTotal"] is not None
    else:
        assert latest is None


def test_system_must_be_a_bool(make_reporter: Any, job_id: str) -> None:
    with pytest.raises(ValueError, match="system must be True or False"):
        make_reporter(job_id, system="yes")
