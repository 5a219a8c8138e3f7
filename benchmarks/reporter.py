"""Reporting cost in the training loop: ``Reporter.update()`` against the
seed's synchronous ``requests.post`` per update, both against ``jobwatch serve``;
and ``gpu.sample()`` against one ``nvidia-smi`` process where a GPU exists."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.report import Row
from jobwatch import Reporter
from jobwatch.report import gpu
from jobwatch.server.deploy.process import ServerProcess, serve_command


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _update_cost(url: str, n: int) -> float:
    reporter = Reporter("bench-reporter", url=url, gpu=False, interval=1.0)
    try:
        costs = []
        for i in range(n):
            start = time.perf_counter()
            reporter.update(i * 100 / n, "Training")
            costs.append(time.perf_counter() - start)
        return _median_us(costs)
    finally:
        reporter.close(timeout=10)


def _log_metrics_cost(url: str, n: int) -> float:
    reporter = Reporter("bench-metrics", url=url, gpu=False, interval=1.0)
    try:
        costs = []
        for i in range(n):
            values = {"loss": 1.0 / (i + 1), "accuracy": i / n}
            start = time.perf_counter()
            reporter.log_metrics(values)
            costs.append(time.perf_counter() - start)
        return _median_us(costs)
    finally:
        reporter.close(timeout=30)


def _post_cost(url: str, n: int) -> float:
    requests.put(f"{url}/api/jobs/bench-post", json={}, timeout=10)
    costs = []
    with requests.Session() as session:  # kinder than the seed, which opens a connection each time
        for i in range(n):
            body = {"workerId": "w", "progress": i * 100 / n, "currentOperation": "Training"}
            start = time.perf_counter()
            session.post(f"{url}/api/jobs/bench-post/progress", json=body, timeout=10).json()
            costs.append(time.perf_counter() - start)
    return _median_us(costs)


def _gpu_rows() -> list[Row]:
    if gpu.sample() is None:
        return [
            Row(
                "reporter",
                "gpu.sample() vs nvidia-smi",
                "no NVIDIA GPU on this machine",
                None,
                "<= 1 ms per GPU",
            )
        ]
    n_gpus = len(gpu.sample()["gpus"])  # type: ignore[index]
    costs = []
    for _ in range(200):
        start = time.perf_counter()
        gpu.sample()
        costs.append(time.perf_counter() - start)
    rows = [
        Row(
            "reporter",
            f"gpu.sample() median, {n_gpus} GPU(s)",
            f"{_median_us(costs):.0f} us",
            None,
            "<= 1 ms per GPU",
        )
    ]
    smi = shutil.which("nvidia-smi")
    if smi:
        runs = []
        for _ in range(10):
            start = time.perf_counter()
            subprocess.run(
                [smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv"],
                capture_output=True,
                check=False,
            )
            runs.append(time.perf_counter() - start)
        smi_us = _median_us(runs)
        rows.append(
            Row(
                "reporter",
                "nvidia-smi --query-gpu process (baseline)",
                f"{smi_us / 1000:.1f} ms",
                smi_us / _median_us(costs),
                "ratio = how many times cheaper",
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    """Rows: median update() and log_metrics() cost, median POST cost, their
    ratio; GPU sampling."""
    n_updates = 20_000 if quick else 200_000
    n_posts = 200 if quick else 1_000
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(serve_command(Path(tmp) / "r.db")) as server,
    ):
        post_us = _post_cost(server.url, n_posts)
        update_us = _update_cost(server.url, n_updates)
        metrics_us = _log_metrics_cost(server.url, n_updates // 10)
    return [
        Row(
            "reporter",
            "seed: requests.post per update, keep-alive (baseline)",
            f"{post_us:.0f} us median",
            1.0,
            "",
        ),
        Row(
            "reporter",
            "Reporter.update() in a hot loop",
            f"{update_us:.2f} us median",
            post_us / update_us,
            ">= 100x cheaper, <= 10 us",
        ),
        Row(
            "reporter",
            "Reporter.log_metrics() of 2 values (ratio: x update())",
            f"{metrics_us:.2f} us median",
            metrics_us / update_us,
            "about 1 us",
        ),
        *_gpu_rows(),
    ]
