"""A token's life as its holder and the admin see it: expiry limits refused
alike on every path, whether a token is in force, whose job a worker or share
token reaches, what a token that may not do something is told (403) and what
an expired or revoked one is told (401), and tenant quotas that apply at once.

Real HTTP and WebSocket against the embedded server (the ``setup`` fixture:
tenants acme and globex, a fake clock).
"""

from __future__ import annotations

from typing import Any

import pytest
import websocket

from tests.server.web.tenants import Setup, progress

YEAR = 365 * 24 * 3600
TEN_YEARS = 10 * YEAR


def _made(setup: Setup, **body: Any) -> dict[str, Any]:
    answer = setup.admin.post("/api/admin/tokens", json=body)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def _refused_expiry(answer: Any) -> str:
    """The detail of a 400 that refuses ``expiresIn``."""
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    [detail] = error["details"]
    assert detail["field"] == "expiresIn"
    message: str = detail["message"]
    return message


def test_an_expiry_past_its_limit_is_refused_on_every_path_never_shortened(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:j1", json={}).status_code == 201
    over_a_year = 400 * 24 * 3600
    by_admin = setup.admin.post(
        "/api/admin/tokens", json={"kind": "share", "jobId": "acme:j1", "expiresIn": over_a_year}
    )
    by_tenant = acme.post("/api/jobs/acme:j1/shares", json={"expiresIn": over_a_year})
    message = _refused_expiry(by_admin)
    assert message == _refused_expiry(by_tenant)
    assert "31536000" in message and "365 days" in message
    # every kind's limit, the same way; nothing was made
    for kind, extra in (("read", {"tenant": "acme"}), ("worker", {"jobId": "acme:j1"})):
        body = {"kind": kind, "expiresIn": TEN_YEARS + 1, **extra}
        refused = _refused_expiry(setup.admin.post("/api/admin/tokens", json=body))
        assert str(TEN_YEARS) in refused and "3650 days" in refused
    assert setup.admin.get("/api/admin/tokens", params={"jobId": "acme:j1"}).json()["tokens"] == []
    # the limits themselves are allowed
    made = _made(setup, kind="share", jobId="acme:j1", expiresIn=YEAR)
    assert made["token"]["expiresAt"] is not None
    assert acme.post("/api/jobs/acme:j1/shares", json={"expiresIn": YEAR}).status_code == 201
    assert _made(setup, kind="read", tenant="acme", expiresIn=TEN_YEARS)["token"]["expiresAt"]


def test_the_token_list_says_which_tokens_are_in_force(setup: Setup) -> None:
    short = _made(setup, kind="read", tenant="acme", expiresIn=1, label="short")["token"]
    gone = _made(setup, kind="read", tenant="acme", label="gone")["token"]
    assert setup.admin.delete(f"/api/admin/tokens/{gone['id']}").ok
    assert short["state"] == "active"
    setup.clock.advance(2)
    listed = setup.admin.get("/api/admin/tokens", params={"tenant": "acme"}).json()["tokens"]
    states = {t["label"]: t["state"] for t in listed}
    assert states == {None: "active", "short": "expired", "gone": "revoked"}
    # a share link's list says it too
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:s", json={}).status_code == 201
    assert acme.post("/api/jobs/acme:s/shares", json={"expiresIn": 10}).status_code == 201
    setup.clock.advance(11)
    [share] = acme.get("/api/jobs/acme:s/shares").json()["shares"]
    assert share["state"] == "expired"


def test_a_worker_or_share_token_belongs_to_its_jobs_tenant(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:j1", json={}).status_code == 201
    worker_made = _made(setup, kind="worker", jobId="acme:j1")
    assert worker_made["token"]["tenant"] == "acme"
    worker = setup.http(worker_made["secret"])
    assert worker.get("/api/jobs/acme:j1").status_code == 200
    assert worker.put("/api/jobs/acme:j1", json={"workerId": "w1"}).status_code == 200
    assert progress(worker, "acme:j1").status_code == 200
    share_made = _made(setup, kind="share", jobId="acme:j1")
    assert share_made["token"]["tenant"] == "acme"
    assert setup.http(share_made["secret"]).get("/api/jobs/acme:j1/monitor").status_code == 200
    # a job not made yet: its namespace names the tenant
    early = _made(setup, kind="worker", jobId="acme:later")
    assert early["token"]["tenant"] == "acme"
    assert setup.http(early["secret"]).put("/api/jobs/acme:later", json={}).status_code == 201
    assert acme.get("/api/jobs/acme:later").status_code == 200  # acme's job
    # an operator's job stays the operator's
    assert setup.admin.put("/api/jobs/op-1", json={}).status_code == 201
    assert _made(setup, kind="worker", jobId="op-1")["token"]["tenant"] is None


def test_a_tenant_that_contradicts_the_jobs_owner_is_refused(setup: Setup) -> None:
    # made by the admin before tenant "late" existed: the operator's job
    assert setup.admin.put("/api/jobs/late:j1", json={}).status_code == 201
    setup.tenant("late")
    for kind in ("worker", "share"):
        body = {"kind": kind, "tenant": "late", "jobId": "late:j1"}
        refused = setup.admin.post("/api/admin/tokens", json=body)
        assert refused.status_code == 400, refused.text
        [detail] = refused.json()["error"]["details"]
        assert detail["field"] == "tenant" and "the operator" in detail["message"]
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:j1", json={}).status_code == 201
    refused = setup.admin.post(
        "/api/admin/tokens", json={"kind": "worker", "tenant": "globex", "jobId": "acme:j1"}
    )
    assert refused.status_code == 400
    assert setup.admin.get("/api/admin/tokens", params={"jobId": "late:j1"}).json()["tokens"] == []


def test_a_worker_token_is_told_it_reaches_only_its_job(setup: Setup) -> None:
    worker = setup.http(setup.token("worker", "acme", jobId="acme:j1"))
    assert worker.put("/api/jobs/acme:j1", json={"workerId": "w1"}).status_code == 201
    assert setup.http(setup.acme.write).put("/api/jobs/acme:j2", json={}).status_code == 201
    for job_id in ("acme:j2", "acme:j5", "globex:x", "op"):  # existing or not: the same
        for answer in (
            worker.post("/api/jobs", json={"id": job_id}),
            worker.put(f"/api/jobs/{job_id}", json={}),
            progress(worker, job_id),
            worker.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w1"}),
        ):
            assert answer.status_code == 403, answer.text
            error = answer.json()["error"]
            assert error["code"] == "forbidden"
            assert "worker token" in error["message"] and "'acme:j1'" in error["message"]
        assert worker.get(f"/api/jobs/{job_id}").status_code == 404  # reads: missing
    assert setup.http(setup.acme.write).get("/api/jobs/acme:j5").status_code == 404


def test_a_token_that_may_not_write_gets_403_forbidden(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:j1", json={}).status_code == 201
    share = acme.post("/api/jobs/acme:j1/shares", json={}).json()["secret"]
    for token in (setup.acme.read, share):
        http = setup.http(token)
        for answer in (
            http.post("/api/jobs/acme:j1/shares", json={}),
            http.post("/api/jobs", json={"id": "acme:j9"}),
            http.put("/api/jobs/acme:j1", json={}),
            progress(http, "acme:j1"),
            http.post("/api/jobs/acme:j1/complete", json={"workerId": "w1"}),
            http.delete("/api/admin/tokens/0123456789abcdef"),
        ):
            assert answer.status_code == 403, answer.text
            assert answer.json()["error"]["code"] == "forbidden"
            assert "may only read" in answer.json()["error"]["message"]
    assert acme.get("/api/jobs/acme:j1").json()["job"]["progress"] == 0
    # a token no one knows is still 401
    unknown = setup.http("jw_0123456789abcdef_nope").post("/api/jobs/acme:j1/shares", json={})
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "unauthorized"


def test_an_expired_or_revoked_token_is_told_so(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:j1", json={}).status_code == 201
    short = _made(setup, kind="read", tenant="acme", expiresIn=10)["secret"]
    link = acme.post("/api/jobs/acme:j1/shares", json={"expiresIn": 10}).json()["secret"]
    revoked = _made(setup, kind="read", tenant="acme")
    assert setup.admin.delete(f"/api/admin/tokens/{revoked['token']['id']}").ok
    setup.clock.advance(11)
    for token, word in ((short, "expired"), (link, "expired"), (revoked["secret"], "revoked")):
        for answer in (
            setup.http(token).get("/api/jobs/acme:j1"),
            progress(setup.http(token), "acme:j1"),
        ):
            assert answer.status_code == 401
            error = answer.json()["error"]
            assert error["code"] == "unauthorized" and f"token {word}" in error["message"]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            setup.ws(token)
        assert refused.value.status_code == 401
        assert f"token {word}".encode() in refused.value.resp_body


def test_the_websocket_close_says_expired_or_revoked(setup: Setup) -> None:
    acme = setup.http(setup.acme.write)
    assert acme.put("/api/jobs/acme:j1", json={}).status_code == 201
    short = setup.ws(_made(setup, kind="read", tenant="acme", expiresIn=10)["secret"])
    made = _made(setup, kind="read", tenant="acme")
    kept = setup.ws(made["secret"])
    try:
        setup.clock.advance(11)
        assert _close_reason(short) == "token expired"
        assert setup.admin.delete(f"/api/admin/tokens/{made['token']['id']}").ok
        assert _close_reason(kept) == "token revoked"
    finally:
        short.close()
        kept.close()


def _close_reason(ws: Any) -> str:
    ws.conn.settimeout(10)
    while True:
        opcode, frame = ws.conn.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            assert int.from_bytes(frame.data[:2], "big") == 1008
            reason: str = frame.data[2:].decode()
            return reason


def test_a_quota_change_applies_at_once(setup: Setup) -> None:
    globex = setup.http(setup.globex.write)
    for token in (setup.globex.write, setup.globex.read):  # now known to this process
        assert setup.http(token).get("/api/jobs").ok
    answer = setup.admin.put(
        "/api/admin/tenants/globex", json={"maxJobs": 2, "maxBytes": 2000, "maxConnections": 1}
    )
    assert answer.status_code == 200 and answer.json()["tenant"]["quotas"]["maxJobs"] == 2
    assert globex.put("/api/jobs/globex:1", json={}).status_code == 201
    assert globex.put("/api/jobs/globex:2", json={}).status_code == 201
    assert globex.put("/api/jobs/globex:3", json={}).status_code == 507
    lines = [{"level": "info", "message": "x" * 1500}]
    assert progress(globex, "globex:1", logLines=lines).ok
    assert progress(globex, "globex:2", logLines=lines).status_code == 507
    first = setup.ws(setup.globex.read)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            setup.ws(setup.globex.read)
        assert refused.value.status_code == 507
    finally:
        first.close()
