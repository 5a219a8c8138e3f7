"""Refusals that can never succeed, and keeping up with training metrics.

A quota (507) or a validation error (400/422) refuses what one request carried:
the reporter drops that part only, goes on sending progress and the
completion, says on the job what it dropped, and warns locally with the
server's message. Training metrics catch up like log lines do.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.errors import JobNotFound
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import free_port, wait_for


@pytest.fixture
def quota_server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"DATABASE": ":memory:", "MAX_JOB_LOG_BYTES": 2_000})
    yield srv
    srv.stop()


def _messages(client: Client, job_id: str) -> list[str]:
    logs: list[dict[str, Any]] = []
    while True:
        page = client.logs(job_id, limit=1000, offset=len(logs))
        logs += page["logs"]
        if len(logs) >= page["total"]:
            return [line["message"] for line in logs]


def test_quota_mid_run_drops_only_the_lines_and_the_completion_arrives(
    quota_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    reporter = Reporter(job_id, url=quota_server.url, gpu=False, interval=0.05)
    caplog.set_level(logging.WARNING, logger="jobwatch.report.reporter")
    for i in range(10):  # 10 lines of 100 bytes: under the 2,000-byte quota
        reporter.log(f"{i:03d}" + "x" * 97)
    reporter.update(10)
    assert reporter.flush(timeout=10)
    for i in range(10, 60):  # 5,000 bytes more: refused
        reporter.log(f"{i:03d}" + "x" * 97)
        reporter.update(10 + i)
        time.sleep(0.002)
    assert reporter.flush(timeout=10)
    reporter.update(90, "after the quota")
    assert reporter.complete({"ok": True}, timeout=10) is True
    with Client(quota_server.url) as client:
        job = client.get_job(job_id)
        assert (job["status"], job["progress"]) == ("completed", 100)
        messages = _messages(client, job_id)
        alerts = client.alerts(job_id)["alerts"]
    stored = [m for m in messages if not m.startswith("jobwatch:")]
    assert stored[:10] == [f"{i:03d}" + "x" * 97 for i in range(10)]
    assert stored == sorted(set(stored))  # what fitted later arrived once, in order
    dropped = 60 - len(stored)
    assert dropped >= 40
    told = [m for m in messages if "dropped" in m] + [a.get("text") or "" for a in alerts]
    # told when it began, then what was dropped since at the completion: exact in sum
    counts = [int(n) for text in told for n in re.findall(r"(\d+) log lines", text)]
    assert sum(counts) == dropped, told
    assert all("max-job-log-bytes" in text for text in told)
    warnings = [r.getMessage() for r in caplog.records if "quota" in r.getMessage()]
    assert warnings and "max-job-log-bytes" in warnings[0]


def test_metrics_catch_up_like_log_lines() -> None:
    """A backlog of training metrics goes out request after request, not one
    request (1,000 points) per interval: with an hour's interval, 40,000 points
    queued while the server was away all arrive once it is back."""
    port = free_port()
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    reporter = Reporter(
        job_id, url=f"http://127.0.0.1:{port}", gpu=False, interval=3600, max_log_lines=1000
    )
    names = [f"m{n:03d}" for n in range(100)]
    try:
        for step in range(400):
            reporter.log_metrics({name: float(step) for name in names}, step=step)
        with (
            EmbeddedServer(port=port, config={"DATABASE": ":memory:"}) as srv,
            Client(srv.url) as client,
        ):

            def delivered(names: list[str] | None = None) -> int:
                try:
                    series = client.scalars(job_id, names, max_points=10_000)
                except JobNotFound:
                    return 0
                return sum(len(points) for points in series.values())

            # The points go out in the order they were logged: wait for the last
            # one (reading all 40,000 at each poll would starve the sender), then
            # count them all.
            wait_for(lambda: delivered(names[-1:]) >= 400, 60, "the last point delivered")
            assert delivered() == 40_000
    finally:
        reporter.close(timeout=1)


def test_full_buffer_counts_dropped_metric_points_exactly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.WARNING, logger="jobwatch.report.reporter")
    reporter = Reporter(
        job_id, url=f"http://127.0.0.1:{port}", gpu=False, interval=0.05, max_log_lines=10
    )
    for step in range(30):
        reporter.log_metrics({"a": 1.0, "b": 2.0}, step=step)
        if step == 14:
            time.sleep(0.3)  # the sender tries (and fails) in between
    for step in range(30, 539):
        reporter.log_metrics({"a": 1.0, "b": 2.0}, step=step)
    with EmbeddedServer(port=port, config={"DATABASE": ":memory:"}) as srv:
        assert reporter.close(timeout=20) is True
        with Client(srv.url) as client:
            series = client.scalars(job_id, max_points=10_000)
            messages = _messages(client, job_id)
    kept = len(series["a"])
    assert kept == len(series["b"])
    dropped_points = 2 * (539 - kept)
    told = [int(n) for m in messages for n in re.findall(r"(\d+) metric points", m)]
    assert sum(told) == dropped_points, messages  # when it began, then the rest at the end
    warned = [r.getMessage() for r in caplog.records if "metric points" in r.getMessage()]
    assert f"{dropped_points} metric points dropped" in warned[-1]  # the total, at the end


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
