"""Two tenants on one server (SQLite) cannot read, list, stream, export, write,
squat or exhaust each other's jobs; a worker token reaches one job; a share
link opens one job and expires; revoking a token ends its WebSockets.

Real HTTP and WebSocket against the embedded server; the server's clock is a
:class:`~tests.conftest.FakeClock`, so expiry needs no waiting.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import websocket

from jobwatch.client.rest import Client, share_link_parts
from jobwatch.errors import JobNotFound
from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock, WsClient, wait_for
from tests.server.web.tenants import ADMIN, Http, Setup, progress

READS = ["", "/monitor", "/metrics", "/logs", "/alerts", "/scalars"]


def test_another_tenants_job_is_answered_as_a_missing_one(setup: Setup) -> None:
    acme, globex = setup.http(setup.acme.write), setup.http(setup.globex.write)
    assert globex.put("/api/jobs/globex:run-1", json={"name": "secret"}).status_code == 201
    assert progress(globex, "globex:run-1", logLines=[{"level": "info", "message": "x"}]).ok
    for token in (setup.acme.write, setup.acme.read):
        http = setup.http(token)
        for path in READS:
            there = http.get(f"/api/jobs/globex:run-1{path}")
            missing = http.get(f"/api/jobs/globex:run-2{path}")
            assert there.status_code == missing.status_code == 404
            assert there.json()["error"]["code"] == missing.json()["error"]["code"]
            assert "secret" not in there.text
    # its own tenant reads it
    assert setup.http(setup.globex.read).get("/api/jobs/globex:run-1/monitor").ok
    assert acme.get("/api/jobs/globex:run-1").status_code == 404


def test_listings_and_exports_show_only_the_tenants_jobs(setup: Setup) -> None:
    acme, globex = setup.http(setup.acme.write), setup.http(setup.globex.write)
    for i in range(3):
        assert acme.put(f"/api/jobs/acme:a{i}", json={}).status_code == 201
        assert progress(acme, f"acme:a{i}", gpuUtilization=None).ok
    assert globex.put("/api/jobs/globex:g0", json={}).status_code == 201
    assert progress(globex, "globex:g0").ok
    assert setup.admin.put("/api/jobs/operator-job", json={}).status_code == 201

    listed = setup.http(setup.acme.read).get("/api/jobs").json()
    assert {j["id"] for j in listed["jobs"]} == {"acme:a0", "acme:a1", "acme:a2"}
    assert listed["total"] == 3
    assert setup.http(setup.globex.read).get("/api/jobs").json()["total"] == 1
    assert setup.admin.get("/api/jobs").json()["total"] == 5

    scrape = setup.http(setup.acme.read).get("/api/prometheus").text
    assert 'job_id="acme:a0"' in scrape and "globex" not in scrape
    assert "jobwatch_websocket_subscribers" not in scrape  # the server's own figures
    everything = setup.admin.get("/api/prometheus").text
    assert 'job_id="globex:g0"' in everything and "jobwatch_websocket_subscribers" in everything


def test_spend_counts_only_the_jobs_the_token_may_read(setup: Setup) -> None:
    acme, globex = setup.http(setup.acme.write), setup.http(setup.globex.write)
    assert acme.put("/api/jobs/acme:a", json={"pricePerHour": 1.0}).status_code == 201
    assert globex.put("/api/jobs/globex:g", json={"pricePerHour": 10.0}).status_code == 201
    assert setup.admin.put("/api/jobs/op", json={"pricePerHour": 100.0}).status_code == 201
    for http, job_id in ((acme, "acme:a"), (globex, "globex:g"), (setup.admin, "op")):
        assert progress(http, job_id).ok
    setup.clock.advance(3600)

    def spend(token: str, by: str = "tenant") -> dict[str, float | None]:
        answer = setup.http(token).get(f"/api/costs?since=1d&by={by}")
        assert answer.status_code == 200, answer.text
        return {g["group"]: g["cost"] for g in answer.json()["groups"]}

    assert spend(setup.acme.read) == {"acme": 1.0}
    assert spend(setup.acme.write, by="name") == {"acme:a": 1.0}
    assert spend(setup.globex.read) == {"globex": 10.0}
    assert spend(ADMIN) == {None: 100.0, "globex": 10.0, "acme": 1.0}
    worker = setup.http(setup.token("worker", "acme", jobId="acme:a"))
    assert worker.get("/api/costs").status_code == 403


def test_streams_show_only_the_tenants_jobs(setup: Setup) -> None:
    acme, globex = setup.http(setup.acme.write), setup.http(setup.globex.write)
    assert acme.put("/api/jobs/acme:a", json={}).status_code == 201
    assert globex.put("/api/jobs/globex:g", json={}).status_code == 201
    ws = setup.ws(setup.acme.read)
    try:
        there = ws.subscribe("globex:g")
        missing = ws.subscribe("globex:nothing")
        assert there["type"] == missing["type"] == "error"
        assert there["error"]["code"] == missing["error"]["code"] == "job_not_found"
        ws.send({"type": "subscribe:jobs"})
        first = ws.recv_until(lambda m: m["type"] == "JOBS_CHANGED")
        assert [j["id"] for j in first[-1]["data"]["jobs"]] == ["acme:a"]
        # live changes: globex's update never reaches acme's fleet view
        assert progress(globex, "globex:g", 50).ok
        assert progress(acme, "acme:a", 20).ok
        changed = ws.recv_until(
            lambda m: (
                m["type"] == "JOBS_CHANGED"
                and any(j["id"] == "acme:a" and j["progress"] == 20 for j in m["data"]["jobs"])
            )
        )
        seen = {j["id"] for m in changed if m["type"] == "JOBS_CHANGED" for j in m["data"]["jobs"]}
        assert seen == {"acme:a"}
    finally:
        ws.close()


def test_no_tenant_writes_another_tenants_job(setup: Setup) -> None:
    acme, globex = setup.http(setup.acme.write), setup.http(setup.globex.write)
    assert globex.put("/api/jobs/globex:g", json={"name": "theirs"}).status_code == 201
    assert progress(globex, "globex:g", 30).ok
    assert progress(acme, "globex:g", 99).status_code == 404
    done = acme.post("/api/jobs/globex:g/complete", json={"workerId": "w1"})
    assert done.status_code == 404
    assert acme.put("/api/jobs/globex:g", json={"name": "mine"}).status_code == 403
    assert acme.post("/api/jobs/globex:g/shares", json={}).status_code == 404
    job = setup.admin.get("/api/jobs/globex:g").json()["job"]
    assert (job["name"], job["progress"], job["status"]) == ("theirs", 30, "running")
    # a read token writes nothing, even its own tenant's
    assert progress(setup.http(setup.globex.read), "globex:g", 40).status_code == 403


def test_no_tenant_squats_another_tenants_ids(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert setup.http(setup.globex.write).put("/api/jobs/globex:taken", json={}).status_code == 201
    # the answer is the same whether the id exists or not: nothing is learnt
    for job_id in ("globex:taken", "globex:free", "run-1", "unnamed:x"):
        put = acme.put(f"/api/jobs/{job_id}", json={})
        post = acme.post("/api/jobs", json={"id": job_id})
        assert put.status_code == post.status_code == 403
        assert put.json()["error"]["code"] == "forbidden"
        assert "acme:" in put.json()["error"]["message"]
    # globex can still take any id of its own
    assert setup.http(setup.globex.write).put("/api/jobs/globex:free", json={}).status_code == 201
    # a job made without an id gets one in the tenant's namespace
    made = acme.post("/api/jobs", json={"name": "n"}).json()["job"]
    assert made["id"].startswith("acme:")


def test_no_tenant_exhausts_another_tenants_quotas(setup: Setup) -> None:
    small = setup.tenant("small", maxJobs=2, maxBytes=1000, maxConnections=1)
    http = setup.http(small.write)
    assert http.put("/api/jobs/small:1", json={}).status_code == 201
    assert http.put("/api/jobs/small:2", json={}).status_code == 201
    refused = http.put("/api/jobs/small:3", json={})
    assert refused.status_code == 507 and "maxJobs 2" in refused.json()["error"]["message"]
    assert setup.http(setup.acme.write).put("/api/jobs/acme:1", json={}).status_code == 201

    big = [{"level": "info", "message": "x" * 600}]
    assert progress(http, "small:1", logLines=big).ok
    full = progress(http, "small:1", 20, logLines=big)
    assert full.status_code == 507 and "maxBytes 1000" in full.json()["error"]["message"]
    assert http.get("/api/jobs/small:1").json()["job"]["progress"] == 10  # nothing stored
    assert progress(setup.http(setup.acme.write), "acme:1", logLines=big * 3).ok

    first = setup.ws(small.read)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused_ws:
            setup.ws(small.read)
        assert refused_ws.value.status_code == 507
        setup.ws(setup.acme.read).close()  # another tenant still connects
    finally:
        first.close()
    usage = setup.admin.get("/api/admin/tenants").json()["tenants"]
    assert {t["name"]: t["usage"]["jobs"] for t in usage}["small"] == 2


def test_a_worker_token_reports_to_its_job_and_nothing_else(setup: Setup) -> None:
    worker = setup.http(setup.token("worker", "acme", jobId="acme:run-7"))
    # the seed worker's requests, unchanged
    assert worker.put("/api/jobs/acme:run-7", json={"workerId": "gpu-1"}).status_code == 201
    body = {
        "workerId": "gpu-1",
        "progress": 40,
        "currentOperation": "Training epoch 4/10",
        "metrics": None,
        "logLines": [{"level": "info", "message": "Epoch 4 completed"}],
    }
    reply = worker.post("/api/jobs/acme:run-7/progress", json=body)
    assert reply.status_code == 200 and reply.json()["progress"] == 40
    assert worker.get("/api/jobs/acme:run-7/monitor").ok
    # another job of its own tenant, another tenant's, the operator's: it may not
    # write them (403, whether they exist or not) and cannot read them (missing)
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:other", json={}).status_code == 201
    assert setup.admin.put("/api/jobs/op", json={}).status_code == 201
    for job_id in ("acme:other", "op", "globex:x"):
        assert worker.put(f"/api/jobs/{job_id}", json={}).status_code == 403
        assert worker.post(f"/api/jobs/{job_id}/progress", json=body).status_code == 403
        assert worker.get(f"/api/jobs/{job_id}").status_code == 404
    assert worker.get("/api/jobs").status_code == 403
    assert worker.get("/api/admin/tokens").status_code == 403
    done = worker.post("/api/jobs/acme:run-7/complete", json={"workerId": "gpu-1"})
    assert done.status_code == 200 and done.json()["job"]["status"] == "completed"


def test_a_share_link_opens_one_job_and_expires(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    for job_id in ("acme:shared", "acme:private"):
        assert acme.put(f"/api/jobs/{job_id}", json={}).status_code == 201
        assert progress(acme, job_id, 25).ok
    made = acme.post("/api/jobs/acme:shared/shares", json={"expiresIn": 3600}).json()
    assert made["url"].endswith(f"/jobs/acme:shared#share={made['secret']}")
    share = setup.http(made["secret"])
    for path in READS:
        assert share.get(f"/api/jobs/acme:shared{path}").status_code == 200, path
    assert share.get("/api/jobs/acme:private").status_code == 404
    assert share.get("/api/jobs").status_code == 403
    assert share.get("/api/prometheus").status_code == 403
    assert progress(share, "acme:shared", 90).status_code == 403
    assert share.post("/api/jobs/acme:shared/shares", json={}).status_code == 403
    # the pages' Python clients take it as a token
    with Client(setup.server.url, token=made["secret"]) as client:
        assert client.monitor("acme:shared")["job"]["progress"] == 25
        with pytest.raises(JobNotFound):
            client.monitor("acme:private")
    ws = setup.ws(made["secret"])
    try:
        assert ws.subscribe("acme:shared")["type"] == "subscribed"
        assert ws.subscribe("acme:private")["error"]["code"] == "job_not_found"
        ws.send({"type": "subscribe:jobs"})
        assert ws.recv()["error"]["code"] == "forbidden"
    finally:
        ws.close()
    setup.clock.advance(3601)
    assert share.get("/api/jobs/acme:shared").status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException):
        setup.ws(made["secret"])


def test_a_revoked_share_link_stops_at_once_and_its_socket_closes(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:s", json={}).status_code == 201
    made = acme.post("/api/jobs/acme:s/shares", json={}).json()
    ws = setup.ws(made["secret"])
    assert ws.subscribe("acme:s")["type"] == "subscribed"
    listed = acme.get("/api/jobs/acme:s/shares").json()["shares"]
    assert [s["id"] for s in listed] == [made["share"]["id"]]
    # another tenant cannot revoke it (the job is missing to it)
    other = setup.http(setup.globex.write)
    assert other.delete(f"/api/jobs/acme:s/shares/{made['share']['id']}").status_code == 404
    revoked = acme.delete(f"/api/jobs/acme:s/shares/{made['share']['id']}")
    assert revoked.status_code == 200 and revoked.json()["share"]["revokedAt"] is not None
    assert setup.http(made["secret"]).get("/api/jobs/acme:s").status_code == 401
    _expect_closed(ws)


def test_revoking_a_tenant_token_ends_its_websockets(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:r", json={}).status_code == 201
    reader = setup.ws(setup.acme.read)
    assert reader.subscribe("acme:r")["type"] == "subscribed"
    tokens = setup.admin.get("/api/admin/tokens", params={"tenant": "acme"}).json()["tokens"]
    read_id = next(t["id"] for t in tokens if t["kind"] == "read")
    assert setup.admin.delete(f"/api/admin/tokens/{read_id}").status_code == 200
    assert setup.http(setup.acme.read).get("/api/jobs").status_code == 401
    _expect_closed(reader)
    assert setup.http(setup.acme.write).get("/api/jobs").ok  # its other tokens hold


def _expect_closed(ws: WsClient) -> None:
    """The server closes ``ws`` (1008, token revoked or expired) within a few seconds."""
    ws.conn.settimeout(10)
    while True:
        try:
            opcode, frame = ws.conn.recv_data_frame(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(frame.data[:2], "big") == 1008
            assert b"revoked" in frame.data
            return


def test_the_admin_api_needs_the_admin_token(setup: Setup) -> None:
    for token in (setup.acme.write, setup.acme.read):
        http = setup.http(token)
        assert http.get("/api/admin/tenants").status_code == 403
        assert (
            http.post("/api/admin/tokens", json={"kind": "write", "tenant": "acme"}).status_code
            == 403
        )
        assert http.put("/api/admin/tenants/evil", json={}).status_code == 403
    assert setup.http(None).get("/api/admin/tokens").status_code == 401
    bad = setup.admin.post("/api/admin/tokens", json={"kind": "write"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "tenant"
    bad = setup.admin.post("/api/admin/tokens", json={"kind": "worker", "tenant": "acme"})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "jobId"
    bad = setup.admin.post(
        "/api/admin/tokens", json={"kind": "worker", "tenant": "acme", "jobId": "globex:x"}
    )
    assert bad.status_code == 400
    assert setup.admin.put("/api/admin/tenants/Bad Name", json={}).status_code == 400
    assert setup.admin.delete("/api/admin/tokens/0000000000000000").status_code == 404


def test_tokens_are_stored_only_as_hashes_and_never_listed(setup: Setup, tmp_path: Path) -> None:
    listed = setup.admin.get("/api/admin/tokens").text
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        stored = " ".join(str(row) for row in db.execute("SELECT * FROM tokens"))
    for secret in (setup.acme.write, setup.acme.read, setup.globex.write):
        assert secret not in listed and secret not in stored
        assert secret.split("_", 2)[2] not in stored  # the secret may hold "_" itself
    assert "hash" not in listed


def test_the_server_tokens_keep_their_single_tenant_meaning(setup: Setup) -> None:
    """JOBWATCH_TOKEN is the admin; a stored tenant token is no admin."""
    assert setup.admin.put("/api/jobs/plain-id", json={}).status_code == 201
    assert setup.admin.put("/api/jobs/acme:by-admin", json={}).status_code == 201
    # the admin's job in acme's namespace is acme's
    assert setup.http(setup.acme.read).get("/api/jobs/acme:by-admin").ok
    assert setup.http(setup.acme.read).get("/api/jobs/plain-id").status_code == 404
    assert setup.http("jw_0123456789abcdef_forged-secret").get("/api/jobs").status_code == 401


def test_a_server_with_a_read_token_reads_everything_with_it(clock: FakeClock) -> None:
    read = "read-token-0123456789abcdef"
    server = EmbeddedServer(
        config={"DATABASE": ":memory:", "CLOCK": clock, "WRITE_TOKEN": ADMIN, "READ_TOKEN": read}
    )
    try:
        admin, reader = Http(server.url, ADMIN), Http(server.url, read)
        assert admin.put("/api/admin/tenants/acme", json={}).status_code == 201
        assert admin.put("/api/jobs/acme:x", json={}).status_code == 201
        assert admin.put("/api/jobs/y", json={}).status_code == 201
        assert reader.get("/api/jobs").json()["total"] == 2
        assert reader.get("/api/admin/tenants").status_code == 403
        assert progress(reader, "y").status_code == 403
        wait_for(lambda: reader.get("/api/jobs/acme:x").ok)
    finally:
        server.stop()


def test_a_share_link_is_a_token_for_the_python_clients(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:linked", json={}).status_code == 201
    assert progress(acme, "acme:linked", 35).ok
    link = acme.post("/api/jobs/acme:linked/shares", json={}).json()["url"]
    assert share_link_parts(link) == (
        setup.server.url,
        "acme:linked",
        link.split("#share=")[1],
    )
    assert share_link_parts("jw_0123456789abcdef_x") is None
    assert share_link_parts("http://h/jobs/a/b#share=x") is None
    with Client(token=link) as client:  # the link names its server too
        assert client.url == setup.server.url
        assert client.monitor("acme:linked")["job"]["progress"] == 35
        subscription = client.subscribe("acme:linked", since=0)  # replays the progress
        try:
            assert next(iter(subscription))["type"] == "JOB_PROGRESS"
        finally:
            subscription.close()
