"""``subscribe:jobs``: live summaries of every job, on every backend."""

from __future__ import annotations

import time
from typing import Any

import pytest


def post(api: Any, job_id: str, p: float, **extra: Any) -> None:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": p, **extra})
    assert r.status_code == 200, r.text


def summaries(messages: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    return [
        s
        for m in messages
        if m.get("type") == "JOBS_CHANGED"
        for s in m["data"]["jobs"]
        if s["id"] == job_id
    ]


def collect(ws: Any, seconds: float) -> list[dict[str, Any]]:
    """Every message that arrives within ``seconds``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(ws.recv(timeout=left))
        except Exception:  # the timeout
            break
    return got


def test_a_new_fleet_subscriber_gets_every_job_then_changes(
    api: Any, ws_factory: Any, job_id: str
) -> None:
    assert api.post("/api/jobs", json={"id": job_id, "name": "fleet", "pricePerHour": 3.6}).ok
    post(api, job_id, 10, metrics={"gpuUtilization": 87, "gpuTemperature": 71})
    ws = ws_factory()
    ws.send({"type": "subscribe:jobs"})
    answer = ws.recv()
    assert answer["type"] == "subscribed" and answer["subscriptionId"] == "jobs"
    first = ws.recv()
    (mine,) = summaries([first], job_id)
    assert (mine["name"], mine["status"], mine["progress"]) == ("fleet", "running", 10)
    assert (mine["gpuUtilization"], mine["gpuTemperature"]) == (87, 71)
    assert mine["stalled"] is False and mine["alerts"] == 0 and mine["currency"] == "QUBIC"
    post(api, job_id, 20)
    changed = ws.recv_until(lambda m: bool(summaries([m], job_id)))
    assert summaries(changed, job_id)[-1]["progress"] == 20


def test_rapid_updates_are_coalesced(api: Any, ws_factory: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).ok
    ws = ws_factory()
    ws.send({"type": "subscribe:jobs", "status": "running"})
    ws.recv()  # subscribed
    for p in range(1, 41):
        post(api, job_id, p)
    got = summaries(collect(ws, 1.5), job_id)
    assert got and got[-1]["progress"] == 40
    assert len(got) < 40  # at most one summary per job and tick (4 a second)


def test_a_status_filter_and_unsubscribe(api: Any, ws_factory: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).ok
    ws = ws_factory()
    ws.send({"type": "subscribe:jobs", "status": "completed"})
    ws.recv()
    post(api, job_id, 50)  # running: not for this subscriber
    assert summaries(collect(ws, 0.8), job_id) == []
    assert api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w"}).ok
    done = ws.recv_until(lambda m: bool(summaries([m], job_id)))
    assert summaries(done, job_id)[-1]["status"] == "completed"
    ws.send({"type": "unsubscribe:jobs"})
    assert ws.recv_until(lambda m: m.get("type") == "unsubscribed")[-1]["subscriptionId"] == "jobs"


def test_resuming_with_since_sends_only_what_changed(
    api: Any, clock: Any, ws_factory: Any, job_id: str
) -> None:
    old, new = f"{job_id}-old", f"{job_id}-new"
    for job in (old, new):
        assert api.post("/api/jobs", json={"id": job}).ok
        post(api, job, 5)
    clock.advance(60)  # more than the resume margin (5 s) after both changed
    ws = ws_factory()
    ws.send({"type": "subscribe:jobs"})
    seq = ws.recv()["seq"]
    ws.close()
    clock.advance(60)
    post(api, new, 6)
    again = ws_factory()
    again.send({"type": "subscribe:jobs", "since": seq})
    again.recv()
    first = again.recv()
    assert summaries([first], new) and not summaries([first], old)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe:jobs", "status": "bogus"},
        {"type": "subscribe:jobs", "since": -1},
        {"type": "subscribe:jobs", "since": "x"},
    ],
)
def test_bad_fleet_messages_are_errors_and_the_socket_stays(ws_factory: Any, message: Any) -> None:
    ws = ws_factory()
    ws.send(message)
    answer = ws.recv()
    assert answer["type"] == "error" and answer["error"]["code"] == "validation_error"
    ws.send({"type": "subscribe:jobs"})
    assert ws.recv()["type"] == "subscribed"


def test_a_job_that_leaves_the_filtered_status_is_sent_once_more(
    api: Any, ws_factory: Any, job_id: str
) -> None:
    """A view of the running jobs must learn that one of them finished, or it shows
    that job running forever."""
    assert api.post("/api/jobs", json={"id": job_id}).ok
    post(api, job_id, 10)
    ws = ws_factory()
    ws.send({"type": "subscribe:jobs", "status": "running"})
    ws.recv()
    assert summaries([ws.recv()], job_id)  # the first page: it runs
    assert api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w"}).ok
    left = ws.recv_until(lambda m: bool(summaries([m], job_id)))
    assert summaries(left, job_id)[-1]["status"] == "completed"
    post_completion = f"{job_id}-other"
    assert api.post("/api/jobs", json={"id": post_completion}).ok
    post(api, post_completion, 5)  # a later tick: the finished job is not sent again
    later = ws.recv_until(lambda m: bool(summaries([m], post_completion)))
    assert summaries(later, job_id) == []


def test_a_distributed_jobs_summary_counts_its_workers_and_nodes(
    api: Any, ws_factory: Any, job_id: str
) -> None:
    assert api.put(f"/api/jobs/{job_id}", json={"worldSize": 3}).status_code == 201
    assert api.put(f"/api/jobs/single-{job_id}", json={}).status_code == 201
    for rank, node in enumerate(["a", "a", "b"]):
        body = {"workerId": f"{node}/{rank}", "progress": 5, "rank": rank, "worldSize": 3}
        body.update(node=node, nodePricePerHour=2.0 if rank != 1 else None)
        assert api.post(f"/api/jobs/{job_id}/progress", json=body).status_code == 200
    ws = ws_factory()
    ws.send({"type": "subscribe:jobs"})
    assert ws.recv()["type"] == "subscribed"
    (mine,) = summaries([ws.recv()], job_id)
    assert (mine["worldSize"], mine["workers"], mine["nodes"]) == (3, 3, 2)
    assert mine["pricePerHour"] == 4.0  # the nodes' total rate
    post(api, f"single-{job_id}", 5)
    changed = ws.recv_until(lambda m: bool(summaries([m], f"single-{job_id}")))
    single = summaries(changed, f"single-{job_id}")[-1]
    assert (single["worldSize"], single["workers"], single["nodes"]) == (None, 1, 1)
