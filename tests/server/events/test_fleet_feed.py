"""The fleet feed under hostile jobs: bounded summaries, pages a client can read,
and reads that never touch a job's result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from jobwatch.server import EmbeddedServer
from jobwatch.server.events.fleet_feed import SUMMARY_TEXT_BYTES, bounded_text
from jobwatch.server.storage.schema import jobs
from tests.conftest import Api, WsClient

WIDE = "\U0001f600" * 1024  # 1,024 four-byte characters


def fleet(ws: WsClient) -> list[dict[str, Any]]:
    """Subscribe to the fleet; every summary of its first pages (until a quiet second)."""
    ws.send({"type": "subscribe:jobs"})
    assert ws.recv()["type"] == "subscribed"
    got: list[dict[str, Any]] = []
    while True:
        try:
            message = ws.recv(timeout=1.0)
        except Exception:  # quiet: the first pages are out
            return got
        assert message["type"] == "JOBS_CHANGED", message
        got += message["data"]["jobs"]


def test_bounded_text_cuts_on_a_character_and_marks_the_cut() -> None:
    assert bounded_text(None) is None
    assert bounded_text("short") == "short"
    cut = bounded_text(WIDE)
    assert cut is not None and cut.endswith("…")
    assert len(cut.encode()) <= SUMMARY_TEXT_BYTES
    assert set(cut[:-1]) == {"\U0001f600"}
    exact = "a" * SUMMARY_TEXT_BYTES
    assert bounded_text(exact) == exact


def test_a_fleet_of_wide_jobs_reaches_a_new_subscriber(
    server: EmbeddedServer, api: Api, ws_factory: Callable[[], WsClient]
) -> None:
    for i in range(700):
        assert api.put(f"/api/jobs/wide{i:03d}", json={}).ok
    with server.services.store.engine.begin() as conn:
        conn.execute(update(jobs).values(name=WIDE, current_operation=WIDE, worker_id=WIDE))
    summaries = fleet(ws_factory())
    assert len({s["id"] for s in summaries}) == 700
    for s in summaries:
        for field in ("name", "currentOperation", "workerId"):
            assert len(s[field].encode()) <= SUMMARY_TEXT_BYTES and s[field].endswith("…")


def test_the_feed_never_reads_a_jobs_result(
    server: EmbeddedServer, api: Api, ws_factory: Callable[[], WsClient]
) -> None:
    assert api.put("/api/jobs/done", json={"name": "done"}).ok
    body = {"workerId": "w", "progress": 5, "metrics": {"gpuUtilization": 50}}
    assert api.post("/api/jobs/done/progress", json=body).ok
    assert api.post("/api/jobs/done/complete", json={"workerId": "w", "result": [1]}).ok
    # a result no reader could decode: only a read of the column would notice
    with server.services.store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == "done").values(result="{not json"))
    (summary,) = fleet(ws_factory())
    assert (summary["id"], summary["status"]) == ("done", "completed")
    assert summary["gpuUtilization"] == 50
