"""Memory is bounded by bytes, whatever clients ask: replays are read a page at a
time, a subscriber's send queue holds a bounded number of bytes, a client that stops
reading is dropped, and a list page stops at a byte budget.

(The figures, RSS through the attacks, are measured in ``benchmarks/memory.py``.)
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import requests
import websocket

from jobwatch.server import EmbeddedServer
from jobwatch.server.storage import queries, replay
from jobwatch.server.storage.queries import LIST_PAGE_BYTES, SAMPLE_GPU_BYTES, SCALAR_ANSWER_POINTS
from tests.conftest import wait_for

LINE = "x" * 16_000


def _post_logs(url: str, job: str, n_posts: int, lines: int = 30) -> None:
    with requests.Session() as session:
        for i in range(n_posts):
            body = {
                "workerId": "w",
                "progress": min(100, i),
                "logLines": [{"level": "info", "message": LINE} for _ in range(lines)],
            }
            session.post(f"{url}/api/jobs/{job}/progress", json=body, timeout=30).raise_for_status()


def _sluggish(ws_url: str) -> websocket.WebSocket:
    """A WebSocket that reads as little as the kernel lets it (a small receive buffer)."""
    ws = websocket.WebSocket(sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    ws.connect(ws_url, timeout=10)
    return ws


def test_a_replay_in_pages_smaller_than_an_event_yields_each_event_whole(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay reads the store a page at a time (its memory is a page, not the
    job's history: ``benchmarks/memory.py`` measures it); a page boundary inside an
    event must not split it, reorder it or lose a line."""
    requests.put(f"{server.url}/api/jobs/paged", json={}, timeout=5)
    _post_logs(server.url, "paged", 5, lines=4)
    monkeypatch.setattr(replay, "REPLAY_PAGE", 3)  # events of 4 lines span pages
    with server.services.store.read() as conn:
        job = queries.get_job(conn, "paged")
    assert job is not None
    events = list(replay.replay(server.services.store, job, 0, job["seq"], time.time()))
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    logs = [e for e in events if e.type == "JOB_LOGS"]
    assert [len(e.data["logs"]) for e in logs] == [4] * 5  # each event whole
    assert [line["message"] for e in logs for line in e.data["logs"]] == [LINE] * 20
    assert [e.type for e in events].count("JOB_PROGRESS") == 1


def test_a_replay_streams_in_order_over_the_socket(server: EmbeddedServer, monkeypatch) -> None:
    monkeypatch.setattr(replay, "REPLAY_PAGE", 5)
    requests.put(f"{server.url}/api/jobs/streamed", json={}, timeout=5)
    _post_logs(server.url, "streamed", 6, lines=3)
    ws = websocket.create_connection(server.ws_url, timeout=10)
    ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": "streamed", "since": 0}))
    assert json.loads(ws.recv())["type"] == "subscribed"
    messages = [json.loads(ws.recv()) for _ in range(7)]  # 6 log events + the newest progress
    ws.close()
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    assert sum(len(m["data"].get("logs", [])) for m in messages) == 18


@pytest.fixture
def tight(clock: Any) -> Any:
    config = {"CLOCK": clock, "WS_SEND_TIMEOUT": 1.0, "WS_QUEUE_BYTES": 256 * 1024}
    with EmbeddedServer(config=config) as server:
        yield server


def test_a_client_that_stops_reading_a_replay_is_dropped(tight: EmbeddedServer) -> None:
    requests.put(f"{tight.url}/api/jobs/bomb", json={}, timeout=5)
    _post_logs(tight.url, "bomb", 40)  # 19 MB of log lines
    ws = _sluggish(tight.ws_url)
    ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": "bomb", "since": 0}))
    # never reads: the replay's sends block, and the watchdog drops the client
    wait_for(lambda: tight.services.broker.subscriber_count("bomb") == 0, 20)
    ws.close()
    assert requests.get(f"{tight.url}/api/jobs/bomb/monitor", timeout=5).status_code == 200


def test_a_slow_subscribers_send_queue_is_bounded_in_bytes(clock: Any) -> None:
    config = {"CLOCK": clock, "WS_SEND_TIMEOUT": 3600.0, "WS_QUEUE_BYTES": 256 * 1024}
    with EmbeddedServer(config=config) as server:
        requests.put(f"{server.url}/api/jobs/big", json={}, timeout=5)
        ws = _sluggish(server.ws_url)
        ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": "big"}))
        wait_for(lambda: server.services.broker.subscriber_count("big") == 1, 20)
        # 40 events of ~480 KB, far fewer than WS_QUEUE_SIZE (1,024) messages
        _post_logs(server.url, "big", 40)
        wait_for(lambda: server.services.broker.subscriber_count("big") == 0, 20)
        ws.close()


def test_a_list_page_stops_at_its_byte_budget(server: EmbeddedServer) -> None:
    result = "r" * 1_000_000
    n = 2 + LIST_PAGE_BYTES // len(result)
    with requests.Session() as session:
        for i in range(n):
            session.put(f"{server.url}/api/jobs/big-{i}", json={}, timeout=5)
            session.post(
                f"{server.url}/api/jobs/big-{i}/complete",
                json={"workerId": "w", "result": result},
                timeout=30,
            ).raise_for_status()
        seen: list[str] = []
        while True:
            answer = session.get(f"{server.url}/api/jobs?limit=1000&offset={len(seen)}", timeout=30)
            page = answer.json()
            assert len(answer.content) <= LIST_PAGE_BYTES + 1_000_000
            if not page["jobs"]:
                break
            assert page["total"] == n
            seen += [job["id"] for job in page["jobs"]]
            assert all(job["result"] == result for job in page["jobs"])  # jobs stay whole
        assert sorted(seen) == sorted(f"big-{i}" for i in range(n))


def _post_many_gpus(url: str, job: str, n_posts: int, n_gpus: int = 64) -> int:
    """Posts ``n_posts`` samples of ``n_gpus`` GPUs with long names; returns one sample's
    per-GPU JSON size in bytes."""
    gpus = [
        {"index": i, "uuid": f"GPU-{i:04d}-" + "u" * 1000, "name": "n" * 1000, "gpuUtilization": 50}
        for i in range(n_gpus)
    ]
    with requests.Session() as session:
        for i in range(n_posts):
            body = {"workerId": "w", "progress": i % 100, "metrics": {"gpus": gpus}}
            session.post(f"{url}/api/jobs/{job}/progress", json=body, timeout=30).raise_for_status()
    return len(json.dumps(gpus))


def test_metric_windows_stop_at_their_per_gpu_byte_budget(server: EmbeddedServer) -> None:
    requests.put(f"{server.url}/api/jobs/wide", json={}, timeout=5)
    n = 2 + 2 * SAMPLE_GPU_BYTES // _post_many_gpus(server.url, "wide", 1)
    _post_many_gpus(server.url, "wide", n - 1)  # twice the budget, all within the last 60 s
    metrics = requests.get(f"{server.url}/api/jobs/wide/metrics", timeout=30)
    monitor = requests.get(f"{server.url}/api/jobs/wide/monitor", timeout=30)
    for answer, body in ((metrics, metrics.json()), (monitor, monitor.json())):
        assert answer.status_code == 200
        assert len(answer.content) <= SAMPLE_GPU_BYTES + 1_000_000
        samples = body["metrics"]["history"] if "job" in body else body["metrics"]
        assert len(samples) == n  # every sample's flat fields stay
        kept = [s for s in samples if "gpus" in s]
        assert 0 < len(kept) < n
        assert body["gpusOmitted"] == n - len(kept)
        assert samples[-len(kept) :] == kept  # the newest keep their GPUs, whole
        assert all(len(s["gpus"]) == 64 for s in kept)
        assert all(s["gpuUtilization"] == 50 for s in samples)
    assert monitor.json()["metrics"]["latest"]["gpus"][0]["index"] == 0


def test_a_scalars_answer_stops_at_its_point_budget(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many names of many points each: the answer holds at most SCALAR_ANSWER_POINTS
    points (each name downsampled to its share, its minimum and maximum kept)."""
    # A tenth of the budget keeps the test quick (75,000 points took seconds to post).
    budget = SCALAR_ANSWER_POINTS // 10
    monkeypatch.setattr(queries, "SCALAR_ANSWER_POINTS", budget)
    names, per_name = 25, 320  # 8,000 points: over the budget, each name under RAW_LIMIT
    assert names * per_name > budget and per_name <= queries.RAW_LIMIT
    requests.put(f"{server.url}/api/jobs/many", json={}, timeout=5)
    with requests.Session() as session:
        for first in range(0, per_name, 40):  # 40 steps x 25 names = 1,000 points a post
            body = {
                "workerId": "w",
                "progress": 1,
                "scalars": [
                    {"step": step, "values": {f"m{k}": float(step % 97 + k) for k in range(names)}}
                    for step in range(first, first + 40)
                ],
            }
            r = session.post(f"{server.url}/api/jobs/many/progress", json=body, timeout=30)
            assert r.status_code == 200, r.text
    body = requests.get(f"{server.url}/api/jobs/many/scalars", timeout=30).json()
    assert sorted(body["scalars"]) == sorted(f"m{k}" for k in range(names))
    assert sum(len(points) for points in body["scalars"].values()) <= budget
    assert body["downsampled"] is True
    for k in range(names):
        values = [p["value"] for p in body["scalars"][f"m{k}"]]
        assert (min(values), max(values)) == (float(k), float(96 + k))
    one = requests.get(f"{server.url}/api/jobs/many/scalars?names=m3", timeout=30).json()
    assert len(one["scalars"]["m3"]) == per_name and one["downsampled"] is False  # one name fits


@pytest.mark.parametrize(
    ("body", "jobs", "budget"),
    [
        # 4-byte characters: a quarter of their bytes in characters (a smaller
        # budget keeps the test quick: requests sends each as a 12-byte escape)
        ({"result": "\U0001f600" * 60_000}, 20, 1024 * 1024),
        # control characters: JSON writes each as \u0001, 6 bytes (a smaller budget
        # and fewer jobs, for the same reason: a page counted in characters would
        # hold 65 jobs, 6 MB)
        ({"status": "failed", "error": "\x01" * 16_000}, 70, 1024 * 1024),
    ],
    ids=["4-byte-characters", "control-characters"],
)
def test_a_list_page_budget_counts_the_bytes_sent(
    server: EmbeddedServer, body: dict[str, Any], jobs: int, budget: int
) -> None:
    with requests.Session() as session:
        for i in range(jobs):
            session.put(f"{server.url}/api/jobs/j-{i}", json={}, timeout=5)
            session.post(
                f"{server.url}/api/jobs/j-{i}/complete",
                json={"workerId": "w", **body},
                timeout=30,
            ).raise_for_status()
        seen: list[str] = []
        original = queries.LIST_PAGE_BYTES
        queries.LIST_PAGE_BYTES = budget
        try:
            while True:
                url = f"{server.url}/api/jobs?limit=1000&offset={len(seen)}"
                answer = session.get(url, timeout=30)
                page = answer.json()
                if not page["jobs"]:
                    break
                assert len(answer.content) <= budget or len(page["jobs"]) == 1
                seen += [job["id"] for job in page["jobs"]]
        finally:
            queries.LIST_PAGE_BYTES = original
    assert sorted(seen) == sorted(f"j-{i}" for i in range(jobs))
