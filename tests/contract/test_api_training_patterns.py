"""What real training does to a job: resumes, pauses, clock steps, retries.

Each test reproduces a fault users of tqdm, W&B or MLflow have met (see
docs/api.md "Estimates" and "Retries"), with the fake server clock, on every
backend of the contract suite.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.helpers import error_of, iso, js

PRICE = 3.6


def post(api: Any, job_id: str, p: float, **extra: Any) -> dict[str, Any]:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": p, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = js(r)
    return body


def remaining(api: Any, job_id: str) -> Any:
    return js(api.get(f"/api/jobs/{job_id}/monitor"))["timeRemaining"]


def steady(
    api: Any, clock: Any, job: str, start: float, stop: float, step: float, every: float
) -> Any:
    """Report ``start``..``stop`` % in ``step`` % steps, one every ``every`` s; the last reply."""
    reply: Any = None
    p = start
    while p <= stop + 1e-9:
        reply = post(api, job, p)
        clock.advance(every)
        p += step
    clock.advance(-every)
    return reply


# -- time remaining ------------------------------------------------------------------


def test_a_job_resumed_part_way_has_no_estimate_until_progress_moves(
    api: Any, clock: Any, job: str
) -> None:
    """tqdm's ``initial``: the 40 % done before the first update of a declared
    resume are not a rate."""
    post(api, job, 40, resumedFrom=40)
    clock.advance(600)
    assert remaining(api, job) is None  # undeclared, the seed's average: 900 s and growing
    reply = post(api, job, 50)
    # 10 % in 600 s: the only movement seen while watched
    assert reply["timeRemaining"] == pytest.approx(50 / (10 / 600), rel=1e-6)


def test_a_pause_between_updates_is_not_slow_progress(api: Any, clock: Any, job: str) -> None:
    """A spot instance paused for an hour: right after it the estimate is about
    what it was before (tqdm's ``unpause``), not an hour per step."""
    before = steady(api, clock, job, 0, 40, 2, 10)["timeRemaining"]  # 2 % per 10 s
    assert before == pytest.approx(300, rel=0.01)
    clock.advance(3600)
    after = post(api, job, 42)["timeRemaining"]
    assert after == pytest.approx(before * 58 / 60, rel=0.05)
    clock.advance(10)
    assert post(api, job, 44)["timeRemaining"] == pytest.approx(280, rel=0.05)


def test_a_restart_that_resends_the_old_progress_is_a_pause(api: Any, clock: Any, job: str) -> None:
    """A new Reporter after a crash: its first updates hold the progress the job
    had; the restart is left out of the step that follows."""
    before = steady(api, clock, job, 0, 40, 2, 10)["timeRemaining"]
    clock.advance(900)
    post(api, job, 40)  # the restarted worker reports where the job stood
    clock.advance(10)
    assert post(api, job, 42)["timeRemaining"] == pytest.approx(before * 58 / 60, rel=0.05)


def test_work_done_through_an_outage_counts(api: Any, clock: Any, job: str) -> None:
    """A worker that could not report for 200 s (20 typical steps) but kept
    training: its progress over the gap is a real rate observation, not a pause."""
    steady(api, clock, job, 0, 20, 2, 10)
    clock.advance(200)
    reply = post(api, job, 60)  # 40 % in 200 s: the speed it always had
    assert reply["timeRemaining"] == pytest.approx(200, rel=0.05)


def test_a_job_that_really_slows_down_is_learned(api: Any, clock: Any, job: str) -> None:
    """Not every long step is a pause: steps 20 times slower, again and again,
    end up in the estimate."""
    steady(api, clock, job, 0, 20, 2, 10)
    p = 20.0
    reply: dict[str, Any] = {}
    for _ in range(8):
        clock.advance(200)
        p += 2
        reply = post(api, job, p)
    # now 2 % per 200 s: the truth is (100 - 36) / 2 * 200 = 6,400 s
    assert reply["timeRemaining"] > 4000


# -- the worker's clock --------------------------------------------------------------


def test_a_worker_clock_stepped_back_never_freezes_the_job(api: Any, clock: Any, job: str) -> None:
    t = clock()
    post(api, job, 50, currentOperation="before", timestamp=iso(t))
    clock.advance(5)
    # NTP steps the worker's clock back an hour: every later update looks older
    stepped = post(api, job, 55, currentOperation="after", timestamp=iso(t + 5 - 3600))
    assert stepped["progress"] == 55
    clock.advance(5)
    assert post(api, job, 60, timestamp=iso(t + 10 - 3600))["progress"] == 60
    assert js(api.get(f"/api/jobs/{job}"))["job"]["currentOperation"] == "after"


def test_a_late_update_within_the_window_still_never_moves_progress_back(
    api: Any, clock: Any, job: str
) -> None:
    t = clock()
    post(api, job, 50, timestamp=iso(t + 30))
    clock.advance(1)
    assert post(api, job, 45, timestamp=iso(t))["progress"] == 50  # 30 s older: late


# -- retries ---------------------------------------------------------------------------


def test_a_retried_update_is_stored_once_and_answered_as_the_first_time(
    api: Any, clock: Any, job: str
) -> None:
    body = {
        "workerId": "w",
        "progress": 30,
        "updateId": "r1-0007",
        "metrics": {"gpuUtilization": 80},
        "logLines": [{"level": "info", "message": "epoch 3"}],
    }
    first = api.post(f"/api/jobs/{job}/progress", json=body)
    clock.advance(2)
    again = api.post(f"/api/jobs/{job}/progress", json=body)
    assert again.status_code == first.status_code == 200
    assert js(again) == js(first)
    logs = js(api.get(f"/api/jobs/{job}/logs"))
    assert [line["message"] for line in logs["logs"]] == ["epoch 3"]
    stored = js(api.get(f"/api/jobs/{job}"))["job"]
    assert stored["seq"] == js(first)["seq"]
    history = js(api.get(f"/api/jobs/{job}/metrics?timeRange=3600"))["metrics"]
    assert len(history) == 1

    # a new id is a new update; the same id on another job is that job's own
    body["updateId"] = "r1-0008"
    assert js(api.post(f"/api/jobs/{job}/progress", json=body))["seq"] == stored["seq"] + 2
    assert api.post("/api/jobs", json={"id": f"{job}-b"}).status_code == 201
    other = js(api.post(f"/api/jobs/{job}-b/progress", json={**body, "updateId": "r1-0007"}))
    assert other["seq"] == 2


def test_updates_without_an_id_are_applied_each_time(api: Any, clock: Any, job: str) -> None:
    body = {"workerId": "w", "progress": 10, "logLines": [{"level": "info", "message": "x"}]}
    for _ in range(2):
        assert api.post(f"/api/jobs/{job}/progress", json=body).status_code == 200
    assert js(api.get(f"/api/jobs/{job}/logs"))["total"] == 2


@pytest.mark.parametrize("update_id", ["", "x" * 65, 7, True, ["a"], "a\x00b"])
def test_a_bad_update_id_is_refused_and_changes_nothing(api: Any, job: str, update_id: Any) -> None:
    r = api.post(
        f"/api/jobs/{job}/progress", json={"workerId": "w", "progress": 5, "updateId": update_id}
    )
    assert "updateId" in [d["field"] for d in error_of(r, 400, "validation_error")["details"]]
    assert js(api.get(f"/api/jobs/{job}"))["job"]["seq"] == 0


# -- strict JSON and ids -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"workerId": "w", "progress": 5, "note": NaN}',
        '{"workerId": "w", "progress": 5, "extra": {"deep": [1, Infinity]}}',
        '{"workerId": "w", "progress": 5, "metrics": {"gpuUtilization": -Infinity}}',
        '{"workerId": "w", "progress": 5, "logLines": [{"level": "info", "message": "m", "x": NaN}]}',
    ],
)
def test_nan_and_infinity_anywhere_are_invalid_json(api: Any, job: str, raw: str) -> None:
    r = api.post(
        f"/api/jobs/{job}/progress", data=raw, headers={"Content-Type": "application/json"}
    )
    error_of(r, 400, "invalid_json")
    assert js(api.get(f"/api/jobs/{job}"))["job"]["seq"] == 0


def test_the_words_nan_and_infinity_inside_text_are_fine(api: Any, job: str) -> None:
    line = {"level": "info", "message": "loss NaN, lr Infinity"}
    post(api, job, 5, logLines=[line], currentOperation="NaN check")
    assert js(api.get(f"/api/jobs/{job}/logs"))["logs"][0]["message"] == line["message"]


@pytest.mark.parametrize("bad", ["run-1\n", "run-1\r\n", "\nrun-1"])
def test_a_job_id_with_a_newline_is_refused(api: Any, bad: str) -> None:
    r = api.post("/api/jobs", json={"id": bad})
    assert "id" in [d["field"] for d in error_of(r, 400, "validation_error")["details"]]
    ids = [j["id"] for j in js(api.get("/api/jobs?limit=1000"))["jobs"]]
    assert not any(i.strip() == bad.strip() for i in ids)


def test_nan_in_a_websocket_message_is_invalid_json(ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    ws.send(f'{{"type": "subscribe:job", "subscriptionId": "{job}", "note": NaN}}')
    answer = ws.recv()
    assert (answer["type"], answer["error"]["code"]) == ("error", "invalid_json")
    assert ws.subscribe(job)["type"] == "subscribed"  # the socket stays open
