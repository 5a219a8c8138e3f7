"""Stalls and alerts on every backend: a silent running job is marked stalled
(``JOB_STALLED``, an alert) and resumed by its next update (``JOB_RESUMED``);
training code's alerts and failed jobs give ``JOB_ALERT``; ``GET /alerts``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import error_of, js


def post(api: Any, job_id: str, p: float = 5, **extra: Any) -> dict[str, Any]:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": p, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = js(r)
    return body


def job_of(api: Any, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = js(api.get(f"/api/jobs/{job_id}"))["job"]
    return job


def test_a_silent_job_is_stalled_once_and_resumed_by_its_next_update(
    api: Any, clock: Any, server: Any, ws_factory: Any, job: str
) -> None:
    for _ in range(3):
        post(api, job)
        clock.advance(1)
    ws = ws_factory()
    ws.subscribe(job)
    clock.advance(100)
    assert job not in server.services.watchdog.check()  # 101 s: not yet
    clock.advance(20)
    assert job in server.services.watchdog.check()
    assert job not in server.services.watchdog.check()  # marked once
    stalled = ws.recv_until(lambda m: m.get("type") == "JOB_STALLED")[-1]
    assert stalled["data"]["stalled"] is True and stalled["data"]["silentFor"] == 121
    alert = ws.recv_until(lambda m: m.get("type") == "JOB_ALERT")[-1]["data"]["alert"]
    assert (alert["level"], alert["source"], alert["title"]) == (
        "warning",
        "stalled",
        "job stalled",
    )
    assert job_of(api, job)["stalled"] is True
    listed = [j for j in js(api.get("/api/jobs?limit=1000"))["jobs"] if j["id"] == job]
    assert listed[0]["stalled"] is True and listed[0]["alerts"] == 1
    assert js(api.get(f"/api/jobs/{job}/monitor"))["job"]["stalled"] is True

    post(api, job, 6)
    resumed = ws.recv_until(lambda m: m.get("type") == "JOB_RESUMED")[-1]
    assert resumed["data"]["stalled"] is False
    assert job_of(api, job)["stalled"] is False


def test_a_job_that_reports_rarely_stalls_after_ten_of_its_intervals(
    api: Any, clock: Any, server: Any, job: str
) -> None:
    for _ in range(4):
        post(api, job)
        clock.advance(60)  # a job that reports once a minute
    clock.advance(300)  # 360 s silent: over 120 s, under 10 x 60 s
    assert job not in server.services.watchdog.check()
    clock.advance(300)
    assert job in server.services.watchdog.check()


def test_finished_jobs_never_stall(api: Any, clock: Any, server: Any, job: str) -> None:
    post(api, job)
    assert api.post(f"/api/jobs/{job}/complete", json={"workerId": "w"}).status_code == 200
    clock.advance(10_000)
    assert job not in server.services.watchdog.check()


def test_alerts_from_training_code(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    ws.subscribe(job)
    alerts = [
        {"title": "loss is NaN", "text": "at step 1200", "level": "error"},
        {"title": "learning rate lowered"},
    ]
    post(api, job, alerts=alerts)
    events = ws.recv_until(
        lambda m: m.get("type") == "JOB_ALERT" and m["data"]["alert"]["level"] == "warning"
    )
    got = [m["data"]["alert"] for m in events if m.get("type") == "JOB_ALERT"]
    assert [(a["title"], a["level"], a["source"]) for a in got] == [
        ("loss is NaN", "error", "worker"),
        ("learning rate lowered", "warning", "worker"),
    ]
    page = js(api.get(f"/api/jobs/{job}/alerts"))
    assert page["total"] == 2 and [a["seq"] for a in page["alerts"]] == [a["seq"] for a in got]
    assert js(api.get(f"/api/jobs/{job}/monitor"))["alerts"] == page["alerts"]


def test_a_failed_job_gets_an_alert(api: Any, job: str) -> None:
    post(api, job)
    body = {"workerId": "w", "status": "failed", "error": "CUDA out of memory"}
    assert api.post(f"/api/jobs/{job}/complete", json=body).status_code == 200
    (alert,) = js(api.get(f"/api/jobs/{job}/alerts"))["alerts"]
    assert (alert["level"], alert["source"], alert["text"]) == (
        "error",
        "failed",
        "CUDA out of memory",
    )


@pytest.mark.parametrize(
    "alerts",
    [
        [{"title": ""}],
        [{"title": "x" * 201}],
        [{"title": "t", "level": "critical"}],
        [{"title": "t", "text": "x" * 4097}],
        [{"text": "no title"}],
        [{"title": "t"}] * 101,
        {"title": "not a list"},
    ],
)
def test_bad_alerts_are_refused_and_change_nothing(api: Any, job: str, alerts: Any) -> None:
    r = api.post(
        f"/api/jobs/{job}/progress", json={"workerId": "w", "progress": 5, "alerts": alerts}
    )
    details = error_of(r, 400, "validation_error")["details"]
    assert any(d["field"].startswith("alerts") for d in details), details
    assert job_of(api, job)["seq"] == 0 and job_of(api, job)["alerts"] == 0


@pytest.mark.parametrize("query", ["?limit=0", "?offset=-1", "?limit=x"])
def test_bad_alert_pages_are_400(api: Any, job: str, query: str) -> None:
    error_of(api.get(f"/api/jobs/{job}/alerts{query}"), 400, "validation_error")
