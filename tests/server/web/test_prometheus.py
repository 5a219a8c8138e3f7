"""``GET /api/prometheus``: the exposition itself, the read token, and a real Prometheus
server scraping jobwatch on loopback and answering PromQL through its HTTP API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from jobwatch.server import EmbeddedServer
from tests.conftest import Api, FakeClock, WsClient, free_port
from tests.paths import REPO

MIB = 1024 * 1024
DASHBOARD = REPO / "server" / "grafana-dashboard.json"
SCRAPE_INTERVAL = "1s"
"""How often the test's Prometheus scrapes jobwatch."""
PROMETHEUS_WAIT = 60.0
"""Seconds the test waits for Prometheus to start and hold a scraped value."""


def samples(api: Api, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = api.get("/api/prometheus", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def test_running_jobs_and_their_gpus_are_exported(
    api: Api, clock: FakeClock, make_job: Callable[..., dict[str, Any]]
) -> None:
    job = make_job(id="train-1", name="resnet", pricePerHour=3.6)
    done = make_job(id="done-1")
    api.post("/api/jobs/done-1/complete", json={"workerId": "w"})
    gpus = [
        {"index": 0, "gpuUtilization": 90, "gpuMemoryUsed": 1000, "gpuMemoryTotal": 2000},
        {"index": 3, "gpuUtilization": 10, "gpuTemperature": 70, "powerUsage": 300},
    ]
    body = {"workerId": "box", "progress": 0, "metrics": {"gpus": gpus}}
    assert api.post("/api/jobs/train-1/progress", json=body).status_code == 200
    clock.advance(100)
    body = {"workerId": "box", "progress": 50, "metrics": {"gpus": gpus}}
    assert api.post("/api/jobs/train-1/progress", json=body).status_code == 200

    got = samples(api)
    job_labels = {"job_id": job["id"], "job_name": "resnet", "worker": "box"}
    assert got[("jobwatch_job_progress_percent", labels(**job_labels))] == 50
    assert got[("jobwatch_job_elapsed_seconds", labels(**job_labels))] == 100
    assert got[("jobwatch_job_time_remaining_seconds", labels(**job_labels))] == pytest.approx(100)
    assert got[("jobwatch_job_cost", labels(**job_labels, currency="QUBIC"))] == pytest.approx(0.1)
    gpu0, gpu3 = labels(**job_labels, gpu="0", uuid=""), labels(**job_labels, gpu="3", uuid="")
    assert got[("jobwatch_gpu_utilization_percent", gpu0)] == 90
    assert got[("jobwatch_gpu_memory_used_bytes", gpu0)] == 1000 * MIB
    assert got[("jobwatch_gpu_memory_total_bytes", gpu0)] == 2000 * MIB
    assert got[("jobwatch_gpu_temperature_celsius", gpu3)] == 70
    assert got[("jobwatch_gpu_power_watts", gpu3)] == 300
    # unknown is left out, never exported as 0
    assert ("jobwatch_gpu_temperature_celsius", gpu0) not in got
    assert not any(dict(key[1]).get("job_id") == done["id"] for key in got)
    status_200 = labels(method="POST", endpoint="api.progress", status="200")
    assert got[("jobwatch_http_requests_total", status_200)] == 2
    assert got[("jobwatch_progress_ingest_seconds_count", frozenset())] == 2


def test_a_sample_without_per_gpu_values_is_labelled_all(
    api: Api, make_job: Callable[..., dict[str, Any]]
) -> None:
    make_job(id="flat")
    body = {"workerId": "w", "progress": 5, "metrics": {"gpuUtilization": 42}}
    api.post("/api/jobs/flat/progress", json=body)
    got = samples(api)
    key = labels(job_id="flat", job_name="", worker="w", gpu="all", uuid="")
    assert got[("jobwatch_gpu_utilization_percent", key)] == 42


def test_system_metrics_are_one_series_per_job_in_base_units(
    api: Api, make_job: Callable[..., dict[str, Any]]
) -> None:
    make_job(id="cpu", name="no gpu")
    system = {"cpuUtilization": 63.5, "memoryUsed": 1024, "memoryTotal": 4096}
    system |= {"processMemory": 512, "diskRead": 2048, "networkOut": 0}
    body = {"workerId": "w", "progress": 5, "metrics": system}
    assert api.post("/api/jobs/cpu/progress", json=body).status_code == 200
    got = samples(api)
    job = labels(job_id="cpu", job_name="no gpu", worker="w")
    assert got[("jobwatch_cpu_utilization_percent", job)] == 63.5
    assert got[("jobwatch_memory_used_bytes", job)] == 1024 * MIB
    assert got[("jobwatch_memory_total_bytes", job)] == 4096 * MIB
    assert got[("jobwatch_process_memory_bytes", job)] == 512 * MIB
    assert got[("jobwatch_disk_read_bytes_per_second", job)] == 2048
    assert got[("jobwatch_network_transmit_bytes_per_second", job)] == 0
    # unknown is left out, never 0; a sample without GPU values has no GPU series
    assert ("jobwatch_disk_used_bytes", job) not in got
    assert not any(
        name.startswith("jobwatch_gpu_") and dict(key).get("job_id") == "cpu" for name, key in got
    )


def test_gpus_sharing_an_index_are_distinct_series(
    api: Api, make_job: Callable[..., dict[str, Any]]
) -> None:
    # Two series with one label set are one series to Prometheus: it keeps one
    # of the two values per scrape and drops the other, silently.
    make_job(id="mig")
    gpus = [
        {"index": 0, "uuid": "MIG-1111", "name": "A100 MIG 3g.20gb", "gpuUtilization": 10},
        {"index": 0, "uuid": "MIG-2222", "name": "A100 MIG 1g.5gb", "gpuUtilization": 20},
        {"index": 1, "gpuUtilization": 30},
        {"index": 1, "gpuUtilization": 40},
    ]
    api.post(
        "/api/jobs/mig/progress", json={"workerId": "w", "progress": 1, "metrics": {"gpus": gpus}}
    )
    response = api.get("/api/prometheus")
    util = [
        s
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "jobwatch_gpu_utilization_percent" and s.labels["job_id"] == "mig"
    ]
    assert len(util) == 4
    assert len({frozenset(s.labels.items()) for s in util}) == 4, util
    job = {"job_id": "mig", "job_name": "", "worker": "w"}
    got = samples(api)
    assert got[("jobwatch_gpu_utilization_percent", labels(**job, gpu="0", uuid="MIG-1111"))] == 10
    assert got[("jobwatch_gpu_utilization_percent", labels(**job, gpu="0", uuid="MIG-2222"))] == 20
    assert got[("jobwatch_gpu_utilization_percent", labels(**job, gpu="1", uuid=""))] == 30
    assert got[("jobwatch_gpu_utilization_percent", labels(**job, gpu="1#2", uuid=""))] == 40


def test_subscribers_are_counted(api: Api, ws_factory: Callable[[], WsClient]) -> None:
    ws_factory(), ws_factory()
    deadline = time.monotonic() + 5
    while samples(api)[("jobwatch_websocket_subscribers", frozenset())] != 2:
        assert time.monotonic() < deadline, "two open sockets were not counted"
        time.sleep(0.05)
    assert samples(api)[("jobwatch_websocket_queued_bytes", frozenset())] >= 0


def test_the_read_token_is_needed() -> None:
    config = {"DATABASE": ":memory:", "WRITE_TOKEN": "w" * 20, "READ_TOKEN": "r" * 20}
    with EmbeddedServer(config=config) as server:
        api = Api(server.url)
        refused = api.get("/api/prometheus")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        samples(api, Authorization="Bearer " + "r" * 20)


def _dashboard_queries(job_id: str) -> list[str]:
    """The PromQL of every panel of the Grafana dashboard, for one job."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"].replace("$job_id", job_id) for p in panels for t in p["targets"]]


def test_the_dashboard_uses_only_exported_series(
    api: Api, clock: FakeClock, make_job: Callable[..., dict[str, Any]]
) -> None:
    make_job(id="d", pricePerHour=1.0)
    metrics = {"gpuUtilization": 1, "gpuMemoryUsed": 1, "gpuTemperature": 1, "powerUsage": 1}
    metrics |= {"cpuUtilization": 1, "memoryUsed": 1, "memoryTotal": 2, "processMemory": 1}
    metrics |= {"diskRead": 1, "diskWrite": 1, "networkIn": 1, "networkOut": 1}
    for progress in (1, 2):
        api.post(
            "/api/jobs/d/progress", json={"workerId": "w", "progress": progress, "metrics": metrics}
        )
        clock.advance(10)
    exported = {name for name, _ in samples(api)}
    used = {n for q in _dashboard_queries("d") for n in re.findall(r"jobwatch_\w+", q)}
    assert used, "the dashboard has no jobwatch series"
    assert used <= exported, used - exported


# -- a real Prometheus ------------------------------------------------------------


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is not None:
        return binary
    reason = "prometheus is not installed (Debian: apt-get install prometheus)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; .ci/run installs it")
    pytest.skip(reason)


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Starts Prometheus scraping a jobwatch URL with a bearer token; yields its base URL."""
    binary = _prometheus_binary()
    started: list[subprocess.Popen[bytes]] = []

    def start(target: str, token: str) -> str:
        (tmp_path / "token").write_text(token)
        (tmp_path / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\n"
            "scrape_configs:\n"
            "  - job_name: jobwatch\n"
            "    metrics_path: /api/prometheus\n"
            "    authorization:\n"
            f"      credentials_file: {tmp_path / 'token'}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        started.append(process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    try:
        response = requests.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    except requests.ConnectionError:
        return []  # still starting
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@pytest.mark.slow
def test_a_real_prometheus_scrapes_jobwatch(prometheus_for: Callable[[str, str], str]) -> None:
    read_token = "r" * 24
    config = {"DATABASE": ":memory:", "WRITE_TOKEN": "w" * 24, "READ_TOKEN": read_token}
    with EmbeddedServer(config=config) as server:
        write = Api(server.url)
        write.session.headers["Authorization"] = "Bearer " + "w" * 24
        write.put("/api/jobs/scraped", json={"name": "bert", "pricePerHour": 1.0})
        body = {
            "workerId": "box",
            "progress": 37.5,
            "metrics": {
                "gpus": [
                    {"index": 1, "uuid": "MIG-1111", "gpuUtilization": 81},
                    {"index": 1, "uuid": "MIG-2222", "gpuUtilization": 82},
                ]
            },
        }
        assert write.post("/api/jobs/scraped/progress", json=body).status_code == 200
        base = prometheus_for(f"127.0.0.1:{server.port}", read_token)

        promql = 'jobwatch_job_progress_percent{job_id="scraped"}'
        deadline = time.monotonic() + PROMETHEUS_WAIT
        while not (result := _query(base, promql)):
            assert time.monotonic() < deadline, "Prometheus never held the scraped progress"
            time.sleep(0.5)
        assert result[0]["metric"]["job_name"] == "bert"
        assert result[0]["metric"]["worker"] == "box"
        assert float(result[0]["value"][1]) == 37.5
        gpu = _query(base, 'jobwatch_gpu_utilization_percent{job_id="scraped", gpu="1"}')
        by_uuid = {g["metric"]["uuid"]: float(g["value"][1]) for g in gpu}
        assert by_uuid == {"MIG-1111": 81, "MIG-2222": 82}  # two slices of GPU 1, both kept
        up = _query(base, 'up{job="jobwatch"}')
        assert float(up[0]["value"][1]) == 1
        for promql in _dashboard_queries("scraped"):
            _query(base, promql)  # every panel's query is valid PromQL


def test_a_job_with_many_gpus_exports_a_bounded_number_of_series(
    api: Api, make_job: Callable[..., dict[str, Any]]
) -> None:
    from jobwatch.server.web.prometheus import LABEL_BYTES, MAX_GPUS_PER_JOB

    wide = "\U0001f600" * 1024
    make_job(id="big", name=wide)
    n = MAX_GPUS_PER_JOB + 40
    gpus = [{"index": i, "gpuUtilization": i % 100, "powerUsage": 100} for i in range(n)]
    body = {"workerId": wide, "progress": 5, "metrics": {"gpus": gpus}}
    assert api.post("/api/jobs/big/progress", json=body).status_code == 200
    got = samples(api)
    utilization = {
        dict(key[1])["gpu"]: value
        for key, value in got.items()
        if key[0] == "jobwatch_gpu_utilization_percent"
    }
    assert len(utilization) == MAX_GPUS_PER_JOB + 1
    rest = range(MAX_GPUS_PER_JOB, n)
    # beyond the limit, one series combines the rest as the flat field does
    assert utilization["rest"] == pytest.approx(sum(i % 100 for i in rest) / len(rest))
    power = [v for k, v in got.items() if k[0] == "jobwatch_gpu_power_watts"]
    assert sum(power) == 100 * n  # power adds up
    names = {dict(key[1]).get("job_name") for key in got} - {None}
    (name,) = names
    assert len(name.encode()) <= LABEL_BYTES and name.endswith("…")
