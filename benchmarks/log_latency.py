"""A log line from ``Reporter.log()`` to a WebSocket subscriber, at default settings.

A training loop (``update()`` every 10 ms, the Reporter's default 1 s
interval, no GPU) logs a line at random moments (0.2-0.6 s apart) whose text
is its ``time.time()``; a subscriber of the job's stream (``Client.subscribe``)
reads each ``JOB_LOGS`` event and takes the difference. Server: ``jobwatch
serve`` in a subprocess. ``python -m benchmarks.log_latency`` prints p50/p99
for the code on ``PYTHONPATH``, so the same script measures a before and an after.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.report import Row
from jobwatch import Client, Reporter
from jobwatch.server.deploy.process import ServerProcess, serve_command

LINES = 40
"""Lines timed per run (about 16 s of logging)."""


def measure(url: str, lines: int = LINES) -> list[float]:
    """Latencies (s) of ``lines`` log lines, worker call to subscriber."""
    job = f"latency-{random.randrange(16**6):06x}"
    reporter = Reporter(job, url=url, gpu=False)
    reporter.update(0.0, "start")
    assert reporter.flush(timeout=10)
    latencies: list[float] = []
    done = threading.Event()

    def subscribe() -> None:
        with Client(url) as client:
            for event in client.subscribe(job):
                if event["type"] != "JOB_LOGS":
                    continue
                now = time.time()
                for line in event["data"]["logs"]:
                    latencies.append(now - float(line["message"]))
                if len(latencies) >= lines:
                    done.set()
                    return

    thread = threading.Thread(target=subscribe, daemon=True)
    thread.start()
    time.sleep(1.0)  # the subscription is open
    rng = random.Random(7)
    step = 0
    for _ in range(lines):
        due = time.monotonic() + rng.uniform(0.2, 0.6)
        while time.monotonic() < due:
            step += 1
            reporter.update(min(99.0, step / 100), "training")
            time.sleep(0.01)
        reporter.log(repr(time.time()))
    done.wait(10)
    reporter.close(timeout=10)
    return latencies


def run(quick: bool = False) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "jobs.db"
        with ServerProcess(serve_command(db)) as server:
            latencies = measure(server.url, 15 if quick else LINES)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return [
        Row(
            "log latency",
            "Reporter.log() to a WebSocket subscriber, default settings",
            f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, max "
            f"{max(latencies) * 1000:.0f} ms ({len(latencies)} lines)",
            None,
            "p99 <= 300 ms (worker call to DOM)",
        )
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row.what}: {row.figure}")
