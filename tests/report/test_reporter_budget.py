"""A Reporter's budget: sent with the job, its state from the server's replies, an
opt-in callback once spent, and track(stop_over_budget=True) ending the loop and
cancelling the job with the reason; price and currency from the environment."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import jobwatch
from jobwatch.client.rest import Client
from jobwatch.report.outbox import BudgetState
from jobwatch.report.reporter import Reporter
from jobwatch.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(config={"DATABASE": ":memory:"}) as srv:
        yield srv


def test_stop_over_budget_ends_the_loop_and_cancels_the_job(server: EmbeddedServer) -> None:
    job = f"budget-{uuid.uuid4().hex[:8]}"
    seen: list[BudgetState] = []
    # 3,600 an hour is 1 a second: a budget of 0.5 is spent after half a second
    report = Reporter(
        job,
        url=server.url,
        gpu=False,
        interval=0.05,
        price_per_hour=3600.0,
        budget=0.5,
        on_over_budget=seen.append,
    )
    done = 0
    for _ in report.track(range(100_000), stop_over_budget=True):
        done += 1
        time.sleep(0.01)
    assert done < 100_000
    with Client(server.url) as client:
        stored = client.get_job(job)
        assert stored["status"] == "cancelled" and stored["budget"] == 0.5
        assert stored["error"] is not None and stored["error"].startswith("over budget: ")
        assert stored["error"].endswith(" of 0.50 QUBIC spent")
        alerts = client.request("GET", f"/api/jobs/{job}/alerts")["alerts"]
        assert [a["title"] for a in alerts if a["source"] == "budget"][-1] == "budget spent"
    assert len(seen) == 1 and seen[0].over_budget and seen[0].budget == 0.5
    assert report.budget_state is not None and report.over_budget


def test_price_and_currency_come_from_the_environment(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWATCH_PRICE_PER_HOUR", "2.5")
    monkeypatch.setenv("JOBWATCH_CURRENCY", "EUR")
    job = f"env-{uuid.uuid4().hex[:8]}"
    with Reporter(job, url=server.url, gpu=False, interval=0.05) as report:
        report.update(10)
        assert report.flush(timeout=10)
        with Client(server.url) as client:
            stored = client.get_job(job)
    assert (stored["pricePerHour"], stored["currency"]) == (2.5, "EUR")
    monkeypatch.setenv("JOBWATCH_PRICE_PER_HOUR", "cheap")
    with pytest.raises(ValueError, match=r"\$JOBWATCH_PRICE_PER_HOUR must be a number"):
        Reporter(job, url=server.url, gpu=False)


@pytest.mark.parametrize(
    "kwargs",
    [{"budget": -1}, {"budget": float("nan")}, {"budget": "10"}, {"on_over_budget": 3}],
)
def test_bad_budget_arguments_raise(server: EmbeddedServer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="budget"):
        Reporter("b", url=server.url, gpu=False, **kwargs)


def test_track_takes_a_budget(server: EmbeddedServer) -> None:
    job = f"track-{uuid.uuid4().hex[:8]}"
    items = jobwatch.track(range(3), job=job, url=server.url, budget=10.0, price_per_hour=1.0)
    assert list(items) == [0, 1, 2]
    with Client(server.url) as client:
        stored = client.get_job(job)
    assert stored["budget"] == 10.0 and stored["status"] == "completed"
