"""The kernel's side of a ``JobMonitor``: its CPU and comm traffic while a job reports,
and how soon a monitor cell draws its progress bar in JupyterLab.

CPU: a real IPython kernel (jupyter_client, :class:`tests.kernel.Kernel`) shows a
``JobMonitor`` of a job whose ``/monitor`` snapshot already holds
:data:`HISTORY` samples; the kernel process's CPU time (user + system, from
``/proc`` through psutil) is read over a window with the job quiet (the
baseline: the same monitor, only its once-a-second tick) and over a window
with a worker posting :data:`RATE` updates a second, each with
:data:`GPUS` GPUs and :data:`LOG_LINES` log lines. Everything the kernel
publishes on iopub meanwhile is counted (messages, and bytes as the browser
receives them: :func:`tests.kernel.wire_size`). The server and the worker
run in this process, so their CPU is not the kernel's.

Time to first draw: see :mod:`benchmarks.kernel_browser`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from benchmarks.memory import MessageCounter
from benchmarks.report import Row

RATE = 10.0
"""Updates a second the worker posts during the loaded window."""
GPUS = 8
"""GPUs in each update's metrics."""
LOG_LINES = 5
"""Log lines in each update."""
HISTORY = 2_000
"""Samples the job holds before the monitor starts (all in ``/monitor``'s last 60 s)."""
GOAL_CPU = 2.0
"""Percent of one core the monitor may cost under load (a kernel stays responsive to the user's own cells)."""


def update_body(i: int, gpus: int = GPUS, log_lines: int = LOG_LINES) -> dict[str, Any]:
    """The ``i``-th progress update: ``gpus`` GPUs of metrics and ``log_lines`` log lines."""
    return {
        "workerId": "bench",
        "progress": min(99.0, 5 + i / 100),
        "currentOperation": f"step {i}",
        "metrics": {
            "gpus": [
                {
                    "index": g,
                    "uuid": f"GPU-{g}",
                    "name": "NVIDIA H100 80GB HBM3",
                    "gpuUtilization": float((i * 7 + g * 13) % 101),
                    "gpuMemoryUsed": 60_000.0 + (i + g) % 100,
                    "gpuMemoryTotal": 81_559.0,
                    "gpuTemperature": 60.0 + (i + g) % 20,
                    "powerUsage": 500.0 + (i * 3 + g) % 150,
                }
                for g in range(gpus)
            ]
        },
        "logLines": [
            {"level": "info", "message": f"step {i}.{k}: loss {1 / (i + k + 1):.5f}"}
            for k in range(log_lines)
        ],
    }


def seed_job(url: str, job_id: str, samples: int = HISTORY) -> None:
    """Create ``job_id`` and post ``samples`` updates as fast as the server takes them."""
    from jobwatch import Client

    with Client(url) as client:
        client.create_job(job_id=job_id, name="kernel benchmark", price_per_hour=3.6)
    with requests.Session() as session:
        for i in range(samples):
            body = update_body(i, log_lines=1 if i % 10 == 0 else 0)
            session.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=10)


def post_at_rate(url: str, job_id: str, seconds: float, start_index: int) -> int:
    """:data:`RATE` updates a second for ``seconds``; returns how many were posted."""
    sent = 0
    with requests.Session() as session:
        start = time.monotonic()
        for i in range(int(seconds * RATE)):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = update_body(start_index + i)
            session.post(f"{url}/api/jobs/{job_id}/progress", json=body, timeout=10)
            sent += 1
    return sent


class IopubCounter(MessageCounter):
    """Drains a kernel client's iopub channel in a thread, counting comm traffic."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        from tests.kernel import wire_size

        while not self._stop.is_set():
            try:
                msg = self._client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["msg_type"].startswith("comm_"):
                self.add(wire_size(msg))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


@dataclass(frozen=True)
class Window:
    """One measured window: the kernel's CPU (percent of one core) and its comm traffic."""

    seconds: float
    cpu_percent: float
    bytes_per_s: float
    messages_per_s: float
    updates_per_s: float


@contextlib.contextmanager
def monitor_kernel(url: str, job_id: str) -> Iterator[tuple[Any, int]]:
    """A kernel showing a ``JobMonitor`` of ``job_id``: ``(Kernel, kernel pid)``."""
    from tests.kernel import Kernel

    kernel = Kernel()
    try:
        pid = int(kernel.value("__import__('os').getpid()"))
        cell = kernel.run(
            "import time, jobwatch\n"
            f"monitor = jobwatch.JobMonitor({job_id!r}, url={url!r})\n"
            "display(monitor)\n"
            "deadline = time.monotonic() + 20\n"
            "while monitor.state.connection != 'live' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            "print(monitor.state.connection, len(monitor.state.samples))"
        )
        assert cell.error() is None, cell.error()
        assert cell.text().split()[0] == "live", cell.text()
        yield kernel, pid
    finally:
        kernel.stop()


def measure(pid: int, counter: IopubCounter, seconds: float, post: Any = None) -> Window:
    """The kernel's CPU and comm traffic over ``seconds``, while ``post()`` (if given)
    runs in a thread and returns how many updates it sent."""
    import psutil

    process = psutil.Process(pid)
    sent = [0]
    worker = (
        threading.Thread(target=lambda: sent.__setitem__(0, post()), daemon=True) if post else None
    )
    counter.take()
    before = process.cpu_times()
    started = time.monotonic()
    if worker is not None:
        worker.start()
        worker.join(seconds * 3 + 30)
    remaining = started + seconds - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    time.sleep(0.3)  # the last throttled render of the window
    elapsed = time.monotonic() - started
    after = process.cpu_times()
    size, messages = counter.take()
    cpu = (after.user - before.user) + (after.system - before.system)
    return Window(
        elapsed, 100 * cpu / elapsed, size / elapsed, messages / elapsed, sent[0] / elapsed
    )


def cpu_windows(url: str, job_id: str, seconds: float) -> tuple[Window, Window, int]:
    """(quiet window, loaded window, samples the monitor started with)."""
    with monitor_kernel(url, job_id) as (kernel, pid):
        started_with = int(kernel.value("len(monitor.state.samples)"))
        time.sleep(1.0)  # the first renders settle
        counter = IopubCounter(kernel.client)
        try:
            quiet = measure(pid, counter, seconds)
            loaded = measure(
                pid, counter, seconds, post=lambda: post_at_rate(url, job_id, seconds, HISTORY)
            )
        finally:
            counter.stop()
    return quiet, loaded, started_with


def cpu_rows(url: str, job_id: str, quick: bool) -> list[Row]:
    """Rows: the kernel's CPU and iopub traffic, quiet (baseline) and at :data:`RATE`/s."""
    seconds = 4.0 if quick else 40.0
    quiet, loaded, started_with = cpu_windows(url, job_id, seconds)

    def figure(w: Window) -> str:
        return (
            f"{w.cpu_percent:.2f} % of a core; iopub {w.bytes_per_s / 1024:,.1f} KB/s, "
            f"{w.messages_per_s:,.1f} comm messages/s"
        )

    note = (
        f"{seconds:.0f} s windows; a real kernel; monitor started with {started_with:,} samples "
        f"({GPUS} GPUs)"
    )
    cost = loaded.cpu_percent - quiet.cpu_percent
    return [
        Row("kernel", "JobMonitor in a kernel, job quiet (baseline)", figure(quiet), 1.0, "", note),
        Row(
            "kernel",
            f"JobMonitor in a kernel, {RATE:.0f} updates/s x {GPUS} GPUs x {LOG_LINES} log lines",
            figure(loaded) + f" (+{cost:.2f} points over quiet)",
            loaded.cpu_percent / quiet.cpu_percent if quiet.cpu_percent else None,
            f"<= {GOAL_CPU:.0f} % of a core",
            f"{loaded.updates_per_s:.1f} updates/s achieved; ratio = loaded / quiet CPU",
        ),
    ]


def run(quick: bool) -> list[Row]:
    """Rows: the kernel's CPU and traffic, then the browser's time to the first bar."""
    from benchmarks import kernel_browser
    from jobwatch.server import EmbeddedServer

    job_id = "kernel-bench"
    with EmbeddedServer() as server:
        seed_job(server.url, job_id)
        rows = cpu_rows(server.url, job_id, quick)
        rows += kernel_browser.rows(server.url, job_id, quick)
    return rows
