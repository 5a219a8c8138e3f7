"""EventView: what a subscriber's view keeps of each event, without a server."""

from __future__ import annotations

from typing import Any

import orjson

from jobwatch.server.core.event_view import PROGRESS_HEARTBEAT, EventView
from jobwatch.server.core.serialize import Event


def message(kind: str, data: dict[str, Any], seq: int = 1) -> bytes:
    return Event("j", seq, kind, {"jobId": "j", **data}).message()


def logs(*ranks: int) -> bytes:
    lines = [
        {"id": i, "level": "info", "timestamp": "t", "message": f"m{i}", "rank": r, "node": f"n{r}"}
        for i, r in enumerate(ranks)
    ]
    return message("JOB_LOGS", {"logs": lines})


def progress(value: float, metrics: Any = None, **data: Any) -> bytes:
    body = {"status": "running", "progress": value, "currentOperation": "op", "metrics": metrics}
    return message("JOB_PROGRESS", {**body, **data})


def test_without_a_view_every_event_goes_as_it_is() -> None:
    view = EventView()
    assert view.everything
    for event in (logs(0, 1), progress(1), progress(1), message("JOB_COMPLETED", {})):
        assert view.apply(event, 0.0) is event


def test_a_log_view_keeps_its_lines_and_drops_an_event_left_empty() -> None:
    view = EventView(rank=1)
    kept = view.apply(logs(0, 1, 1), 0.0)
    assert kept is not None
    assert [line["id"] for line in orjson.loads(kept)["data"]["logs"]] == [1, 2]
    assert view.apply(logs(0, 2), 0.0) is None
    whole = logs(1, 1)
    assert view.apply(whole, 0.0) is whole  # nothing left out: the same bytes
    assert EventView(node="n2").apply(logs(1), 0.0) is None
    assert view.apply(progress(5), 0.0) is not None  # progress is not its business


def test_changes_only_sends_news_and_a_heartbeat() -> None:
    view = EventView(changes_only=True)
    assert view.apply(progress(1), 10.0) is not None
    assert view.apply(progress(1), 10.1) is None
    assert view.apply(progress(1, metrics={"gpuUtilization": 5}), 10.2) is not None
    assert view.apply(progress(1, scalars=[{"step": 1}]), 10.3) is not None
    assert view.apply(progress(1, status="completed"), 10.4) is not None
    assert view.apply(progress(1, status="completed"), 10.5) is None
    assert view.apply(progress(1, status="completed"), 10.3 + PROGRESS_HEARTBEAT + 0.2) is not None
    assert view.apply(logs(3), 11.0) is not None  # lines are not its business


def node_sample(node: str) -> dict[str, Any]:
    return {"gpuUtilization": 50.0, "gpus": [{"index": 0, "uuid": f"GPU-{node}", "node": node}]}


def test_changes_pass_each_nodes_samples_at_a_pace_that_keeps_sixteen_a_second() -> None:
    from jobwatch.server.core.event_view import SAMPLES_PER_SECOND

    view = EventView(changes_only=True)
    view.apply(progress(1), 0.0)
    nodes = [f"n{i}" for i in range(SAMPLES_PER_SECOND * 4)]  # 64 nodes: one each 4 s
    sent = [
        t
        for t in range(0, 8)
        for node in nodes
        if view.apply(progress(1, metrics=node_sample(node)), t + nodes.index(node) / len(nodes))
        and node == "n5"
    ]
    assert sent == [0, 4]  # n5's samples at 0 s and 4 s; the others' in between go too
    few = EventView(changes_only=True)  # 16 nodes or fewer: every sample
    assert all(
        few.apply(progress(1, metrics=node_sample(f"n{i % 4}")), float(i // 4)) for i in range(12)
    )
    single = EventView(changes_only=True)  # one worker's samples name no node: every one
    assert all(single.apply(progress(1, metrics={"gpuUtilization": 1.0}), t / 10) for t in range(5))
