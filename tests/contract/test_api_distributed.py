"""Distributed jobs over HTTP: one job, one worker per rank, on several nodes.

Two nodes of two ranks each report to one job, as ``torchrun --nnodes 2
--nproc-per-node 2`` does: the job's progress comes from rank 0 only, every
rank's lines are kept once and tagged with their rank and node, the workers
endpoint lists each rank, and a node's own price makes the cost.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, FakeClock

RANKS = [("node-a", 0, 0), ("node-a", 1, 1), ("node-b", 2, 0), ("node-b", 3, 1)]


def _update(node: str, rank: int, local: int, progress: float, **extra: Any) -> dict[str, Any]:
    return {
        "workerId": f"{node}/{rank}",
        "progress": progress,
        "rank": rank,
        "worldSize": 4,
        "localRank": local,
        "node": node,
        **extra,
    }


def _put_every_rank(api: Api, job_id: str) -> None:
    for node, rank, _ in RANKS:
        answer = api.put(f"/api/jobs/{job_id}", json={"workerId": f"{node}/{rank}", "worldSize": 4})
        assert answer.status_code in (200, 201), answer.text


def test_every_rank_of_two_nodes_reports_to_one_job(api: Api, clock: FakeClock) -> None:
    _put_every_rank(api, "ddp")
    for node, rank, local in RANKS:
        line = {"level": "info", "message": "epoch 1 done"}
        answer = api.post(
            "/api/jobs/ddp/progress",
            json=_update(
                node, rank, local, 40 + 10 * rank, currentOperation=f"r{rank}", logLines=[line]
            ),
        )
        assert answer.status_code == 200, answer.text
    job = api.get("/api/jobs/ddp").json()["job"]
    assert (job["progress"], job["currentOperation"]) == (40, "r0")  # rank 0's, not the last
    assert (job["worldSize"], job["workers"], job["nodes"]) == (4, 4, 2)
    assert job["workerId"] == "node-a/0"

    workers = api.get("/api/jobs/ddp/workers").json()
    assert workers["worldSize"] == 4
    assert [(w["rank"], w["node"], w["localRank"], w["progress"]) for w in workers["workers"]] == [
        (0, "node-a", 0, 40),
        (1, "node-a", 1, 50),
        (2, "node-b", 0, 60),
        (3, "node-b", 1, 70),
    ]
    assert {w["status"] for w in workers["workers"]} == {"running"}

    logs = api.get("/api/jobs/ddp/logs").json()
    assert logs["total"] == 4
    assert sorted((line["rank"], line["node"]) for line in logs["logs"]) == [
        (0, "node-a"),
        (1, "node-a"),
        (2, "node-b"),
        (3, "node-b"),
    ]
    one_rank = api.get("/api/jobs/ddp/logs?rank=2").json()
    assert (one_rank["total"], [line["rank"] for line in one_rank["logs"]]) == (1, [2])
    one_node = api.get("/api/jobs/ddp/logs?node=node-a&level=info").json()
    assert one_node["total"] == 2
    assert {line["node"] for line in one_node["logs"]} == {"node-a"}


def test_a_job_without_world_size_keeps_the_seeds_binding(api: Api) -> None:
    seed = {"workerId": "box-1", "progress": 10}
    assert api.post("/api/jobs/solo/progress", json=seed).status_code in (200, 404)
    api.put("/api/jobs/solo", json={"workerId": "box-1"})
    assert api.post("/api/jobs/solo/progress", json=seed).status_code == 200
    other = api.post("/api/jobs/solo/progress", json={"workerId": "box-2", "progress": 20})
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "worker_mismatch"
    as_rank = api.post("/api/jobs/solo/progress", json=_update("box-2", 1, 1, 20))
    assert as_rank.status_code == 403  # a rank cannot join a job bound to one worker
    job = api.get("/api/jobs/solo").json()["job"]
    assert (job["worldSize"], job["workers"], job["nodes"], job["progress"]) == (None, 1, 1, 10)
    workers = api.get("/api/jobs/solo/workers").json()["workers"]
    assert [(w["workerId"], w["rank"]) for w in workers] == [("box-1", None)]


def test_a_distributed_job_refuses_an_update_without_a_rank(api: Api) -> None:
    _put_every_rank(api, "ddp2")
    assert api.post("/api/jobs/ddp2/progress", json=_update("node-a", 0, 0, 5)).status_code == 200
    answer = api.post("/api/jobs/ddp2/progress", json={"workerId": "node-a/0", "progress": 6})
    assert answer.status_code == 403
    assert "rank" in answer.json()["error"]["message"]
    assert api.get("/api/jobs/ddp2").json()["job"]["progress"] == 5


@pytest.mark.parametrize(
    ("extra", "wrong"),
    [
        ({"rank": 4, "worldSize": 4}, "rank"),
        ({"rank": 1}, "worldSize"),
        ({"rank": -1, "worldSize": 4}, "rank"),
        ({"rank": "1", "worldSize": 4}, "rank"),
        ({"rank": 0, "worldSize": 0}, "worldSize"),
        ({"rank": 0, "worldSize": 2, "nodePricePerHour": -1}, "nodePricePerHour"),
        ({"rank": 0, "worldSize": 2, "node": ""}, "node"),
    ],
)
def test_bad_ranks_are_refused_and_change_nothing(
    api: Api, extra: dict[str, Any], wrong: str
) -> None:
    _put_every_rank(api, "ddp3")
    answer = api.post("/api/jobs/ddp3/progress", json={"workerId": "w", "progress": 1, **extra})
    assert answer.status_code == 400
    assert wrong in answer.text
    job = api.get("/api/jobs/ddp3").json()["job"]
    assert (job["status"], job["workers"]) == ("pending", 0)


def test_an_elastic_restart_continues_the_same_job(api: Api, clock: FakeClock) -> None:
    _put_every_rank(api, "elastic")
    for node, rank, local in RANKS:
        api.post("/api/jobs/elastic/progress", json=_update(node, rank, local, 30))
    clock.advance(60)
    # node-b is taken; node-c joins and takes ranks 2 and 3 over
    for rank, local in ((2, 0), (3, 1)):
        answer = api.post("/api/jobs/elastic/progress", json=_update("node-c", rank, local, 31))
        assert answer.status_code == 200, answer.text
    job = api.get("/api/jobs/elastic").json()["job"]
    assert (job["workers"], job["nodes"], job["status"]) == (4, 2, "running")
    nodes = [w["node"] for w in api.get("/api/jobs/elastic/workers").json()["workers"]]
    assert nodes == ["node-a", "node-a", "node-c", "node-c"]


def test_the_cost_of_a_job_is_the_sum_of_its_nodes(api: Api, clock: FakeClock) -> None:
    """node-a at 2.0/h for 1 h, node-b at 3.0/h for 1 h then 6.0/h for half an hour."""
    _put_every_rank(api, "priced")
    for node, rank, local in RANKS:
        price = {"node-a": 2.0, "node-b": 3.0}[node] if local == 0 else None
        extra = {} if price is None else {"nodePricePerHour": price}
        api.post("/api/jobs/priced/progress", json=_update(node, rank, local, 10, **extra))
    job = api.get("/api/jobs/priced").json()["job"]
    assert job["pricePerHour"] == pytest.approx(5.0)  # the nodes' current total rate
    clock.advance(3600)
    api.post("/api/jobs/priced/progress", json=_update("node-a", 0, 0, 50, nodePricePerHour=2.0))
    api.post("/api/jobs/priced/progress", json=_update("node-b", 2, 0, 50, nodePricePerHour=6.0))
    clock.advance(1800)
    api.post("/api/jobs/priced/progress", json=_update("node-a", 0, 0, 75, nodePricePerHour=2.0))
    api.post("/api/jobs/priced/progress", json=_update("node-b", 2, 0, 75, nodePricePerHour=6.0))
    answer = api.post(
        "/api/jobs/priced/complete", json={"workerId": "node-a/0", "status": "completed"}
    )
    assert answer.status_code == 200, answer.text
    monitor = api.get("/api/jobs/priced/monitor").json()
    # node-a: 1.5 h x 2.0 = 3.0; node-b: 1 h x 3.0 + 0.5 h x 6.0 = 6.0
    assert monitor["costSoFar"] == pytest.approx(9.0)


def test_a_node_priced_jobs_cost_never_drops_at_its_end(api: Api, clock: FakeClock) -> None:
    """The nodes are paid until the job ends: the silent tail between the last
    report and the completion costs at the nodes' rate, live and once finished
    alike (before: 14.19 while it was silent, 2.09 once completed)."""
    _put_every_rank(api, "tail")
    for node, rank, local in RANKS:
        price = {"node-a": 2.0, "node-b": 3.0}[node] if local == 0 else None
        extra = {} if price is None else {"nodePricePerHour": price}
        api.post("/api/jobs/tail/progress", json=_update(node, rank, local, 10, **extra))
    clock.advance(3600)  # an hour without a report
    live = api.get("/api/jobs/tail/monitor").json()["costSoFar"]
    assert live == pytest.approx(5.0)
    answer = api.post("/api/jobs/tail/complete", json={"workerId": "node-a/0"})
    assert answer.status_code == 200, answer.text
    clock.advance(600)
    monitor = api.get("/api/jobs/tail/monitor").json()
    assert monitor["costSoFar"] == pytest.approx(live)


def test_only_rank_0_completes_a_distributed_job(api: Api) -> None:
    _put_every_rank(api, "ddp4")
    for node, rank, local in RANKS:
        api.post("/api/jobs/ddp4/progress", json=_update(node, rank, local, 10))
    other = api.post("/api/jobs/ddp4/complete", json={"workerId": "node-b/2"})
    assert other.status_code == 403
    assert api.post("/api/jobs/ddp4/complete", json={"workerId": "node-a/0"}).status_code == 200


def test_a_rank_may_put_its_world_after_rank_0_reported(api: Api) -> None:
    """Ranks start in any order: a rank's PUT after rank 0's first update is no change."""
    first = api.put("/api/jobs/late", json={"workerId": "node-a/0", "worldSize": 4, "name": "ft"})
    assert first.status_code == 201, first.text
    assert api.post("/api/jobs/late/progress", json=_update("node-a", 0, 0, 5)).status_code == 200
    for node, rank, _ in RANKS[1:]:
        answer = api.put("/api/jobs/late", json={"workerId": f"{node}/{rank}", "worldSize": 4})
        assert answer.status_code == 200, answer.text
        body = {"workerId": f"{node}/{rank}", "worldSize": 4, "name": "other"}
        refused = api.put("/api/jobs/late", json=body)  # only rank 0 renames the job
        assert refused.status_code == 403
    job = api.get("/api/jobs/late").json()["job"]
    assert (job["workerId"], job["worldSize"], job["name"]) == ("node-a/0", 4, "ft")


def test_workers_finish_with_their_job_and_leave_when_the_world_shrinks(api: Api) -> None:
    _put_every_rank(api, "ddp5")
    for node, rank, local in RANKS:
        api.post("/api/jobs/ddp5/progress", json=_update(node, rank, local, 10))
    # an elastic restart with two ranks: ranks 2 and 3 are gone
    for rank in (0, 1):
        update = {**_update("node-a", rank, rank, 20), "worldSize": 2}
        assert api.post("/api/jobs/ddp5/progress", json=update).status_code == 200
    workers = api.get("/api/jobs/ddp5/workers").json()["workers"]
    assert [(w["rank"], w["status"]) for w in workers] == [
        (0, "running"),
        (1, "running"),
        (2, "left"),
        (3, "left"),
    ]
    job = api.get("/api/jobs/ddp5").json()["job"]
    assert (job["worldSize"], job["workers"], job["nodes"]) == (2, 2, 1)
    assert api.post("/api/jobs/ddp5/complete", json={"workerId": "node-a/0"}).status_code == 200
    statuses = [w["status"] for w in api.get("/api/jobs/ddp5/workers").json()["workers"]]
    assert statuses == ["finished", "finished", "left", "left"]


def test_a_rank_delivers_its_last_lines_after_rank_0_completed(api: Api, clock: FakeClock) -> None:
    """A rank's last lines and progress, sent just after rank 0 completed the job
    (the trial's "rank 1 saved its shard", lost with a 409), are kept for
    RANK_GRACE seconds; the job's status, progress, cost and completedAt stay."""
    _put_every_rank(api, "ddp6")
    for node, rank, local in RANKS:
        body = _update(node, rank, local, 90, nodePricePerHour=3.0 if local == 0 else None)
        assert api.post("/api/jobs/ddp6/progress", json=body).status_code == 200
    clock.advance(10)
    assert api.post("/api/jobs/ddp6/complete", json={"workerId": "node-a/0"}).status_code == 200
    before = api.get("/api/jobs/ddp6").json()["job"]
    cost = api.get("/api/jobs/ddp6/monitor").json()["costSoFar"]
    assert cost > 0

    clock.advance(5)
    line = {"level": "info", "message": "rank 1 saved its shard"}
    sample = {"gpuUtilization": 10, "gpuMemoryUsed": 1, "gpuMemoryTotal": 2}
    body = _update(
        "node-a", 1, 1, 100, currentOperation="step 20/20", logLines=[line], metrics=sample
    )
    late = api.post("/api/jobs/ddp6/progress", json=body)
    assert late.status_code == 200, late.text
    assert (late.json()["status"], late.json()["finished"]) == ("completed", True)

    after = api.get("/api/jobs/ddp6").json()["job"]
    for field in ("status", "progress", "completedAt", "currentOperation", "updatedAt"):
        assert after[field] == before[field], field
    assert api.get("/api/jobs/ddp6/monitor").json()["costSoFar"] == cost
    lines = api.get("/api/jobs/ddp6/logs?rank=1").json()["logs"]
    assert [ln["message"] for ln in lines] == ["rank 1 saved its shard"]
    workers = {w["rank"]: w for w in api.get("/api/jobs/ddp6/workers").json()["workers"]}
    assert (workers[1]["progress"], workers[1]["currentOperation"]) == (100, "step 20/20")

    # not a rank of the job: refused as before
    stranger = {**_update("node-c", 1, 1, 100), "logLines": [line]}
    assert api.post("/api/jobs/ddp6/progress", json=stranger).status_code == 409
    # past the grace period: refused as before
    clock.advance(61)
    refused = api.post("/api/jobs/ddp6/progress", json=_update("node-b", 2, 0, 100))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "job_finished"
    assert api.get("/api/jobs/ddp6").json()["job"] == after
