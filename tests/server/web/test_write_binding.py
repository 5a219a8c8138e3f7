"""The worker binding and the finished state hold for every write, over HTTP.

Each refused write answers the contract's 403 ``worker_mismatch`` or 409
``job_finished`` and leaves everything a reader can see as it was: the job,
its cost, its logs, samples, training metrics and alerts.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, FakeClock

METRICS = {
    "gpuUtilization": 87,
    "gpuMemoryUsed": 18000,
    "gpuMemoryTotal": 24000,
    "gpuTemperature": 72,
    "powerUsage": 350,
}


def visible(api: Api, job_id: str) -> list[Any]:
    """Everything the read endpoints show of a job."""
    return [
        api.get(f"/api/jobs/{job_id}{path}").json()
        for path in ("", "/monitor", "/logs", "/metrics", "/scalars", "/alerts")
    ]


def refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.fixture
def running(api: Api, clock: FakeClock) -> str:
    """A job bound to worker ``w``, priced and running for an hour."""
    assert api.put("/api/jobs/j", json={"name": "n", "pricePerHour": 2.0}).status_code == 201
    assert api.post("/api/jobs/j/progress", json={"workerId": "w", "progress": 0}).ok
    clock.advance(3600)
    assert api.post("/api/jobs/j/progress", json={"workerId": "w", "progress": 50}).ok
    return "j"


@pytest.fixture
def finished(api: Api, running: str) -> str:
    assert api.post(f"/api/jobs/{running}/complete", json={"workerId": "w"}).ok
    return running


SPEC_CHANGES = [
    {"name": "renamed"},
    {"pricePerHour": 1_000_000},
    {"currency": "USD"},
    {"providerId": "p"},
]


@pytest.mark.parametrize("body", SPEC_CHANGES)
def test_a_put_without_the_bound_worker_changes_nothing(
    api: Api, running: str, body: dict[str, Any]
) -> None:
    before = visible(api, running)
    refused(api.put(f"/api/jobs/{running}", json=body), 403, "worker_mismatch")
    refused(
        api.put(f"/api/jobs/{running}", json={**body, "workerId": "other"}), 403, "worker_mismatch"
    )
    assert visible(api, running) == before
    assert api.put(f"/api/jobs/{running}", json={**body, "workerId": "w"}).status_code == 200


@pytest.mark.parametrize("body", SPEC_CHANGES)
def test_a_finished_job_is_settled(
    api: Api, finished: str, clock: FakeClock, body: dict[str, Any]
) -> None:
    before = visible(api, finished)
    assert before[0]["job"]["pricePerHour"] == 2.0
    cost = before[1]["costSoFar"]
    refused(api.put(f"/api/jobs/{finished}", json={**body, "workerId": "w"}), 409, "job_finished")
    refused(api.put(f"/api/jobs/{finished}", json=body), 403, "worker_mismatch")
    clock.advance(60)
    after = visible(api, finished)
    assert after == before
    assert after[1]["costSoFar"] == cost == 2.0


def test_a_put_that_changes_nothing_is_answered_200_even_when_finished(
    api: Api, finished: str
) -> None:
    # What a restarted worker script sends on start: its job, as it created it.
    before = visible(api, finished)
    for body in ({"name": "n", "pricePerHour": 2.0}, {"name": "n", "workerId": "w"}):
        response = api.put(f"/api/jobs/{finished}", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["job"] == before[0]["job"]
    assert visible(api, finished) == before


WRITES = [
    ("progress", {"progress": 60}),
    ("progress", {"progress": 60, "metrics": METRICS}),
    ("progress", {"progress": 60, "logLines": [{"level": "info", "message": "x"}]}),
    ("progress", {"progress": 60, "alerts": [{"level": "warning", "title": "t", "text": "x"}]}),
    ("progress", {"progress": 60, "scalars": {"step": 1, "values": {"loss": 0.5}}}),
    ("complete", {"status": "failed", "error": "x"}),
]


@pytest.mark.parametrize(("endpoint", "body"), WRITES)
def test_every_write_of_another_worker_changes_nothing(
    api: Api, running: str, endpoint: str, body: dict[str, Any]
) -> None:
    before = visible(api, running)
    response = api.post(f"/api/jobs/{running}/{endpoint}", json={**body, "workerId": "other"})
    refused(response, 403, "worker_mismatch")
    assert visible(api, running) == before


@pytest.mark.parametrize(("endpoint", "body"), WRITES)
def test_every_write_to_a_finished_job_changes_nothing(
    api: Api, finished: str, endpoint: str, body: dict[str, Any]
) -> None:
    before = visible(api, finished)
    refused(
        api.post(f"/api/jobs/{finished}/{endpoint}", json={**body, "workerId": "w"}),
        409,
        "job_finished",
    )
    refused(
        api.post(f"/api/jobs/{finished}/{endpoint}", json={**body, "workerId": "other"}),
        403,
        "worker_mismatch",
    )
    assert visible(api, finished) == before


def test_a_write_without_a_worker_id_is_refused_with_400(api: Api, running: str) -> None:
    before = visible(api, running)
    for endpoint, body in WRITES:
        response = api.post(f"/api/jobs/{running}/{endpoint}", json=body)
        refused(response, 400, "validation_error")
    assert visible(api, running) == before


def test_another_worker_repeating_an_update_id_gets_403_not_the_stored_reply(
    api: Api, running: str
) -> None:
    body = {"workerId": "w", "progress": 70, "updateId": "u-1"}
    assert api.post(f"/api/jobs/{running}/progress", json=body).ok
    before = visible(api, running)
    refused(
        api.post(f"/api/jobs/{running}/progress", json={**body, "workerId": "other"}),
        403,
        "worker_mismatch",
    )
    assert visible(api, running) == before
