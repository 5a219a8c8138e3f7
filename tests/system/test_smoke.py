def test_health(api):
    r = api.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_ws_roundtrip(api, ws_factory, make_job):
    job = make_job(name="x")
    ws = ws_factory()
    assert ws.subscribe(job["id"]) == {"type": "subscribed", "subscriptionId": job["id"], "seq": 0}
    r = api.post(f"/api/jobs/{job['id']}/progress", json={"workerId": "w", "progress": 5})
    assert r.status_code == 200
    msg = ws.recv()
    assert msg["type"] == "JOB_PROGRESS" and msg["data"]["progress"] == 5
