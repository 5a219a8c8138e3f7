"""A price that changes while the job runs (spot repricing): cost integrates the
price over time, ``sum(price_i x duration_i)``, not the elapsed time at the newest
price (docs/api.md "Estimates", ``jobwatch.server.core.pricing``); budget alerts
fire when the integrated cost crosses each threshold. Expected figures are
worked out here from the documented rule."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import js


def progress(api: Any, job_id: str, p: float) -> dict[str, Any]:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": p})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = js(r)
    return body


def reprice(api: Any, job_id: str, price: float) -> None:
    r = api.put(f"/api/jobs/{job_id}", json={"workerId": "w", "pricePerHour": price})
    assert r.status_code == 200, r.text
    assert r.json()["job"]["pricePerHour"] == price


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-6)


def test_each_price_counts_for_the_time_it_held(api: Any, clock: Any, job_id: str) -> None:
    assert api.put(f"/api/jobs/{job_id}", json={"pricePerHour": 10.0}).status_code == 201
    progress(api, job_id, 0)
    clock.advance(3600)
    progress(api, job_id, 20)
    reprice(api, job_id, 40.0)  # one hour at 10, then 40 an hour
    clock.advance(1800)
    reply = progress(api, job_id, 30)
    assert reply["costSoFar"] == approx(10 + 20)  # not 1.5 h x 40 = 60
    # the rest at the current price: the EMA's rate is 10 % per 1,800 s here
    remaining = reply["timeRemaining"]
    assert reply["estimatedTotalCost"] == approx(30 + remaining / 3600 * 40)
    reprice(api, job_id, 4.0)
    clock.advance(900)
    snapshot = js(api.get(f"/api/jobs/{job_id}/monitor"))
    assert snapshot["costSoFar"] == approx(10 + 20 + 1)
    done = api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w"})
    assert js(done)["job"]["status"] == "completed"
    clock.advance(3600)  # a finished job's cost stands still
    receipt = js(api.get(f"/api/jobs/{job_id}/receipt"))
    assert receipt["cost"] == approx(31)
    assert js(api.get(f"/api/jobs/{job_id}/monitor"))["costSoFar"] == approx(31)


def test_a_price_given_before_the_start_or_first_given_while_running_counts_from_the_start(
    api: Any, clock: Any, job_id: str
) -> None:
    api.put(f"/api/jobs/{job_id}", json={"pricePerHour": 99.0})
    clock.advance(600)  # pending: free
    api.put(f"/api/jobs/{job_id}", json={"pricePerHour": 6.0})
    progress(api, job_id, 1)
    clock.advance(1800)
    assert progress(api, job_id, 2)["costSoFar"] == approx(3)

    late = f"{job_id}-late"
    assert api.put(f"/api/jobs/{late}", json={}).status_code == 201
    progress(api, late, 1)
    clock.advance(1800)
    reprice(api, late, 6.0)  # the price was not known; the time was not free
    assert progress(api, late, 2)["costSoFar"] == approx(3)


def test_budget_alerts_fire_when_the_integrated_cost_crosses_each_threshold(
    api: Any, clock: Any, job_id: str
) -> None:
    """10 an hour for an hour, then 40 an hour, on a budget of 61, one update a
    minute, progress 20 % an hour. At 10 an hour the projected total (50) is under
    the budget; the first update after the change projects far over it. 80 % of
    the budget (48.8) is spent 58.2 min after the change (10 + 40 x 0.97 h), all of
    it (61) after 76.5 min (10 + 40 x 1.275 h): the first updates past those are
    at minutes 59 and 77. Elapsed x the newest price would have fired them at 73.2
    and 91.5 minutes into the job."""
    api.put(f"/api/jobs/{job_id}", json={"pricePerHour": 10.0, "budget": 61.0})
    fired: dict[str, int] = {}

    def step(minute: int) -> None:
        progress(api, job_id, minute / 3)
        alerts = js(api.get(f"/api/jobs/{job_id}/alerts"))["alerts"]
        for alert in alerts:
            if alert["source"] == "budget":
                fired.setdefault(alert["title"], minute)

    for minute in range(61):
        step(minute)
        clock.advance(60)
    assert fired == {}
    clock.advance(-60)
    reprice(api, job_id, 40.0)  # at minute 60, just after its update
    for minute in range(61, 150):
        clock.advance(60)
        step(minute)
    assert fired == {
        "over budget at the current rate": 61,
        "80% of the budget spent": 60 + 59,
        "budget spent": 60 + 77,
    }
    alerts = js(api.get(f"/api/jobs/{job_id}/alerts"))["alerts"]
    texts = {a["title"]: a["text"] for a in alerts if a["source"] == "budget"}
    assert texts["80% of the budget spent"] == "49.33 of 61.00 QUBIC spent"  # 10 + 40 x 59/60
    assert texts["budget spent"] == "61.33 of 61.00 QUBIC spent"  # 10 + 40 x 77/60
