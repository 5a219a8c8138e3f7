"""``subscribe:job`` with a view (an extension): one rank's or node's log lines, and
only the progress events that change what a viewer shows. Without one, the stream is
the contract's (the rest of the WebSocket tests)."""

from __future__ import annotations

from typing import Any

from tests.contract.test_ws_protocol import assert_quiet, recv

WORLD = 4


def rank_update(api: Any, job: str, rank: int, progress: float, **extra: Any) -> None:
    node = f"n{rank // 2}"
    body = {
        "workerId": f"{node}/{rank}",
        "progress": progress,
        "currentOperation": f"step {progress:g}",
        "rank": rank,
        "worldSize": WORLD,
        "node": node,
        **extra,
    }
    answer = api.post(f"/api/jobs/{job}/progress", json=body)
    assert answer.status_code == 200, answer.text


def lines(rank: int, *texts: str) -> list[dict[str, str]]:
    return [{"level": "info", "message": f"r{rank} {text}"} for text in texts]


def subscribe(ws: Any, job: str, **view: Any) -> dict[str, Any]:
    ws.send({"type": "subscribe:job", "subscriptionId": job, **view})
    ack = recv(ws)
    assert ack["type"] == "subscribed", ack
    return ack


def test_one_ranks_log_lines(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    subscribe(ws, job, logs={"rank": 1})
    for rank in range(WORLD):
        rank_update(api, job, rank, 10, logLines=lines(rank, "a", "b"))
    events = [recv(ws) for _ in range(WORLD + 1)]  # every progress, rank 1's lines once
    logs = [e for e in events if e["type"] == "JOB_LOGS"]
    assert [[line["message"] for line in e["data"]["logs"]] for e in logs] == [["r1 a", "r1 b"]]
    assert {line["rank"] for line in logs[0]["data"]["logs"]} == {1}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert_quiet(ws, api)


def test_one_nodes_lines_and_one_rank_on_one_node(api: Any, ws_factory: Any, job: str) -> None:
    node, both, nobody = ws_factory(), ws_factory(), ws_factory()
    subscribe(node, job, logs={"node": "n1"}, progress="changes")
    subscribe(both, job, logs={"rank": 3, "node": "n1"}, progress="changes")
    subscribe(nobody, job, logs={"rank": 0, "node": "n1"}, progress="changes")  # n0 holds rank 0
    rank_update(api, job, 0, 10, logLines=lines(0, "a"))
    for rank in (1, 2, 3):
        rank_update(api, job, rank, 10, logLines=lines(rank, "a"))
    kinds = [recv(node)["type"] for _ in range(3)]  # rank 0's progress, then ranks 2 and 3's lines
    assert kinds == ["JOB_PROGRESS", "JOB_LOGS", "JOB_LOGS"]
    assert recv(both)["type"] == "JOB_PROGRESS"
    assert [line["message"] for line in recv(both)["data"]["logs"]] == ["r3 a"]
    assert recv(nobody)["type"] == "JOB_PROGRESS"
    for ws in (node, both, nobody):
        assert_quiet(ws, api)


def test_changes_leave_out_the_other_ranks_repeats_but_not_their_gpus(
    api: Any, clock: Any, ws_factory: Any, job: str
) -> None:
    ws = ws_factory()
    subscribe(ws, job, progress="changes")
    gpus = {"gpus": [{"index": 0, "uuid": "GPU-n1-0", "gpuUtilization": 50.0}]}
    rank_update(api, job, 0, 10)  # news: the first
    rank_update(api, job, 1, 12)  # rank 0's figures again: left out
    rank_update(api, job, 2, 12, metrics=gpus)  # node n1's GPUs: sent
    rank_update(api, job, 0, 20)  # progress moved: sent
    got = [recv(ws) for _ in range(3)]
    assert [(e["data"]["progress"], bool(e["data"]["metrics"])) for e in got] == [
        (10, False),
        (10, True),
        (20, False),
    ]
    assert_quiet(ws, api)


def test_changes_let_a_repeat_through_after_a_second(api: Any, ws_factory: Any, job: str) -> None:
    import time

    ws = ws_factory()
    subscribe(ws, job, progress="changes")
    rank_update(api, job, 0, 10)
    assert recv(ws)["data"]["progress"] == 10
    time.sleep(1.05)  # the heartbeat is on the server's monotonic clock
    rank_update(api, job, 1, 11)  # nothing new, but a second passed: estimates move
    assert recv(ws)["type"] == "JOB_PROGRESS"


def test_a_replay_shows_the_same_view(api: Any, ws_factory: Any, job: str) -> None:
    for rank in range(WORLD):
        rank_update(api, job, rank, 10, logLines=lines(rank, "before"))
    ws = ws_factory()
    subscribe(ws, job, since=0, logs={"rank": 2})
    replayed = {e["type"]: e for e in (recv(ws), recv(ws))}  # the newest progress, rank 2's line
    assert replayed["JOB_PROGRESS"]["data"]["progress"] == 10
    assert [line["message"] for line in replayed["JOB_LOGS"]["data"]["logs"]] == ["r2 before"]
    assert_quiet(ws, api)


def test_subscribing_again_changes_the_view(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    ack = subscribe(ws, job, logs={"rank": 0})
    subscribe(ws, job, since=ack["seq"], logs={"rank": 1})
    rank_update(api, job, 0, 10, logLines=lines(0, "x"))
    rank_update(api, job, 1, 10, logLines=lines(1, "x"))
    got = [recv(ws) for _ in range(3)]
    logs = [e for e in got if e["type"] == "JOB_LOGS"]
    assert [e["data"]["logs"][0]["message"] for e in logs] == ["r1 x"]
    assert_quiet(ws, api)


def test_a_bad_view_is_refused_with_the_field(ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    for view, field in (
        ({"logs": {"rank": -1}}, "logs.rank"),
        ({"logs": {"node": ""}}, "logs.node"),
        ({"logs": {"rank": "1"}}, "logs.rank"),
        ({"progress": "some"}, "progress"),
    ):
        ws.send({"type": "subscribe:job", "subscriptionId": job, **view})
        error = recv(ws)
        assert error["type"] == "error", error
        assert error["error"]["code"] == "validation_error"
        assert field in str(error["error"]), (view, error)
