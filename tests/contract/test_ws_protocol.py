"""The WebSocket at /ws: acks, event shapes, seq, replay with ``since``, errors,
several subscribers, and a subscriber that stops reading."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any

import pytest
import requests
import websocket

from jobwatch.server import EmbeddedServer
from tests.contract.helpers import check_answer, iso, js, strict_loads

PROGRESS_DATA = {
    "jobId",
    "status",
    "progress",
    "currentOperation",
    "metrics",
    "timeRemaining",
    "costSoFar",
    "timestamp",
}
COMPLETED_DATA = {"jobId", "status", "result", "completedAt", "costSoFar"}
LOG_FIELDS = {"id", "level", "timestamp", "message"}
METRICS = {
    "gpuUtilization": 87,
    "gpuMemoryUsed": 18000,
    "gpuMemoryTotal": 24000,
    "gpuTemperature": 72,
    "powerUsage": 350,
}


def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    ws.conn.settimeout(timeout)
    message: dict[str, Any] = strict_loads(ws.conn.recv())
    return message


def subscribe(ws: Any, job_id: str, since: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "subscribe:job", "subscriptionId": job_id}
    if since is not None:
        message["since"] = since
    ws.send(message)
    ack = recv(ws)
    assert ack["type"] == "subscribed", ack
    return ack


def post(api: Any, job_id: str, **body: Any) -> dict[str, Any]:
    r = api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", **body})
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = js(r)
    return reply


def complete(api: Any, job_id: str, **body: Any) -> dict[str, Any]:
    r = api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w", **body})
    assert r.status_code == 200, r.text
    job: dict[str, Any] = js(r)["job"]
    return job


def all_logs(api: Any, job_id: str) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = js(api.get(f"/api/jobs/{job_id}/logs?limit=1000"))["logs"]
    return logs


def assert_quiet(ws: Any, api: Any) -> None:
    """Nothing is queued for ``ws``: a marker subscription's ack comes next.

    Everything sent to one connection leaves in order, and an event is queued
    before its HTTP request is answered, so an event still due would come first.
    """
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/jobs", json={"id": marker}).status_code == 201
    ws.send({"type": "subscribe:job", "subscriptionId": marker})
    message = recv(ws)
    assert message == {"type": "subscribed", "subscriptionId": marker, "seq": 0}, message
    ws.send({"type": "unsubscribe:job", "subscriptionId": marker})
    assert recv(ws)["type"] == "unsubscribed"


PRICE = 3.6
"""Per hour, for the ``job`` fixture."""


# -- acks and shapes ---------------------------------------------------------------


def test_subscribe_ack_carries_the_seq(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": job})
    assert recv(ws) == {"type": "subscribed", "subscriptionId": job, "seq": 0}
    post(api, job, progress=5, logLines=[{"level": "info", "message": "x"}])
    assert [m["seq"] for m in (recv(ws), recv(ws))] == [1, 2]

    other = ws_factory()
    other.send({"type": "subscribe:job", "subscriptionId": job})
    assert recv(other) == {"type": "subscribed", "subscriptionId": job, "seq": 2}
    assert_quiet(other, api)  # no replay without `since`


def test_progress_event_shape(api: Any, clock: Any, ws_factory: Any, job: str) -> None:
    post(api, job, progress=0)
    clock.advance(90)
    ws = ws_factory()
    subscribe(ws, job)
    reply = post(api, job, progress=45, currentOperation="Training epoch 5/10", metrics=METRICS)
    message = recv(ws)
    assert set(message) == {"type", "jobId", "seq", "data"}
    assert (message["type"], message["jobId"], message["seq"]) == ("JOB_PROGRESS", job, 2)
    data = message["data"]
    assert set(data) >= PROGRESS_DATA
    assert data["jobId"] == job
    assert data["status"] == "running"
    assert data["progress"] == 45
    assert data["currentOperation"] == "Training epoch 5/10"
    assert {k: data["metrics"][k] for k in METRICS} == METRICS
    assert data["timeRemaining"] == pytest.approx(110, abs=1e-6)
    assert data["costSoFar"] == pytest.approx(0.09, abs=1e-6)
    assert data["timestamp"] == iso(clock())
    assert (reply["timeRemaining"], reply["costSoFar"]) == (
        data["timeRemaining"],
        data["costSoFar"],
    )
    assert_quiet(ws, api)  # no logs event without log lines


def test_logs_event_shape(api: Any, clock: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    subscribe(ws, job)
    lines = [
        {"level": "info", "message": "Epoch 5/10 completed"},
        {"level": "WARNING", "message": "GPU temperature high: 82°C"},
        {"level": "error", "message": "😱 NaN loss"},
    ]
    post(api, job, progress=45, logLines=lines)
    assert recv(ws)["type"] == "JOB_PROGRESS"
    message = recv(ws)
    assert set(message) == {"type", "jobId", "seq", "data"}
    assert (message["type"], message["jobId"], message["seq"]) == ("JOB_LOGS", job, 2)
    assert set(message["data"]) >= {"jobId", "logs"}
    assert message["data"]["jobId"] == job
    logs = message["data"]["logs"]
    for line in logs:
        assert set(line) == LOG_FIELDS
        assert line["timestamp"] == iso(clock())
    assert [(x["level"], x["message"]) for x in logs] == [
        ("info", "Epoch 5/10 completed"),
        ("warning", "GPU temperature high: 82°C"),
        ("error", "😱 NaN loss"),
    ]
    assert logs == all_logs(api, job)  # same ids as /logs


def test_completed_event_shape(api: Any, clock: Any, ws_factory: Any, job: str) -> None:
    post(api, job, progress=0)
    clock.advance(1800)
    ws = ws_factory()
    subscribe(ws, job)
    result = {"accuracy": 0.985, "checkpoint": "s3://bucket/model.pt"}
    completed = complete(api, job, result=result)
    message = recv(ws)
    assert set(message) == {"type", "jobId", "seq", "data"}
    assert (message["type"], message["jobId"], message["seq"]) == ("JOB_COMPLETED", job, 2)
    data = message["data"]
    assert set(data) >= COMPLETED_DATA
    assert data["jobId"] == job
    assert data["status"] == "completed"
    assert data["result"] == result
    assert data["completedAt"] == iso(clock()) == completed["completedAt"]
    assert data["costSoFar"] == pytest.approx(1.8, abs=1e-6)


def test_failed_completion_event(api: Any, ws_factory: Any, job: str) -> None:
    post(api, job, progress=3)
    ws = ws_factory()
    subscribe(ws, job)
    complete(api, job, status="failed", error="CUDA out of memory")
    alert = recv(ws)  # an extension: the failure's alert comes just before the completion
    assert (alert["type"], alert["data"]["alert"]["source"]) == ("JOB_ALERT", "failed")
    completed = recv(ws)
    assert completed["type"] == "JOB_COMPLETED" and completed["seq"] == alert["seq"] + 1
    data = completed["data"]
    assert (data["status"], data["result"]) == ("failed", None)


def test_seq_grows_by_one_per_event(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    subscribe(ws, job)
    line = [{"level": "info", "message": "m"}]
    replies = [
        post(api, job, progress=1),
        post(api, job, progress=2, logLines=line),
        post(api, job, progress=3, metrics=METRICS, logLines=line * 3),
        post(api, job, progress=3),  # unchanged progress is still an event
        post(api, job, progress=4, logLines=[]),
    ]
    completed = complete(api, job)
    messages = [recv(ws) for _ in range(8)]
    assert [m["seq"] for m in messages] == list(range(1, 9))
    assert [m["type"] for m in messages] == [
        "JOB_PROGRESS",
        "JOB_PROGRESS",
        "JOB_LOGS",
        "JOB_PROGRESS",
        "JOB_LOGS",
        "JOB_PROGRESS",
        "JOB_PROGRESS",
        "JOB_COMPLETED",
    ]
    assert [r["seq"] for r in replies] == [1, 3, 5, 6, 7]  # a reply's seq is its last event's
    assert completed["seq"] == 8
    assert js(api.get(f"/api/jobs/{job}/monitor"))["seq"] == 8
    assert_quiet(ws, api)


def test_finished_job_sends_completed_right_after_the_ack(
    api: Any, ws_factory: Any, job: str
) -> None:
    post(api, job, progress=50)
    complete(api, job, result={"ok": True})
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": job})
    assert recv(ws) == {"type": "subscribed", "subscriptionId": job, "seq": 2}
    message = recv(ws)
    assert (message["type"], message["seq"]) == ("JOB_COMPLETED", 2)
    assert (message["data"]["status"], message["data"]["result"]) == ("completed", {"ok": True})
    assert_quiet(ws, api)


def test_finished_job_sends_completed_even_when_since_covers_it(
    api: Any, ws_factory: Any, job: str
) -> None:
    """CONTRACT.md: "A finished job sends its JOB_COMPLETED right after the ack",
    also to a subscriber resuming at its seq: the completion, with its own seq
    (a client that keeps the last seq knows it has it), ends every subscription."""
    post(api, job, progress=50)
    complete(api, job, result={"ok": True})
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": job, "since": 2})
    assert recv(ws) == {"type": "subscribed", "subscriptionId": job, "seq": 2}
    message = recv(ws)
    assert (message["type"], message["seq"]) == ("JOB_COMPLETED", 2)
    assert_quiet(ws, api)


def replayed(ws: Any, api: Any, job_id: str, since: int) -> tuple[dict[str, Any], list[Any]]:
    """The ack of a subscription with ``since`` and every message replayed after it."""
    ack = subscribe(ws, job_id, since=since)
    messages = []
    while True:
        try:
            messages.append(recv(ws, timeout=0.5))
        except websocket.WebSocketTimeoutException:
            return ack, messages


@pytest.mark.parametrize("finished", [False, True])
def test_since_beyond_the_jobs_seq_is_a_resync_from_the_start(
    api: Any, ws_factory: Any, job: str, finished: bool
) -> None:
    """A client holding seq 1007 of a job at 3 (the server's database was replaced
    or restored from an older backup) holds another history: the ack's seq, below
    its since, says so, and it gets the whole job as a subscriber with since 0 does,
    then the live events from the ack's seq on."""
    post(api, job, progress=10, logLines=[{"level": "info", "message": "a"}])
    post(api, job, progress=20)
    if finished:
        complete(api, job, result={"ok": True})
    seq = js(api.get(f"/api/jobs/{job}/monitor"))["seq"]
    ack, resync = replayed(ws_factory(), api, job, seq + 1000)
    assert ack["seq"] == seq
    from_start = replayed(ws_factory(), api, job, 0)[1]
    assert resync == from_start
    assert [m["type"] for m in resync] == ["JOB_LOGS", "JOB_PROGRESS"] + (
        ["JOB_COMPLETED"] if finished else []
    )
    if not finished:
        ws = ws_factory()
        subscribe(ws, job, since=seq + 1000)
        [recv(ws) for _ in resync]
        post(api, job, progress=30)
        assert recv(ws)["seq"] == seq + 1


def test_several_jobs_on_one_socket(api: Any, ws_factory: Any, job: str) -> None:
    other = job + "-b"
    assert api.post("/api/jobs", json={"id": other}).status_code == 201
    ws = ws_factory()
    subscribe(ws, job)
    subscribe(ws, other)
    post(api, job, progress=1)
    post(api, other, progress=2)
    post(api, job, progress=3)
    got = [(m["jobId"], m["seq"], m["data"]["progress"]) for m in (recv(ws) for _ in range(3))]
    assert got == [(job, 1, 1), (other, 1, 2), (job, 2, 3)]


# -- unsubscribe -------------------------------------------------------------------


def test_unsubscribe_stops_the_events(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    subscribe(ws, job)
    post(api, job, progress=1)
    assert recv(ws)["type"] == "JOB_PROGRESS"
    ws.send({"type": "unsubscribe:job", "subscriptionId": job})
    assert recv(ws) == {"type": "unsubscribed", "subscriptionId": job}
    post(api, job, progress=2, logLines=[{"level": "info", "message": "unseen"}])
    complete(api, job)
    assert_quiet(ws, api)

    subscribe(ws, job)  # and subscribing again works
    assert recv(ws)["type"] == "JOB_COMPLETED"


# -- bad messages ------------------------------------------------------------------


def _assert_error(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "error", message
    error: dict[str, Any] = message["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("{", "invalid_json"),
        ('{"type": "subscribe:job", "subscriptionId": "x",}', "invalid_json"),
        ("", "invalid_json"),
        ('{"type": "nope", "subscriptionId": "x"}', None),
        ('{"type": "SUBSCRIBE:JOB", "subscriptionId": "x"}', None),
        ('{"subscriptionId": "x"}', None),
        ("[]", None),
        ("42", None),
        ("null", None),
        ('{"type": "subscribe:job"}', None),
        ('{"type": "subscribe:job", "subscriptionId": 5}', None),
        ('{"type": "subscribe:job", "subscriptionId": "x", "since": -1}', None),
        ('{"type": "subscribe:job", "subscriptionId": "x", "since": "3"}', None),
        ('{"type": "unsubscribe:job"}', None),
    ],
)
def test_bad_message_gets_an_error_and_the_socket_stays_open(
    api: Any, ws_factory: Any, job: str, raw: str, code: str | None
) -> None:
    ws = ws_factory()
    ws.send(raw)
    error = _assert_error(recv(ws))
    if code is not None:
        assert error["code"] == code
    subscribe(ws, job)
    post(api, job, progress=7)
    assert recv(ws)["data"]["progress"] == 7


def test_unknown_type_names_the_allowed_types(ws_factory: Any) -> None:
    ws = ws_factory()
    ws.send({"type": "subscribe", "subscriptionId": "x"})
    error = _assert_error(recv(ws))
    assert "subscribe:job" in error["message"]


@pytest.mark.parametrize("unknown", ["no-such-job", "a/b", "x" * 128, "bad id"])
def test_unknown_job_gets_an_error_and_the_socket_stays_open(
    api: Any, ws_factory: Any, job: str, unknown: str
) -> None:
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": unknown})
    error = _assert_error(recv(ws))
    assert error["code"] == "job_not_found"
    subscribe(ws, job)
    post(api, job, progress=8)
    assert recv(ws)["data"]["progress"] == 8


def test_error_for_one_subscription_leaves_the_others(api: Any, ws_factory: Any, job: str) -> None:
    ws = ws_factory()
    subscribe(ws, job)
    ws.send("garbage")
    _assert_error(recv(ws))
    ws.send({"type": "subscribe:job", "subscriptionId": "no-such-job"})
    _assert_error(recv(ws))
    post(api, job, progress=9)
    assert recv(ws)["data"]["progress"] == 9


# -- `since` replay ----------------------------------------------------------------


def _log_lines(*messages: str) -> list[dict[str, str]]:
    return [{"level": "info", "message": m} for m in messages]


def test_since_replays_exactly_what_was_missed_then_goes_live(
    api: Any, ws_factory: Any, job: str
) -> None:
    post(api, job, progress=10, logLines=_log_lines("a1", "a2"))  # seq 1, 2
    monitor = js(api.get(f"/api/jobs/{job}/monitor"))
    assert monitor["seq"] == 2
    assert [x["message"] for x in monitor["logs"]] == ["a1", "a2"]

    post(api, job, progress=20)  # 3
    post(api, job, progress=30, logLines=_log_lines("b1"))  # 4, 5
    post(api, job, progress=40, metrics=METRICS, logLines=_log_lines("c1", "c2"))  # 6, 7

    ws = ws_factory()
    ack = subscribe(ws, job, since=monitor["seq"])
    assert ack == {"type": "subscribed", "subscriptionId": job, "seq": 7}
    replay = [recv(ws) for _ in range(3)]
    seqs = [m["seq"] for m in replay]
    assert seqs == sorted(set(seqs)), "replay must be in seq order, without duplicates"
    assert all(monitor["seq"] < s <= ack["seq"] for s in seqs)
    progress_events = [m for m in replay if m["type"] == "JOB_PROGRESS"]
    assert len(progress_events) == 1  # only the newest progress
    newest = progress_events[0]
    assert newest["seq"] == 6
    assert newest["data"]["progress"] == 40
    assert {k: newest["data"]["metrics"][k] for k in METRICS} == METRICS
    assert set(newest["data"]) >= PROGRESS_DATA
    replayed_logs = [x for m in replay if m["type"] == "JOB_LOGS" for x in m["data"]["logs"]]
    assert [x["message"] for x in replayed_logs] == ["b1", "c1", "c2"]
    for line in replayed_logs:
        assert set(line) == LOG_FIELDS

    # then live, continuing the sequence with no gap
    post(api, job, progress=50, logLines=_log_lines("d1"))
    complete(api, job, result={"done": True})
    live = [recv(ws) for _ in range(3)]
    assert [(m["type"], m["seq"]) for m in live] == [
        ("JOB_PROGRESS", 8),
        ("JOB_LOGS", 9),
        ("JOB_COMPLETED", 10),
    ]
    assert_quiet(ws, api)

    # the viewer's logs: /monitor's, then the replay, then live: all, once, in order
    seen = monitor["logs"] + replayed_logs + live[1]["data"]["logs"]
    assert seen == all_logs(api, job)


def test_since_replays_the_completion(api: Any, ws_factory: Any, job: str) -> None:
    post(api, job, progress=10)  # 1
    since = js(api.get(f"/api/jobs/{job}/monitor"))["seq"]
    post(api, job, progress=99, logLines=_log_lines("last words"))  # 2, 3
    complete(api, job, result=[1, 2, 3])  # 4
    ws = ws_factory()
    assert subscribe(ws, job, since=since)["seq"] == 4
    replay = [recv(ws) for _ in range(3)]
    assert [(m["type"], m["seq"]) for m in replay] == [
        ("JOB_PROGRESS", 2),
        ("JOB_LOGS", 3),
        ("JOB_COMPLETED", 4),
    ]
    assert replay[2]["data"]["result"] == [1, 2, 3]
    assert_quiet(ws, api)  # one completion, not two


def test_since_zero_replays_the_whole_job(api: Any, ws_factory: Any, job: str) -> None:
    for i in range(5):
        post(api, job, progress=10 * (i + 1), logLines=_log_lines(f"l{i}a", f"l{i}b"))
    complete(api, job)
    ws = ws_factory()
    assert subscribe(ws, job, since=0)["seq"] == 11
    replay = [recv(ws) for _ in range(7)]
    assert [m["type"] for m in replay].count("JOB_PROGRESS") == 1
    assert replay[-1]["type"] == "JOB_COMPLETED"
    logs = [x for m in replay if m["type"] == "JOB_LOGS" for x in m["data"]["logs"]]
    assert logs == all_logs(api, job)
    seqs = [m["seq"] for m in replay]
    assert seqs == sorted(set(seqs))
    assert_quiet(ws, api)


def test_since_replay_of_a_long_backlog_keeps_seqs_unique(
    api: Any, ws_factory: Any, job: str
) -> None:
    """Two updates of 600 log lines each, replayed from 0: the replay is read from
    storage in pages, but a client that drops any event whose seq it has already
    seen (as a resuming client must) still gets all 1,200 lines."""
    for k in range(2):
        lines = [{"level": "info", "message": f"{k}-{i}"} for i in range(600)]
        post(api, job, progress=10 + k, logLines=lines)
    ws = ws_factory()
    assert subscribe(ws, job, since=0)["seq"] == 4
    messages = []
    lines_seen = 0
    while lines_seen < 1200:
        message = recv(ws)
        messages.append(message)
        lines_seen += len(message["data"].get("logs", []))
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(set(seqs)), f"seq repeated or out of order: {seqs}"
    last, kept = 0, []
    for m in messages:  # a seq-deduplicating client
        if m["seq"] > last:
            last = m["seq"]
            kept.extend(x["message"] for x in m["data"].get("logs", []))
    assert kept == [f"{k}-{i}" for k in range(2) for i in range(600)]
    assert_quiet(ws, api)


def test_since_equal_to_the_current_seq_replays_nothing(
    api: Any, ws_factory: Any, job: str
) -> None:
    post(api, job, progress=10, logLines=_log_lines("x"))
    ws = ws_factory()
    assert subscribe(ws, job, since=2)["seq"] == 2
    assert_quiet(ws, api)
    post(api, job, progress=11)
    assert recv(ws)["seq"] == 3


def test_subscribing_with_since_during_a_run_misses_nothing(
    api: Any, ws_factory: Any, job: str, server: EmbeddedServer
) -> None:
    """A worker posts 300 updates (one log line each) while a viewer reads /monitor
    and subscribes with its seq: every later line arrives exactly once, in order."""
    n = 300
    started = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        session = requests.Session()
        try:
            for i in range(n):
                body = {
                    "workerId": "w",
                    "progress": (i + 1) / 3,
                    "logLines": [{"level": "info", "message": f"line {i}"}],
                }
                r = session.post(f"{server.url}/api/jobs/{job}/progress", json=body, timeout=10)
                assert r.status_code == 200, r.text
                if i == 40:
                    started.set()
        except BaseException as exc:
            errors.append(exc)
            started.set()
        finally:
            session.close()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert started.wait(10)
    monitor = js(api.get(f"/api/jobs/{job}/monitor"))
    ws = ws_factory()
    ack = subscribe(ws, job, since=monitor["seq"])
    assert ack["seq"] >= monitor["seq"]
    messages = []
    while not messages or messages[-1]["seq"] < 2 * n:
        messages.append(recv(ws, timeout=10))
    thread.join(30)
    assert not errors, errors

    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(set(seqs)), "no duplicates, in order"
    live = [s for s in seqs if s > ack["seq"]]
    assert live == list(range(ack["seq"] + 1, 2 * n + 1)), "no gap after the ack"
    received = [
        x["message"] for m in messages if m["type"] == "JOB_LOGS" for x in m["data"]["logs"]
    ]
    first = int(monitor["logs"][-1]["message"].split()[1]) + 1
    assert received == [f"line {i}" for i in range(first, n)]
    assert messages[-1]["type"] == "JOB_LOGS"
    assert [m for m in messages if m["type"] == "JOB_PROGRESS"][-1]["data"]["progress"] == 100


# -- several subscribers -----------------------------------------------------------


def test_two_subscribers_both_get_everything(api: Any, ws_factory: Any, job: str) -> None:
    first, second = ws_factory(), ws_factory()
    subscribe(first, job)
    subscribe(second, job)
    for i in range(30):
        post(api, job, progress=i + 1, logLines=_log_lines(f"m{i}") if i % 2 else None)
    complete(api, job)
    expected = 30 + 15 + 1
    got_first = [recv(first) for _ in range(expected)]
    got_second = [recv(second) for _ in range(expected)]
    assert got_first == got_second
    assert [m["seq"] for m in got_first] == list(range(1, expected + 1))
    assert got_first[-1]["type"] == "JOB_COMPLETED"
    assert_quiet(first, api)
    assert_quiet(second, api)


def test_a_subscriber_that_stops_reading_does_not_stall_the_others() -> None:
    """1,000 updates (the first 16 with about 0.8 MB of log lines each, more than the
    kernel buffers hold) while one subscriber never reads: the healthy subscriber gets
    all 1,000 progress events in order, every request is answered, and the stuck one
    is disconnected (close 1008 with a reason, or the connection is cut)."""
    srv = EmbeddedServer(config={"DATABASE": ":memory:", "WS_QUEUE_SIZE": 256})
    session = requests.Session()
    session.hooks["response"].append(check_answer)
    stuck = healthy = None
    try:
        job = "stuck-test"
        assert session.post(f"{srv.url}/api/jobs", json={"id": job}).status_code == 201
        stuck = websocket.create_connection(
            srv.ws_url, timeout=5, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
        )
        stuck.send(json.dumps({"type": "subscribe:job", "subscriptionId": job}))
        healthy = websocket.create_connection(srv.ws_url, timeout=5)
        healthy.send(json.dumps({"type": "subscribe:job", "subscriptionId": job}))
        assert strict_loads(healthy.recv())["type"] == "subscribed"

        progress_seen: list[float] = []
        reader_error: list[BaseException] = []

        def read_healthy() -> None:
            assert healthy is not None
            try:
                while len(progress_seen) < 1000:
                    healthy.settimeout(20)
                    opcode, data = healthy.recv_data(control_frame=True)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        raise AssertionError(f"the healthy subscriber was closed: {data!r}")
                    if opcode != websocket.ABNF.OPCODE_TEXT:
                        continue  # ping or pong
                    message = strict_loads(data)
                    if message["type"] == "JOB_PROGRESS":
                        progress_seen.append(message["data"]["progress"])
            except BaseException as exc:
                reader_error.append(exc)

        reader = threading.Thread(target=read_healthy, daemon=True)
        reader.start()

        big = [{"level": "info", "message": "y" * 12_000}] * 64
        for i in range(1000):
            body: dict[str, Any] = {"workerId": "w", "progress": (i + 1) / 10}
            if i < 16:
                body["logLines"] = big
            r = session.post(f"{srv.url}/api/jobs/{job}/progress", json=body, timeout=10)
            assert r.status_code == 200, r.text
        reader.join(30)
        assert not reader_error, reader_error
        assert progress_seen == [(i + 1) / 10 for i in range(1000)]

        healthy.close()

        def drain_until_closed(silence: float) -> bool:
            """Read what the kernel held for the stuck client; True once the server
            closed it (a 1008 close frame with a reason, or the connection cut)."""
            assert stuck is not None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    stuck.settimeout(silence)
                    opcode, data = stuck.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    return False  # nothing more is coming, and still open
                except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                    return True
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    assert close_code == 1008, close_code
                    assert data[2:], "a close reason"
                    return True
            return False

        if not drain_until_closed(silence=8):
            # this machine's socket buffers swallowed the whole run: overflow them
            for _ in range(64):
                body = {"workerId": "w", "progress": 100, "logLines": big}
                r = session.post(f"{srv.url}/api/jobs/{job}/progress", json=body, timeout=10)
                assert r.status_code == 200, r.text
            assert drain_until_closed(silence=8), "the stuck subscriber was never disconnected"

        # and the server forgot both sessions
        deadline = time.monotonic() + 10
        while srv.services.broker.subscriber_count(job) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.services.broker.subscriber_count(job) == 0
    finally:
        for conn in (stuck, healthy):
            if conn is not None:
                conn.close()
        session.close()
        srv.stop()
