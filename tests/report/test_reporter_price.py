"""A Reporter on a spot instance sends its new price (``set_price``): the server counts
each price for the time it held, so the job's cost integrates the price over time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from jobwatch.client.rest import Client
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[EmbeddedServer]:
    config = {"DATABASE": ":memory:", "CLOCK": clock, "STALL_CHECK_INTERVAL": 0}
    with EmbeddedServer(config=config) as srv:
        yield srv


def test_a_new_price_counts_from_when_the_server_gets_it(
    server: EmbeddedServer, clock: FakeClock
) -> None:
    job = f"spot-{uuid.uuid4().hex[:8]}"
    report = Reporter(job, url=server.url, gpu=False, interval=0.05, price_per_hour=10.0)
    try:
        report.update(10)
        assert report.flush(timeout=10)
        clock.advance(3600)
        report.set_price(40.0)  # repriced: 40 an hour from now on
        report.update(20)
        assert report.flush(timeout=10)
        clock.advance(1800)
        report.update(30)
        assert report.flush(timeout=10)
        with Client(server.url) as client:
            monitor = client.monitor(job)
            assert monitor["job"]["pricePerHour"] == 40.0
            assert monitor["costSoFar"] == pytest.approx(10 + 20)  # not 1.5 h x 40
    finally:
        report.close(timeout=5)


def test_a_bad_price_is_refused_and_changes_nothing(server: EmbeddedServer) -> None:
    report = Reporter(f"p-{uuid.uuid4().hex[:8]}", url=server.url, gpu=False, price_per_hour=1.0)
    try:
        for bad in (-1.0, float("nan"), float("inf"), 2e9, "3", True):
            with pytest.raises(ValueError, match="price_per_hour must be a number from 0 to 1e9"):
                report.set_price(bad)  # type: ignore[arg-type]
    finally:
        report.close(timeout=5)
