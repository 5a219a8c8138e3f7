"""Client: REST calls map to the exception tree; subscribe() resumes across restarts."""

from __future__ import annotations

import http.server
import threading
import time
from typing import Any

import pytest

from jobwatch import errors
from jobwatch.client.rest import Client
from jobwatch.client.subscription import Backoff
from jobwatch.server import EmbeddedServer
from tests.conftest import free_port, wait_for


@pytest.fixture
def client(server):
    with Client(server.url, timeout=5) as c:
        yield c


def collect(subscription, into: list[dict[str, Any]]) -> threading.Thread:
    def run() -> None:
        for event in subscription:
            into.append(event)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_rest_round_trip(client):
    job = client.create_job(name="resnet", price_per_hour=2.0)
    assert client.get_job(job["id"])["name"] == "resnet"
    reply = client.report_progress(
        job["id"],
        "w1",
        45,
        "Training epoch 5/10",
        metrics={"gpuUtilization": 87},
        logs=[{"level": "info", "message": "hello"}],
    )
    assert reply["success"] is True and reply["progress"] == 45
    assert client.logs(job["id"])["logs"][0]["message"] == "hello"
    assert client.metrics(job["id"])[0]["gpuUtilization"] == 87
    assert client.monitor(job["id"])["job"]["currentOperation"] == "Training epoch 5/10"
    done = client.complete_job(job["id"], "w1", result={"accuracy": 0.97})
    assert done["status"] == "completed" and done["result"] == {"accuracy": 0.97}
    assert client.list_jobs(status="completed")["total"] == 1
    assert client.ensure_job("new-one", name="n")["id"] == "new-one"


def test_error_answers_become_the_exception_tree(client):
    with pytest.raises(errors.JobNotFound) as missing:
        client.get_job("nope")
    assert missing.value.status == 404 and missing.value.code == "job_not_found"
    job = client.create_job(job_id="bound")
    client.report_progress("bound", "w1", 1)
    with pytest.raises(errors.WorkerMismatch):
        client.report_progress("bound", "w2", 2)
    with pytest.raises(errors.ValidationError) as bad:
        client.report_progress(job["id"], "w1", 150)
    assert bad.value.details == [
        {"field": "progress", "message": "input should be less than or equal to 100"}
    ]
    with pytest.raises(errors.Conflict):
        client.create_job(job_id="bound")
    client.complete_job("bound", "w1")
    with pytest.raises(errors.JobFinished):
        client.report_progress("bound", "w1", 3)


def test_unreachable_and_foreign_servers_raise_connection_error():
    with (
        Client(f"http://127.0.0.1:{free_port()}", timeout=2) as c,
        pytest.raises(errors.ConnectionError),
    ):
        c.health()

    class Plain(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>not jobwatch</html>")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with (
            Client(f"http://127.0.0.1:{httpd.server_port}") as c,
            pytest.raises(errors.ConnectionError, match="not JSON"),
        ):
            c.health()
    finally:
        httpd.shutdown()


def test_bad_arguments_are_refused_up_front():
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8765")
    with pytest.raises(ValueError, match="timeout"):
        Client("http://x", timeout=0)


def test_a_body_already_encoded_is_sent_as_it_is(client):
    # a reporter's composed request: bytes of JSON, posted without decoding them again
    client.create_job(job_id="raw")
    data = b'{"workerId":"w1","progress":12.5,"logLines":[{"level":"info","message":"caf\\u00e9"}]}'
    reply = client.request("POST", "/api/jobs/raw/progress", json_data=data)
    assert reply["progress"] == 12.5
    assert client.logs("raw")["logs"][0]["message"] == "café"
    with pytest.raises(errors.ValidationError):  # answered like any other body
        client.request("POST", "/api/jobs/raw/progress", json_data=b'{"progress":12.5}')
    with pytest.raises(ValueError, match="not both"):
        client.request("POST", "/api/jobs/raw/progress", json_body={}, json_data=b"{}")


def test_keys_json_would_merge_are_refused_before_sending(client):
    job = client.ensure_job("keys", config={"lr": 0.1})
    with pytest.raises(ValueError, match=r"the key 1 \(int\) in the request body\['config'\]"):
        client.ensure_job("keys", config={1: "a", "1": "b"})
    with pytest.raises(ValueError, match="not a string"):
        client.complete_job(job["id"], "w", result={"per_class": {0: 0.9, "0": 0.8}})
    assert client.get_job(job["id"])["config"] == {"lr": 0.1}
    assert client.get_job(job["id"])["status"] != "completed"


def test_subscribe_delivers_in_order_and_ends_with_completion(client):
    job = client.create_job(name="x")
    events: list[dict[str, Any]] = []
    subscription = client.subscribe(job["id"])
    thread = collect(subscription, events)
    wait_for(lambda: subscription.state == "live")
    for i in range(1, 6):
        client.report_progress(job["id"], "w", i * 10, logs=[{"level": "info", "message": f"m{i}"}])
    client.complete_job(job["id"], "w", result=1)
    thread.join(10)
    assert not thread.is_alive()
    assert [e["seq"] for e in events] == list(range(1, 12))
    assert events[-1]["type"] == "JOB_COMPLETED"
    assert subscription.state == "closed"


def test_subscribe_since_monitor_misses_nothing(client):
    job = client.create_job()
    client.report_progress(job["id"], "w", 10, logs=[{"level": "info", "message": "before"}])
    seq = client.monitor(job["id"])["seq"]
    client.report_progress(job["id"], "w", 20, logs=[{"level": "info", "message": "between"}])
    events: list[dict[str, Any]] = []
    subscription = client.subscribe(job["id"], since=seq)
    thread = collect(subscription, events)
    client.complete_job(job["id"], "w")
    thread.join(10)
    messages = [
        line["message"] for e in events if e["type"] == "JOB_LOGS" for line in e["data"]["logs"]
    ]
    assert messages == ["between"]
    assert [e["type"] for e in events] == ["JOB_PROGRESS", "JOB_LOGS", "JOB_COMPLETED"]


def test_a_since_beyond_the_jobs_seq_takes_the_servers_history(client):
    """The server answers a since it never reached (its database was replaced) with
    the job from its start; the subscription delivers it and the live events after,
    rather than dropping every seq up to its old since as seen."""
    job = client.create_job()
    client.report_progress(job["id"], "w", 10, logs=[{"level": "info", "message": "a"}])
    seq = client.monitor(job["id"])["seq"]
    events: list[dict[str, Any]] = []
    subscription = client.subscribe(job["id"], since=seq + 1000)
    thread = collect(subscription, events)
    wait_for(lambda: len(events) == 2, what="the resync")
    client.report_progress(job["id"], "w", 20)
    client.complete_job(job["id"], "w")
    thread.join(10)
    assert [(e["type"], e["seq"]) for e in events] == [
        ("JOB_PROGRESS", 1),
        ("JOB_LOGS", 2),
        ("JOB_PROGRESS", 3),
        ("JOB_COMPLETED", 4),
    ]
    assert subscription.last_seq == 4


def test_subscribe_to_a_finished_job_ends_at_once(client):
    job = client.create_job()
    client.complete_job(job["id"], "w", status="failed", error="boom")
    events = list(client.subscribe(job["id"]))
    assert len(events) == 1
    assert events[0]["data"]["status"] == "failed" and events[0]["data"]["error"] == "boom"


def test_subscribe_unknown_job_raises(client):
    with pytest.raises(errors.JobNotFound):
        next(iter(client.subscribe("no-such-job")))


def test_close_from_another_thread_ends_iteration(client):
    job = client.create_job()
    subscription = client.subscribe(job["id"])
    events: list[dict[str, Any]] = []
    thread = collect(subscription, events)
    wait_for(lambda: subscription.state == "live")
    started = time.monotonic()
    subscription.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert subscription.state == "closed"


def test_subscribe_resumes_across_a_server_restart_without_gap_or_duplicate(tmp_path):
    port = free_port()
    config = {"DATABASE": str(tmp_path / "jobs.db")}
    first = EmbeddedServer(port=port, config=config)
    worker = Client(first.url, timeout=5)
    job = worker.create_job(job_id="restart")
    events: list[dict[str, Any]] = []
    states: list[str] = []
    subscription = Client(first.url).subscribe("restart", on_state=states.append)
    subscription.backoff = Backoff(base=0.05, cap=0.5)
    thread = collect(subscription, events)
    wait_for(lambda: subscription.state == "live")

    def post(i: int) -> None:
        worker.report_progress(job["id"], "w", i, logs=[{"level": "info", "message": f"line {i}"}])

    for i in range(1, 21):
        post(i)
    wait_for(lambda: len(events) >= 40)
    first.stop()
    wait_for(lambda: subscription.state == "reconnecting")
    second = EmbeddedServer(port=port, config=config)
    try:
        for i in range(21, 41):  # some land before the subscriber is back
            post(i)
        worker.complete_job(job["id"], "w", result="ok")
        thread.join(15)
        assert not thread.is_alive()
    finally:
        second.stop()
    lines = [
        line["message"] for e in events if e["type"] == "JOB_LOGS" for line in e["data"]["logs"]
    ]
    assert lines == [f"line {i}" for i in range(1, 41)]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "events repeated or out of order"
    progress = [e["data"]["progress"] for e in events if e["type"] == "JOB_PROGRESS"]
    assert progress[-1] == 40
    assert events[-1]["type"] == "JOB_COMPLETED"
    assert subscription.reconnects >= 1
    assert states[:2] == ["live", "reconnecting"] and states[-1] == "closed"


def test_backoff_is_exponential_with_full_jitter():
    backoff = Backoff(base=1.0, cap=8.0)
    ceilings = []
    for _ in range(6):
        before = backoff.failures
        delay = backoff.next_delay()
        ceiling = min(8.0, 2.0**before)
        assert 0 <= delay <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [1, 2, 4, 8, 8, 8]
    samples = [Backoff(base=1.0, cap=8.0) for _ in range(50)]
    for b in samples:
        for _ in range(3):
            b.next_delay()
    spread = {round(b.next_delay(), 3) for b in samples}
    assert len(spread) > 40, "no jitter: reconnects would come in lockstep"
    backoff.reset()
    assert backoff.failures == 0
    with pytest.raises(ValueError):
        Backoff(base=0)


def test_workers_and_one_ranks_logs(client):
    client.create_job(job_id="ddp")
    for rank in (0, 1):
        client.report_progress(
            "ddp",
            f"n{rank}/{rank}",
            10.0 * (rank + 1),
            rank=rank,
            world_size=2,
            node=f"n{rank}",
            logs=[{"level": "info", "message": f"from {rank}"}],
        )
    answer = client.workers("ddp")
    assert answer["worldSize"] == 2
    assert [(w["rank"], w["node"], w["progress"]) for w in answer["workers"]] == [
        (0, "n0", 10.0),
        (1, "n1", 20.0),
    ]
    page = client.logs("ddp", rank=1)
    assert [line["message"] for line in page["logs"]] == ["from 1"] and page["total"] == 1
    assert client.logs("ddp", node="n0")["logs"][0]["rank"] == 0
    with pytest.raises(errors.JobNotFound):
        client.workers("nope")


def test_a_subscription_shows_one_ranks_lines_and_changes_its_view_live(client):
    client.create_job(job_id="view")

    def post(rank: int, text: str) -> None:
        client.report_progress(
            "view",
            f"n{rank}/{rank}",
            10,
            rank=rank,
            world_size=2,
            node=f"n{rank}",
            logs=[{"level": "info", "message": text}],
        )

    events: list[dict[str, Any]] = []
    sub = client.subscribe("view", since=0, log_rank=0, progress="changes")
    reader = collect(sub, events)
    try:
        post(0, "a0")
        post(1, "a1")
        wait_for(lambda: any(e["type"] == "JOB_LOGS" for e in events))
        sub.change_view(log_rank=1, progress="changes")
        post(0, "b0")
        post(1, "b1")
        wait_for(lambda: "b1" in str(events))
    finally:
        sub.close()
        reader.join(5)
    shown = [
        line["message"] for e in events if e["type"] == "JOB_LOGS" for line in e["data"]["logs"]
    ]
    assert shown[0] == "a0" and shown[-1] == "b1"
    assert "b0" not in shown  # rank 0's line after the change
    assert len({e["seq"] for e in events}) == len(events)  # nothing twice
    with pytest.raises(ValueError, match="progress must be"):
        sub.change_view(progress="some")
