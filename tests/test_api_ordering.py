"""Worker timestamps order updates, but one wild clock never freezes a job."""

from __future__ import annotations

from jobwatch.protocol import format_ts


def post(api, job_id, progress, timestamp):
    body = {"workerId": "w", "progress": progress, "timestamp": timestamp}
    r = api.post(f"/api/jobs/{job_id}/progress", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_late_update_does_not_move_progress_back(api, make_job, clock):
    job = make_job()["id"]
    post(api, job, 50, format_ts(clock() - 10))
    assert post(api, job, 40, format_ts(clock() - 20))["progress"] == 50
    assert post(api, job, 60, format_ts(clock() - 5))["progress"] == 60


def test_a_far_future_timestamp_does_not_freeze_the_job(api, make_job, clock):
    job = make_job()["id"]
    post(api, job, 10, "9999-12-31T23:59:59.999Z")
    assert post(api, job, 20, format_ts(clock()))["progress"] == 20
    assert post(api, job, 30, format_ts(clock() + 3600))["progress"] == 30
    # an hour ahead is within the allowed skew, so it orders the next one
    assert post(api, job, 25, format_ts(clock()))["progress"] == 30


def test_logs_before_id_pages_backwards(api, make_job):
    job = make_job()["id"]
    lines = [{"level": "info", "message": f"m{i}"} for i in range(10)]
    api.post(f"/api/jobs/{job}/progress", json={"workerId": "w", "progress": 1, "logLines": lines})
    ids = [line["id"] for line in api.get(f"/api/jobs/{job}/logs").json()["logs"]]
    page = api.get(f"/api/jobs/{job}/logs", params={"beforeId": ids[7], "limit": 3}).json()
    assert [line["message"] for line in page["logs"]] == ["m4", "m5", "m6"]
    assert page["total"] == 10
    first = api.get(f"/api/jobs/{job}/logs", params={"beforeId": ids[1], "limit": 3}).json()
    assert [line["message"] for line in first["logs"]] == ["m0"]
    bad = api.get(f"/api/jobs/{job}/logs", params={"beforeId": "0"})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["field"] == "beforeId"
