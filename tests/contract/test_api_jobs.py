"""Jobs: create, idempotent PUT, list, get, complete, and the worker binding."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock
from tests.contract.helpers import check_answer, error_of, fields, iso, js, snapshot, strict_loads

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
CONTRACT_JOB_FIELDS = {
    "id",
    "name",
    "status",
    "progress",
    "currentOperation",
    "workerId",
    "pricePerHour",
    "currency",
    "providerId",
    "createdAt",
    "startedAt",
    "updatedAt",
    "completedAt",
    "result",
    "seq",
}


def contract_fields(job: dict[str, Any]) -> dict[str, Any]:
    assert set(job) >= CONTRACT_JOB_FIELDS, set(job) ^ CONTRACT_JOB_FIELDS
    return {k: job[k] for k in CONTRACT_JOB_FIELDS}


def progress(api: Any, job_id: str, worker: str = "w1", **body: Any) -> requests.Response:
    return api.post(f"/api/jobs/{job_id}/progress", json={"workerId": worker, **body})


def get_job(api: Any, job_id: str) -> dict[str, Any]:
    r = api.get(f"/api/jobs/{job_id}")
    assert r.status_code == 200, r.text
    job: dict[str, Any] = js(r)["job"]
    return job


# -- create ------------------------------------------------------------------------


def test_create_with_a_generated_id(api: Any, clock: Any) -> None:
    now = clock()
    r = api.post("/api/jobs", json={})
    assert r.status_code == 201, r.text
    job = js(r)["job"]
    assert JOB_ID_RE.match(job["id"])
    assert contract_fields(job) == {
        "id": job["id"],
        "name": None,
        "status": "pending",
        "progress": 0,
        "currentOperation": None,
        "workerId": None,
        "pricePerHour": None,
        "currency": "QUBIC",
        "providerId": None,
        "createdAt": iso(now),
        "startedAt": None,
        "updatedAt": iso(now),
        "completedAt": None,
        "result": None,
        "seq": 0,
    }
    assert get_job(api, job["id"]) == job
    other = js(api.post("/api/jobs", json={}))["job"]
    assert other["id"] != job["id"]


def test_create_with_every_field(api: Any, job_id: str) -> None:
    body = {
        "id": job_id,
        "name": "resnet-50 fine-tune",
        "workerId": "worker-7",
        "pricePerHour": 2.5,
        "currency": "USD",
        "providerId": "provider-3",
    }
    r = api.post("/api/jobs", json=body)
    assert r.status_code == 201, r.text
    job = js(r)["job"]
    assert (job["id"], job["name"], job["workerId"]) == (job_id, "resnet-50 fine-tune", "worker-7")
    assert (job["pricePerHour"], job["currency"], job["providerId"]) == (2.5, "USD", "provider-3")
    assert job["status"] == "pending"
    assert get_job(api, job_id) == job


def test_create_duplicate_id_is_409_and_changes_nothing(api: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id, "name": "first"}).status_code == 201
    before = get_job(api, job_id)
    r = api.post("/api/jobs", json={"id": job_id, "name": "second", "pricePerHour": 9})
    error_of(r, 409, "job_exists")
    assert get_job(api, job_id) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "bad id"}, "id"),
        ({"id": ""}, "id"),
        ({"id": "a/b"}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"id": 12}, "id"),
        ({"pricePerHour": -1}, "pricePerHour"),
        ({"pricePerHour": "2.5"}, "pricePerHour"),
        ({"name": 5}, "name"),
    ],
)
def test_create_with_bad_fields_is_400(api: Any, body: dict[str, Any], field: str) -> None:
    r = api.post("/api/jobs", json={"id": "job-never-created", **body})
    assert field in fields(error_of(r, 400, "validation_error"))
    error_of(api.get("/api/jobs/job-never-created"), 404, "job_not_found")


# -- PUT ---------------------------------------------------------------------------


def test_put_creates_then_updates(api: Any, clock: Any, job_id: str) -> None:
    created_at = clock()
    r = api.put(f"/api/jobs/{job_id}", json={"name": "a", "pricePerHour": 1.5})
    assert r.status_code == 201, r.text
    job = js(r)["job"]
    assert (job["id"], job["name"], job["pricePerHour"], job["status"]) == (
        job_id,
        "a",
        1.5,
        "pending",
    )

    clock.advance(3)
    r = api.put(f"/api/jobs/{job_id}", json={"name": "b", "providerId": "p"})
    assert r.status_code == 200, r.text
    job = js(r)["job"]
    assert (job["name"], job["pricePerHour"], job["providerId"]) == ("b", 1.5, "p")
    assert job["createdAt"] == iso(created_at)
    assert job["updatedAt"] == iso(created_at + 3)
    assert get_job(api, job_id) == job

    # the same call again: still 200, same job
    r = api.put(f"/api/jobs/{job_id}", json={"name": "b", "providerId": "p"})
    assert r.status_code == 200
    assert contract_fields(js(r)["job"]) == contract_fields(job)


def test_put_with_the_id_in_the_body(api: Any, job_id: str) -> None:
    r = api.put(f"/api/jobs/{job_id}", json={"id": job_id, "name": "same"})
    assert r.status_code == 201, r.text
    assert js(r)["job"]["id"] == job_id


def test_put_body_id_mismatch_is_400_and_creates_nothing(api: Any, job_id: str) -> None:
    other = job_id + "-other"
    r = api.put(f"/api/jobs/{job_id}", json={"id": other, "name": "x"})
    assert fields(error_of(r, 400, "validation_error")) == ["id"]
    error_of(api.get(f"/api/jobs/{job_id}"), 404, "job_not_found")
    error_of(api.get(f"/api/jobs/{other}"), 404, "job_not_found")


def test_put_with_another_worker_on_a_bound_job_is_403(api: Any, job_id: str) -> None:
    assert api.put(f"/api/jobs/{job_id}", json={"name": "mine"}).status_code == 201
    assert progress(api, job_id, "w1", progress=10).status_code == 200  # binds w1
    before = get_job(api, job_id)
    assert before["workerId"] == "w1"

    r = api.put(f"/api/jobs/{job_id}", json={"workerId": "w2", "name": "hijacked"})
    error_of(r, 403, "worker_mismatch")
    assert get_job(api, job_id) == before

    r = api.put(f"/api/jobs/{job_id}", json={"workerId": "w1", "name": "renamed"})
    assert r.status_code == 200, r.text
    assert js(r)["job"]["name"] == "renamed"


def test_put_binds_the_worker(api: Any, job_id: str) -> None:
    assert api.put(f"/api/jobs/{job_id}", json={"workerId": "w1"}).status_code == 201
    assert api.put(f"/api/jobs/{job_id}", json={"workerId": "w1"}).status_code == 200
    before = get_job(api, job_id)
    error_of(progress(api, job_id, "w2", progress=5), 403, "worker_mismatch")
    assert get_job(api, job_id) == before


def test_put_with_an_invalid_id_in_the_url_is_refused(api: Any) -> None:
    r = api.put("/api/jobs/bad%20id", json={"name": "x"})
    assert r.status_code in (400, 404)
    error_of(api.get("/api/jobs/bad%20id"), 404)


# -- list and get ------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[tuple[Any, FakeClock]]:
    """A server of this test alone, so that totals count only its jobs."""
    clock = FakeClock()
    srv = EmbeddedServer(config={"DATABASE": ":memory:", "CLOCK": clock, "STALL_CHECK_INTERVAL": 0})

    class _Api:
        def __init__(self) -> None:
            self.session = requests.Session()
            self.session.hooks["response"].append(check_answer)

        def get(self, path: str, **kw: Any) -> requests.Response:
            return self.session.get(srv.url + path, timeout=10, **kw)

        def post(self, path: str, **kw: Any) -> requests.Response:
            return self.session.post(srv.url + path, timeout=10, **kw)

    try:
        yield _Api(), clock
    finally:
        srv.stop()


def test_list_with_status_limit_offset_and_total(own_server: tuple[Any, FakeClock]) -> None:
    api, clock = own_server
    ids = []
    for i in range(5):
        r = api.post("/api/jobs", json={"id": f"list-{i}"})
        assert r.status_code == 201
        ids.append(f"list-{i}")
        clock.advance(1)
    for i in (1, 2, 3):
        assert progress(api, f"list-{i}", progress=10).status_code == 200
    assert api.post("/api/jobs/list-3/complete", json={"workerId": "w1"}).status_code == 200

    page = js(api.get("/api/jobs"))
    assert (page["total"], page["limit"], page["offset"]) == (5, 100, 0)
    assert [j["id"] for j in page["jobs"]] == ids[::-1]  # newest first

    page = js(api.get("/api/jobs?status=running"))
    assert [j["id"] for j in page["jobs"]] == ["list-2", "list-1"]
    assert page["total"] == 2
    assert {j["status"] for j in page["jobs"]} == {"running"}

    page = js(api.get("/api/jobs?status=completed"))
    assert [j["id"] for j in page["jobs"]] == ["list-3"]
    assert js(api.get("/api/jobs?status=failed")) == {
        "jobs": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }

    page = js(api.get("/api/jobs?limit=2&offset=1"))
    assert [j["id"] for j in page["jobs"]] == ["list-3", "list-2"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)

    page = js(api.get("/api/jobs?status=pending&limit=1&offset=1"))
    assert [j["id"] for j in page["jobs"]] == ["list-0"]
    assert page["total"] == 2

    page = js(api.get("/api/jobs?offset=50"))
    assert (page["jobs"], page["total"]) == ([], 5)

    # each listed job is the same object GET /api/jobs/{id} returns
    for job in js(api.get("/api/jobs"))["jobs"]:
        assert js(api.get(f"/api/jobs/{job['id']}"))["job"] == job

    for query, field in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
    ]:
        assert fields(error_of(api.get(f"/api/jobs?{query}"), 400, "validation_error")) == [field]


def test_get_unknown_job_is_404(api: Any) -> None:
    error = error_of(api.get("/api/jobs/no-such-job"), 404, "job_not_found")
    assert error["details"] == []


# -- the first update --------------------------------------------------------------


def test_first_update_binds_the_worker_and_starts_the_job(
    api: Any, clock: Any, job_id: str
) -> None:
    created = clock()
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    clock.advance(5.1234)
    started = clock()
    r = progress(api, job_id, "w1", progress=12.5, currentOperation="warming up")
    assert r.status_code == 200, r.text
    assert js(r)["status"] == "running"

    job = get_job(api, job_id)
    assert job["status"] == "running"
    assert job["workerId"] == "w1"
    assert job["progress"] == 12.5
    assert job["currentOperation"] == "warming up"
    assert job["createdAt"] == iso(created)
    assert job["startedAt"] == iso(started)
    assert job["startedAt"].endswith(".123Z")
    assert job["updatedAt"] == iso(started)
    assert job["seq"] == 1

    clock.advance(10)
    assert progress(api, job_id, "w1", progress=20).status_code == 200
    job = get_job(api, job_id)
    assert job["startedAt"] == iso(started)  # set once
    assert job["updatedAt"] == iso(started + 10)
    assert job["currentOperation"] == "warming up"  # absent operation keeps the last one


def test_progress_from_another_worker_is_403_and_changes_nothing(api: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    assert progress(api, job_id, "w1", progress=10).status_code == 200
    before = snapshot(api, job_id)
    r = progress(
        api,
        job_id,
        "w2",
        progress=50,
        currentOperation="evil",
        metrics={"gpuUtilization": 1},
        logLines=[{"level": "error", "message": "not mine"}],
    )
    error_of(r, 403, "worker_mismatch")
    assert snapshot(api, job_id) == before


def test_progress_to_an_unknown_job_is_404(api: Any) -> None:
    error_of(progress(api, "no-such-job", progress=1), 404, "job_not_found")
    error_of(api.get("/api/jobs/no-such-job"), 404, "job_not_found")


# -- complete ----------------------------------------------------------------------


@pytest.fixture
def running(api: Any, clock: Any, job_id: str) -> str:
    assert api.post("/api/jobs", json={"id": job_id, "pricePerHour": 3.6}).status_code == 201
    assert progress(api, job_id, "w1", progress=30, currentOperation="epoch 3").status_code == 200
    clock.advance(60)
    return job_id


def test_complete_sets_progress_100(api: Any, clock: Any, running: str) -> None:
    before = get_job(api, running)
    result = {"accuracy": 0.985, "artifacts": ["model.pt"], "nested": {"ok": True}}
    r = api.post(f"/api/jobs/{running}/complete", json={"workerId": "w1", "result": result})
    assert r.status_code == 200, r.text
    job = js(r)["job"]
    assert job["status"] == "completed"
    assert job["progress"] == 100
    assert job["completedAt"] == iso(clock())
    assert job["result"] == result
    assert job["startedAt"] == before["startedAt"]
    assert job["seq"] == before["seq"] + 1
    assert get_job(api, running) == job


def test_complete_as_failed_keeps_progress_and_the_error(
    api: Any, clock: Any, running: str
) -> None:
    body = {"workerId": "w1", "status": "failed", "error": "CUDA out of memory"}
    r = api.post(f"/api/jobs/{running}/complete", json=body)
    assert r.status_code == 200, r.text
    job = js(r)["job"]
    assert job["status"] == "failed"
    assert job["progress"] == 30
    assert job["completedAt"] == iso(clock())
    assert job["result"] is None
    assert job["error"] == "CUDA out of memory"
    assert get_job(api, running) == job


def test_cancel_a_pending_job(api: Any, clock: Any, job_id: str) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    r = api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w1", "status": "cancelled"})
    assert r.status_code == 200, r.text
    job = js(r)["job"]
    assert (job["status"], job["progress"], job["startedAt"]) == ("cancelled", 0, None)
    assert job["completedAt"] == iso(clock())


def test_second_complete_is_409_and_changes_nothing(api: Any, clock: Any, running: str) -> None:
    assert api.post(f"/api/jobs/{running}/complete", json={"workerId": "w1"}).status_code == 200
    before = snapshot(api, running)
    clock.advance(5)
    after_5s = snapshot(api, running)  # a finished job's figures are frozen
    assert after_5s == before
    for status in ("completed", "failed", "cancelled"):
        r = api.post(
            f"/api/jobs/{running}/complete",
            json={"workerId": "w1", "status": status, "result": "again"},
        )
        error_of(r, 409, "job_finished")
    assert snapshot(api, running) == before


def test_complete_by_another_worker_is_403_and_changes_nothing(api: Any, running: str) -> None:
    before = snapshot(api, running)
    r = api.post(f"/api/jobs/{running}/complete", json={"workerId": "w2", "result": 1})
    error_of(r, 403, "worker_mismatch")
    assert snapshot(api, running) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "completed"}, "workerId"),
        ({"workerId": "w1", "status": "done"}, "status"),
        ({"workerId": "w1", "status": "running"}, "status"),
        ({"workerId": "w1", "error": 5}, "error"),
    ],
)
def test_complete_with_bad_fields_is_400(
    api: Any, running: str, body: dict[str, Any], field: str
) -> None:
    before = snapshot(api, running)
    r = api.post(f"/api/jobs/{running}/complete", json=body)
    assert field in fields(error_of(r, 400, "validation_error"))
    assert snapshot(api, running) == before


def test_complete_unknown_job_is_404(api: Any) -> None:
    r = api.post("/api/jobs/no-such-job/complete", json={"workerId": "w1"})
    error_of(r, 404, "job_not_found")


def test_progress_after_complete_is_409_and_changes_nothing(api: Any, running: str) -> None:
    assert api.post(f"/api/jobs/{running}/complete", json={"workerId": "w1"}).status_code == 200
    before = snapshot(api, running)
    r = progress(
        api,
        running,
        "w1",
        progress=50,
        metrics={"gpuUtilization": 50},
        logLines=[{"level": "info", "message": "late"}],
    )
    error_of(r, 409, "job_finished")
    assert snapshot(api, running) == before


def test_health(api: Any) -> None:
    body = js(api.get("/api/health"))
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]


def test_job_objects_are_plain_json(api: Any, running: str) -> None:
    """The job object survives a strict JSON round trip with its types intact."""
    job = get_job(api, running)
    assert json.loads(json.dumps(job)) == job
    assert isinstance(job["seq"], int)
    assert isinstance(job["progress"], (int, float))


@pytest.mark.parametrize(
    "result",
    [5, 1.5, -7, True, False, "5", "1e5", " 12 ", "", [1, "a", None], {"a": {"b": [1.25]}}, None],
    ids=repr,
)
def test_complete_result_round_trips_exactly(api: Any, job_id: str, result: Any) -> None:
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    r = api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w1", "result": result})
    assert r.status_code == 200, r.text
    for job in (js(r)["job"], get_job(api, job_id)):
        assert job["result"] == result
        assert type(job["result"]) is type(result)


@pytest.mark.parametrize(
    "raw_result",
    ["18446744073709551616", '{"n": 18446744073709551616}', "[-9223372036854775809]"],
)
def test_complete_with_an_integer_beyond_64_bits_is_never_a_500(raw_result: str) -> None:
    """Any JSON is a valid ``result``; one with an integer that does not fit in 64
    bits is either stored and served like any other, or refused with 400 and
    nothing changed. It must not answer 500, and must not leave a job that
    GET /api/jobs/{id}, /monitor and GET /api/jobs can no longer serve."""
    srv = EmbeddedServer(config={"DATABASE": ":memory:"})
    session = requests.Session()
    try:
        assert session.post(f"{srv.url}/api/jobs", json={"id": "big"}).status_code == 201
        ws = websocket.create_connection(srv.ws_url, timeout=5)
        ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": "big"}))
        assert strict_loads(ws.recv())["type"] == "subscribed"
        raw = ('{"workerId": "w1", "result": ' + raw_result + "}").encode()
        r = session.post(
            f"{srv.url}/api/jobs/big/complete",
            data=raw,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        status = r.status_code
        reads = {
            path: session.get(f"{srv.url}{path}", timeout=10).status_code
            for path in ("/api/jobs/big", "/api/jobs/big/monitor", "/api/jobs")
        }
        assert status in (200, 400), f"complete answered {status}, then GET answered {reads}"
        assert reads == dict.fromkeys(reads, 200), reads
        job = strict_loads(session.get(f"{srv.url}/api/jobs/big", timeout=10).text)["job"]
        if status == 400:
            assert (job["status"], job["result"], job["seq"]) == ("pending", None, 0)
        else:
            assert job["status"] == "completed"
            ws.settimeout(5)
            assert strict_loads(ws.recv())["type"] == "JOB_COMPLETED"
        ws.close()
    finally:
        session.close()
        srv.stop()


def test_racing_workers_bind_exactly_one(api: Any, server: EmbeddedServer, job_id: str) -> None:
    """Eight workers report to one unbound job at the same moment: one is bound,
    every update of the others is refused (403) and leaves no trace."""
    assert api.post("/api/jobs", json={"id": job_id}).status_code == 201
    n_workers, n_updates = 8, 5
    barrier = threading.Barrier(n_workers)
    statuses: dict[str, list[int]] = {}

    def work(worker: str) -> None:
        session = requests.Session()
        barrier.wait(10)
        codes = []
        for i in range(n_updates):
            body = {
                "workerId": worker,
                "progress": i + 1,
                "logLines": [{"level": "info", "message": f"{worker} {i}"}],
            }
            r = session.post(f"{server.url}/api/jobs/{job_id}/progress", json=body, timeout=10)
            codes.append(r.status_code)
        statuses[worker] = codes
        session.close()

    threads = [threading.Thread(target=work, args=(f"w{k}",)) for k in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [w for w, codes in statuses.items() if codes == [200] * n_updates]
    assert len(winners) == 1, statuses
    (winner,) = winners
    assert all(codes == [403] * n_updates for w, codes in statuses.items() if w != winner)
    job = get_job(api, job_id)
    assert (job["workerId"], job["progress"], job["seq"]) == (winner, n_updates, 2 * n_updates)
    logs = js(api.get(f"/api/jobs/{job_id}/logs"))["logs"]
    assert [x["message"] for x in logs] == [f"{winner} {i}" for i in range(n_updates)]
