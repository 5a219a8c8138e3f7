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
