"""Worker timestamps order updates, but one wild clock never freezes a job."""

from __future__ import annotations

from jobwatch.contract.requests import format_ts


def post(api, job_id, progress, timestamp):
    body = {"workerId": "w", "progress": progress, "timestamp": timestamp}
    r = api.post(f"/api/jobs/{job_id}/progress", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_late_update_does_not_move_progress_back(api, make_job, clock):
    job = make_job()["id"]
    post(api, job, 50, format_ts(clock() - 10))
    assert post(api, job, 40, format_ts(clock() - 20))["progress"] == 50
    assert post(api, job, 60, format_ts(clock() - 5))["progress"] == 60


def test_a_far_future_timestamp_does_not_freeze_the_job(api, make_job, clock):
    job = make_job()["id"]
    post(api, job, 10, "9999-12-31T23:59:59.999Z")
    assert post(api, job, 20, format_ts(clock()))["progress"] == 20
    assert post(api, job, 30, format_ts(clock() + 3600))["progress"] == 30
    # an hour ahead is within the allowed skew, so it orders the next ones: 30 s
    # older arrived late; an hour older means the worker's clock was stepped back
    assert post(api, job, 25, format_ts(clock() + 3570))["progress"] == 30
    assert post(api, job, 35, format_ts(clock()))["progress"] == 35


def test_logs_before_id_pages_backwards(api, make_job):
    job = make_job()["id"]
    lines = [{"level": "info", "message": f"m{i}"} for i in range(10)]
    api.post(f"/api/jobs/{job}/progress", json={"workerId": "w", "progress": 1, "logLines": lines})
    ids = [line["id"] for line in api.get(f"/api/jobs/{job}/logs").json()["logs"]]
    page = api.get(f"/api/jobs/{job}/logs", params={"beforeId": ids[7], "limit": 3}).json()
    assert [line["message"] for line in page["logs"]] == ["m4", "m5", "m6"]
    assert page["total"] == 10
    first = api.get(f"/api/jobs/{job}/logs", params={"beforeId": ids[1], "limit": 3}).json()
    assert [line["message"] for line in first["logs"]] == ["m0"]
    bad = api.get(f"/api/jobs/{job}/logs", params={"beforeId": "0"})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["field"] == "beforeId"


def test_huge_integers_in_queries_are_400_not_500(api, make_job):
    job = make_job()["id"]
    for path in (
        "/api/jobs?offset=9223372036854775808",
        f"/api/jobs/{job}/logs?offset=99999999999999999999",
        f"/api/jobs/{job}/logs?beforeId=99999999999999999999999999",
    ):
        answer = api.get(path)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "validation_error"


def test_websocket_answers_are_text_frames_and_huge_since_is_refused(server, make_job):
    import json

    import websocket

    job = make_job()["id"]
    ws = websocket.create_connection(server.ws_url, timeout=5)
    try:
        ws.send("not json")
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        assert json.loads(data)["error"]["code"] == "invalid_json"
        ws.send(json.dumps({"type": "subscribe:job", "subscriptionId": job, "since": 2**63}))
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        assert json.loads(data)["error"]["details"][0]["field"] == "since"
        ws.send(json.dumps({"type": "unsubscribe:job", "subscriptionId": job}))
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data)["type"] == "unsubscribed"
    finally:
        ws.close()


def test_log_pages_read_from_either_end_agree(api, make_job):
    job = make_job()["id"]
    levels = ["info", "warning", "error"]
    lines = [{"level": levels[i % 3], "message": f"m{i}"} for i in range(250)]
    api.post(f"/api/jobs/{job}/progress", json={"workerId": "w", "progress": 1, "logLines": lines})
    for level in (None, "warning"):
        expected = [line["message"] for line in lines if level in (None, line["level"])]
        for offset in (0, 40, 82, 83, 84, 124, 126, 200, 240, 249, 250, 300):
            for limit in (1, 10, 100):
                params = {"offset": offset, "limit": limit, **({"level": level} if level else {})}
                page = api.get(f"/api/jobs/{job}/logs", params=params).json()
                got = [line["message"] for line in page["logs"]]
                assert got == expected[offset : offset + limit], (level, offset, limit)
                assert page["total"] == len(expected)
