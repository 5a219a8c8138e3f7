"""The reporter says when the training code last called it, apart from its own
background samples, so the server can tell a hung job (samples arrive, no call)
from a moving one; expect_silence() says a long quiet phase is not a hang."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    # hang threshold scaled down: 1 s floor, checked every 0.1 s; stalls after 60 s
    config = {
        "DATABASE": ":memory:",
        "HANG_AFTER": 1.0,
        "STALL_AFTER": 60.0,
        "STALL_CHECK_INTERVAL": 0.1,
    }
    with EmbeddedServer(config=config) as srv:
        yield srv


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def reporter(server: EmbeddedServer, **kwargs: Any) -> Reporter:
    job = f"hang-{uuid.uuid4().hex[:8]}"
    return Reporter(
        job, url=server.url, gpu=lambda: {"gpuUtilization": 99.0}, interval=0.05, **kwargs
    )


def test_samples_without_calls_make_a_job_hung_and_a_call_moves_it(server: EmbeddedServer) -> None:
    with Client(server.url) as client:
        report = reporter(server, price_per_hour=3.6)
        for step in range(5):
            report.update(step + 1)
            time.sleep(0.02)
        # the loop stops calling; the reporter's thread keeps sending GPU samples
        assert wait_until(lambda: client.get_job(report.job_id)["hung"] is True)
        job = client.get_job(report.job_id)
        assert job["stalled"] is False
        alerts = client.request("GET", f"/api/jobs/{report.job_id}/alerts")["alerts"]
        assert [a["source"] for a in alerts] == ["hung"]
        assert "QUBIC spent since" in alerts[0]["text"]
        report.log("back")
        assert wait_until(lambda: client.get_job(report.job_id)["hung"] is False)
        report.close(timeout=5)


def test_expect_silence_keeps_a_long_evaluation_from_being_a_hang(server: EmbeddedServer) -> None:
    with Client(server.url) as client:
        report = reporter(server)
        report.update(10)
        with report.expect_silence(3600):
            time.sleep(3.0)  # three hang thresholds without a call
            assert report.flush(timeout=10)
            assert client.get_job(report.job_id)["hung"] is False
        # taken back on leaving the block: the next quiet spell is a hang again
        assert wait_until(lambda: client.get_job(report.job_id)["hung"] is True)
        report.close(timeout=5)


@pytest.mark.parametrize("seconds", [-1, float("nan"), 1e9, "1h", True])
def test_expect_silence_refuses_bad_values(server: EmbeddedServer, seconds: Any) -> None:
    report = reporter(server)
    with pytest.raises(ValueError, match="seconds must be a number from 0 to 604800"):
        report.expect_silence(seconds)
    report.close(timeout=5)
