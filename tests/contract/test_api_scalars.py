"""Training metrics (scalars): an extension of the progress body, stored and
read back per name, streamed with ``JOB_PROGRESS``; on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import error_of, js


def post(api: Any, job_id: str, **extra: Any) -> Any:
    return api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": 5, **extra})


def scalars(api: Any, job_id: str, query: str = "") -> dict[str, Any]:
    r = api.get(f"/api/jobs/{job_id}/scalars{query}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = js(r)
    return body


def test_one_point_or_a_list_are_stored_and_read_back_by_name(
    api: Any, clock: Any, job: str
) -> None:
    assert (
        post(api, job, scalars={"step": 1, "values": {"loss": 0.9, "acc": 0.5}}).status_code == 200
    )
    clock.advance(1)
    batch = [
        {"step": 2, "values": {"loss": 0.7}},
        {"step": 3, "values": {"loss": 0.5, "val/acc": 0.8}},
    ]
    assert post(api, job, scalars=batch).status_code == 200
    body = scalars(api, job)
    assert body["jobId"] == job and body["downsampled"] is False
    got = {
        name: [(p["step"], p["value"]) for p in points] for name, points in body["scalars"].items()
    }
    assert got == {
        "acc": [(1, 0.5)],
        "loss": [(1, 0.9), (2, 0.7), (3, 0.5)],
        "val/acc": [(3, 0.8)],
    }
    only = scalars(api, job, "?names=val/acc,acc")["scalars"]
    assert sorted(only) == ["acc", "val/acc"]
    assert scalars(api, job, "?timeRange=0.5")["scalars"]["loss"] == [
        p for p in body["scalars"]["loss"] if p["step"] >= 2
    ]


def test_the_newest_values_travel_in_job_progress_and_monitor(
    api: Any, ws_factory: Any, job: str
) -> None:
    ws = ws_factory()
    ws.subscribe(job)
    post(api, job, scalars={"step": 7, "values": {"loss": 0.25}})
    event = ws.recv_until(lambda m: m.get("type") == "JOB_PROGRESS")[-1]
    (point,) = event["data"]["scalars"]
    assert (point["step"], point["values"]) == (7, {"loss": 0.25})
    post(api, job, scalars={"step": 3, "values": {"loss": 9.0}})  # a late, older step
    latest = js(api.get(f"/api/jobs/{job}/monitor"))["scalars"]
    assert latest["loss"]["step"] == 7 and latest["loss"]["value"] == 0.25


def test_each_value_carries_what_the_job_had_cost_when_it_was_logged(
    api: Any, clock: Any, ws_factory: Any, job_id: str
) -> None:
    """For a chart against money: 3.6 an hour (0.001 a second) for 100 s, then 36 an
    hour; a value logged at 200 s is 0.1 + 1.0 into the job, whatever it costs later."""
    assert api.put(f"/api/jobs/{job_id}", json={"pricePerHour": 3.6}).status_code == 201
    post(api, job_id, scalars={"step": 1, "values": {"loss": 0.9}})
    clock.advance(100)
    post(api, job_id, scalars={"step": 2, "values": {"loss": 0.7}})
    api.put(f"/api/jobs/{job_id}", json={"workerId": "w", "pricePerHour": 36.0})
    clock.advance(100)
    ws = ws_factory()
    ws.subscribe(job_id)
    post(api, job_id, scalars={"step": 3, "values": {"loss": 0.5}})
    event = ws.recv_until(lambda m: m.get("type") == "JOB_PROGRESS")[-1]
    assert event["data"]["scalars"][0]["cost"] == pytest.approx(1.1)
    clock.advance(1000)
    costs = [p["cost"] for p in scalars(api, job_id)["scalars"]["loss"]]
    assert costs == [0, pytest.approx(0.1), pytest.approx(1.1)]
    downsampled = scalars(api, job_id, "?maxPoints=2")["scalars"]["loss"]
    assert {p["step"]: p["cost"] for p in downsampled}[3] == pytest.approx(1.1)
    latest = js(api.get(f"/api/jobs/{job_id}/monitor"))["scalars"]["loss"]
    assert latest["cost"] == pytest.approx(1.1)

    unpriced = f"{job_id}-free"
    assert api.put(f"/api/jobs/{unpriced}", json={}).status_code == 201
    post(api, unpriced, scalars={"step": 1, "values": {"loss": 0.9}})
    assert scalars(api, unpriced)["scalars"]["loss"][0]["cost"] is None


def test_the_seed_body_has_no_scalars(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    ws.subscribe(job)
    assert post(api, job).status_code == 200
    event = ws.recv_until(lambda m: m.get("type") == "JOB_PROGRESS")[-1]
    assert "scalars" not in event["data"]
    assert js(api.get(f"/api/jobs/{job}/monitor"))["scalars"] == {}
    assert scalars(api, job)["scalars"] == {}


def test_a_long_series_is_downsampled_keeping_its_spikes(api: Any, job: str) -> None:
    points = [{"step": k, "values": {"loss": 1.0}} for k in range(600)]
    points[333]["values"]["loss"] = 50.0  # one spike
    points[444]["values"]["loss"] = -3.0  # one dip
    assert post(api, job, scalars=points[:500]).status_code == 200
    assert post(api, job, scalars=points[500:]).status_code == 200
    body = scalars(api, job, "?maxPoints=20")
    loss = body["scalars"]["loss"]
    assert body["downsampled"] is True and len(loss) <= 20
    values = [p["value"] for p in loss]
    assert max(values) == 50.0 and min(values) == -3.0
    assert [p["step"] for p in loss] == sorted(p["step"] for p in loss)


@pytest.mark.parametrize(
    ("scalars_body", "field"),
    [
        ({"step": 1, "values": {"bad name!": 1.0}}, "scalars"),
        ({"step": 1, "values": {"x" * 65: 1.0}}, "scalars"),
        ({"step": 1, "values": {"loss": True}}, "scalars"),
        ({"step": 1, "values": {"loss": "0.5"}}, "scalars"),
        ({"step": -1, "values": {"loss": 0.5}}, "scalars"),
        ({"step": 1.5, "values": {"loss": 0.5}}, "scalars"),
        ({"values": {"loss": 0.5}}, "scalars"),
        ({"step": 1, "values": {}}, "scalars"),
        ([{"step": k, "values": {"loss": 1.0}} for k in range(1001)], "scalars"),
    ],
)
def test_bad_scalars_are_refused_and_change_nothing(
    api: Any, job: str, scalars_body: Any, field: str
) -> None:
    r = post(api, job, scalars=scalars_body)
    details = error_of(r, 400, "validation_error")["details"]
    assert any(d["field"].startswith(field) for d in details), details
    assert js(api.get(f"/api/jobs/{job}"))["job"]["seq"] == 0
    assert scalars(api, job)["scalars"] == {}


def test_nan_in_scalars_is_invalid_json(api: Any, job: str) -> None:
    raw = '{"workerId": "w", "progress": 5, "scalars": {"step": 1, "values": {"loss": NaN}}}'
    r = api.post(
        f"/api/jobs/{job}/progress", data=raw, headers={"Content-Type": "application/json"}
    )
    error_of(r, 400, "invalid_json")


def test_at_most_100_names_per_job(api: Any, job: str) -> None:
    first = {f"m{k}": 1.0 for k in range(60)}
    assert post(api, job, scalars={"step": 1, "values": first}).status_code == 200
    more = {f"n{k}": 1.0 for k in range(41)}  # 101 in all
    r = post(
        api, job, scalars={"step": 2, "values": more}, logLines=[{"level": "info", "message": "x"}]
    )
    error = error_of(r, 400, "validation_error")
    assert "at most 100" in error["message"]
    assert js(api.get(f"/api/jobs/{job}/logs"))["total"] == 0  # nothing of it was stored
    assert len(scalars(api, job)["scalars"]) == 60
    known = {f"m{k}": 2.0 for k in range(60)}
    assert post(api, job, scalars={"step": 2, "values": {**known, "n0": 1.0}}).status_code == 200
    assert len(scalars(api, job)["scalars"]) == 61


@pytest.mark.parametrize(
    "query",
    ["?names=bad%20name", "?names=", "?maxPoints=1", "?timeRange=0", "?timeRange=nan"],
)
def test_bad_scalars_queries_are_400(api: Any, job: str, query: str) -> None:
    error_of(api.get(f"/api/jobs/{job}/scalars{query}"), 400, "validation_error")


def test_scalars_of_an_unknown_job_are_404(api: Any) -> None:
    error_of(api.get("/api/jobs/nope/scalars"), 404, "job_not_found")
