"""Every request and message of the seed document, verbatim, against the real server.

The seed (the API's original document, see docs/api.md) never creates its job: our
server needs one first, so each test creates it (``POST /api/jobs`` or the
worker's ``PUT /api/jobs/{id}``) and then sends the seed's bodies unchanged.
Every JSON answer is parsed strictly (no ``NaN``/``Infinity``) by an autouse hook.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.contract.helpers import check_envelope, iso, js, strict_loads

API_HEADERS = {"Content-Type": "application/json"}
WORKER = "your_worker_id"


@pytest.fixture(autouse=True)
def _strict_answers(api: Any) -> None:
    """Overrides the package's hook: strict JSON and the envelope's keys only."""
    api.session.hooks["response"].append(check_envelope)


def fetch_post(api: Any, path: str, body: dict[str, Any]) -> requests.Response:
    """What the seed's ``fetch(..., {method: 'POST', headers: {'Content-Type':
    'application/json'}, body: JSON.stringify(body)})`` sends: compact UTF-8 JSON."""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return api.post(path, data=raw, headers=API_HEADERS)


def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    ws.conn.settimeout(timeout)
    message: dict[str, Any] = strict_loads(ws.conn.recv())
    return message


# -- the seed's bodies, verbatim ---------------------------------------------------

BASIC_PROGRESS = {
    "workerId": "your_worker_id",
    "progress": 45,  # 0-100
    "currentOperation": "Training epoch 5/10",
}

WITH_GPU_METRICS = {
    "workerId": "your_worker_id",
    "progress": 45,
    "currentOperation": "Training epoch 5/10",
    "metrics": {
        "gpuUtilization": 87,  # 0-100
        "gpuMemoryUsed": 18000,  # MB
        "gpuMemoryTotal": 24000,  # MB
        "gpuTemperature": 72,  # Celsius
        "powerUsage": 350,  # Watts
    },
}

WITH_LOGS = {
    "workerId": "your_worker_id",
    "progress": 45,
    "currentOperation": "Training epoch 5/10",
    "logLines": [
        {"level": "info", "message": "Epoch 5/10 completed"},
        {"level": "info", "message": "Loss: 0.0234, Accuracy: 98.5%"},
        {"level": "warning", "message": "GPU temperature high: 82°C"},
    ],
}

COMPLETE_UPDATE = {
    "workerId": "your_worker_id",
    "progress": 45,
    "currentOperation": "Training epoch 5/10",
    "metrics": {
        "gpuUtilization": 87,
        "gpuMemoryUsed": 18000,
        "gpuMemoryTotal": 24000,
        "gpuTemperature": 72,
        "powerUsage": 350,
    },
    "logLines": [
        {"level": "info", "message": "Epoch 5/10 completed"},
        {"level": "info", "message": "Loss: 0.0234, Accuracy: 98.5%"},
    ],
}


@pytest.fixture
def seed_job(api: Any, job_id: str) -> dict[str, Any]:
    """The job the seed assumes exists, with a price (its troubleshooting section)."""
    r = api.post("/api/jobs", json={"id": job_id, "name": "seed", "pricePerHour": 3.6})
    assert r.status_code == 201, r.text
    job: dict[str, Any] = js(r)["job"]
    return job


@pytest.fixture
def started(api: Any, clock: Any, seed_job: dict[str, Any], job_id: str) -> float:
    """Start the job at progress 0, then let 90 s pass; returns the start time."""
    t0 = clock()
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", {"workerId": WORKER, "progress": 0})
    assert r.status_code == 200, r.text
    clock.advance(90)
    return float(t0)


# 90 s at 3.6/h from progress 0 to 45: rate 0.5 %/s, 55 % left.
EXPECTED_REMAINING = 110.0
EXPECTED_COST = 90 / 3600 * 3.6


# -- worker side -------------------------------------------------------------------


def test_progress_to_a_job_that_does_not_exist_is_404(api: Any, job_id: str) -> None:
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", BASIC_PROGRESS)
    assert r.status_code == 404
    assert js(r)["error"]["code"] == "job_not_found"
    assert api.get(f"/api/jobs/{job_id}").status_code == 404


def test_basic_progress_update(api: Any, started: float, job_id: str) -> None:
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", BASIC_PROGRESS)
    assert r.status_code == 200, r.text
    result = js(r)
    # the two fields the seed prints
    assert result["timeRemaining"] == pytest.approx(EXPECTED_REMAINING, abs=1e-6)
    assert result["costSoFar"] == pytest.approx(EXPECTED_COST, abs=1e-6)
    assert result["success"] is True
    assert result["jobId"] == job_id
    assert result["status"] == "running"
    assert result["progress"] == 45
    assert result["currency"] == "QUBIC"
    assert result["seq"] == 2

    job = js(api.get(f"/api/jobs/{job_id}"))["job"]
    assert job["progress"] == 45
    assert job["currentOperation"] == "Training epoch 5/10"
    assert job["workerId"] == WORKER
    assert job["status"] == "running"
    assert job["startedAt"] == iso(started)


def test_basic_progress_on_a_job_the_worker_created_with_put(
    api: Any, clock: Any, job_id: str
) -> None:
    r = api.put(f"/api/jobs/{job_id}", json={"workerId": WORKER, "pricePerHour": 3.6})
    assert r.status_code == 201, r.text
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", BASIC_PROGRESS)
    assert r.status_code == 200, r.text
    result = js(r)
    assert result["progress"] == 45
    # first report: a number, as the seed's troubleshooting promises once the job
    # has startedAt and progress > 0; nothing has elapsed, so its average gives
    # the documented minimum. Cost is zero, not unknown
    assert result["timeRemaining"] == 0.001
    assert result["costSoFar"] == 0


def test_progress_with_gpu_metrics(api: Any, started: float, job_id: str) -> None:
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", WITH_GPU_METRICS)
    assert r.status_code == 200, r.text
    assert js(r)["seq"] == 2

    latest = js(api.get(f"/api/jobs/{job_id}/monitor"))["metrics"]["latest"]
    assert latest == {
        "timestamp": iso(started + 90),
        "gpuUtilization": 87,
        "gpuMemoryUsed": 18000,
        "gpuMemoryTotal": 24000,
        "gpuTemperature": 72,
        "powerUsage": 350,
    }


def test_progress_with_logs(api: Any, started: float, job_id: str) -> None:
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", WITH_LOGS)
    assert r.status_code == 200, r.text
    assert js(r)["seq"] == 3  # a progress event and a logs event

    page = js(api.get(f"/api/jobs/{job_id}/logs"))
    assert page["total"] == 3
    assert [(x["level"], x["message"]) for x in page["logs"]] == [
        ("info", "Epoch 5/10 completed"),
        ("info", "Loss: 0.0234, Accuracy: 98.5%"),
        ("warning", "GPU temperature high: 82°C"),
    ]
    assert {x["timestamp"] for x in page["logs"]} == {iso(started + 90)}


def test_complete_progress_update(api: Any, started: float, job_id: str) -> None:
    r = fetch_post(api, f"/api/jobs/{job_id}/progress", COMPLETE_UPDATE)
    assert r.status_code == 200, r.text
    result = js(r)
    assert result["progress"] == 45
    assert result["timeRemaining"] == pytest.approx(EXPECTED_REMAINING, abs=1e-6)
    assert result["costSoFar"] == pytest.approx(EXPECTED_COST, abs=1e-6)

    monitor = js(api.get(f"/api/jobs/{job_id}/monitor"))
    assert monitor["metrics"]["latest"]["gpuMemoryUsed"] == 18000
    assert [x["message"] for x in monitor["logs"]] == [
        "Epoch 5/10 completed",
        "Loss: 0.0234, Accuracy: 98.5%",
    ]


def _get_gpu_metrics(nvidia_smi_stdout: str | None) -> dict[str, float] | None:
    """The seed's get_gpu_metrics(), with nvidia-smi's output given (None: not installed)."""
    try:
        if nvidia_smi_stdout is None:
            raise FileNotFoundError("nvidia-smi")
        values = nvidia_smi_stdout.strip().split(",")
        return {
            "gpuUtilization": float(values[0]),
            "gpuMemoryUsed": float(values[1]),
            "gpuMemoryTotal": float(values[2]),
            "gpuTemperature": float(values[3]),
            "powerUsage": float(values[4]),
        }
    except Exception:
        return None


@pytest.mark.parametrize("smi", [None, "87, 18000, 24000, 72, 350.25\n"], ids=["no-gpu", "gpu"])
def test_python_worker_training_loop(api: Any, clock: Any, smi: str | None, job_id: str) -> None:
    assert api.put(f"/api/jobs/{job_id}", json={"pricePerHour": 1.8}).status_code == 201
    t0 = clock()
    loss, acc = 0.0234, 98.5

    def report_progress(job_id: str, worker_id: str, progress: int, operation: str, logs=[]):  # noqa: B006
        metrics = _get_gpu_metrics(smi)
        data = {
            "workerId": worker_id,
            "progress": progress,
            "currentOperation": operation,
            "metrics": metrics,
            "logLines": logs,
        }
        response = api.post(f"/api/jobs/{job_id}/progress", json=data)
        assert response.status_code == 200, response.text
        return js(response)

    for epoch in range(10):
        progress = int((epoch + 1) / 10 * 100)
        operation = f"Training epoch {epoch + 1}/10"
        logs = [
            {"level": "info", "message": f"Epoch {epoch + 1} completed"},
            {"level": "info", "message": f"Loss: {loss:.4f}, Accuracy: {acc:.2f}%"},
        ]
        result = report_progress(job_id, WORKER, progress, operation, logs)
        assert result["progress"] == progress
        # 10 % every 10 s: after the first report the rate is 1 %/s; at the first,
        # nothing has elapsed, so the seed's average gives the documented minimum
        remaining = result.get("timeRemaining")
        if epoch == 0:
            assert remaining == 0.001
        else:
            assert remaining == pytest.approx(100 - progress, abs=1e-6)
        assert result["costSoFar"] == pytest.approx(10 * epoch / 3600 * 1.8, abs=1e-6)
        clock.advance(10)  # time.sleep(10)

    monitor = js(api.get(f"/api/jobs/{job_id}/monitor"))
    assert monitor["job"]["progress"] == 100
    assert monitor["job"]["currentOperation"] == "Training epoch 10/10"
    assert monitor["job"]["startedAt"] == iso(t0)
    assert monitor["timeRemaining"] == 0
    assert len(monitor["logs"]) == 20
    assert monitor["logs"][-1]["message"] == "Loss: 0.0234, Accuracy: 98.50%"
    if smi is None:  # metrics: None stores no sample
        assert monitor["metrics"] == {"latest": None, "history": []}
    else:
        assert monitor["metrics"]["latest"]["powerUsage"] == 350.25
        assert len(monitor["metrics"]["history"]) == 6  # 60 s window, samples 10 s apart


def test_python_worker_default_empty_logs(api: Any, seed_job: dict[str, Any], job_id: str) -> None:
    data = {
        "workerId": WORKER,
        "progress": 10,
        "currentOperation": "Training epoch 1/10",
        "metrics": None,
        "logLines": [],
    }
    r = api.post(f"/api/jobs/{job_id}/progress", json=data)
    assert r.status_code == 200, r.text
    assert js(r)["seq"] == 1  # no logs event for an empty list
    assert js(api.get(f"/api/jobs/{job_id}/logs"))["total"] == 0


# -- frontend side -----------------------------------------------------------------


def test_monitor_has_every_field_the_seed_reads(api: Any, started: float, job_id: str) -> None:
    assert fetch_post(api, f"/api/jobs/{job_id}/progress", COMPLETE_UPDATE).status_code == 200
    response = api.get(f"/api/jobs/{job_id}/monitor")
    assert response.status_code == 200
    data = js(response)

    assert data["job"]["status"] == "running"
    assert data["job"]["progress"] == 45
    assert data["job"]["currentOperation"] == "Training epoch 5/10"
    assert data["metrics"]["latest"]["gpuUtilization"] == 87
    assert data["metrics"]["latest"]["gpuTemperature"] == 72
    history = data["metrics"]["history"]
    assert history == [data["metrics"]["latest"]]
    assert [(x["level"], x["message"]) for x in data["logs"]] == [
        ("info", "Epoch 5/10 completed"),
        ("info", "Loss: 0.0234, Accuracy: 98.5%"),
    ]
    assert data["timeRemaining"] == pytest.approx(EXPECTED_REMAINING, abs=1e-6)
    assert data["costSoFar"] == pytest.approx(EXPECTED_COST, abs=1e-6)
    assert data["seq"] == 3


def test_monitor_before_any_metrics_has_null_latest(
    api: Any, seed_job: dict[str, Any], job_id: str
) -> None:
    data = js(api.get(f"/api/jobs/{job_id}/monitor"))
    assert data["metrics"] == {"latest": None, "history": []}  # `if (data.metrics.latest)`
    assert data["logs"] == []
    assert data["job"]["status"] == "pending"
    assert data["timeRemaining"] is None
    assert data["costSoFar"] is None


def test_metrics_for_charts(api: Any, clock: Any, seed_job: dict[str, Any], job_id: str) -> None:
    t0 = clock()
    for i in range(8):  # one sample every 10 s, 0..70 s
        if i:
            clock.advance(10)
        body = json.loads(json.dumps(WITH_GPU_METRICS))
        body["progress"] = 5 * (i + 1)
        body["metrics"]["gpuUtilization"] = 80 + i
        assert fetch_post(api, f"/api/jobs/{job_id}/progress", body).status_code == 200
    clock.advance(5)  # now = t0 + 75: the last 60 s hold the samples at 20..70 s

    response = api.get(f"/api/jobs/{job_id}/metrics?timeRange=60")
    assert response.status_code == 200
    data = js(response)
    assert data["jobId"] == job_id
    assert data["timeRange"] == 60
    chart_data = [
        {
            "timestamp": datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ"),
            "gpuUtilization": m["gpuUtilization"],
            "gpuTemperature": m["gpuTemperature"],
            "gpuMemoryUsed": m["gpuMemoryUsed"],
        }
        for m in data["metrics"]
    ]
    assert [m["timestamp"] for m in data["metrics"]] == [iso(t0 + s) for s in range(20, 80, 10)]
    assert [c["gpuUtilization"] for c in chart_data] == [82, 83, 84, 85, 86, 87]
    assert {c["gpuTemperature"] for c in chart_data} == {72}
    assert {c["gpuMemoryUsed"] for c in chart_data} == {18000}


def test_filtered_logs_and_pagination(api: Any, seed_job: dict[str, Any], job_id: str) -> None:
    lines = []
    for i in range(130):
        level = "warning" if i % 10 == 3 else ("error" if i % 10 == 7 else "info")
        lines.append({"level": level, "message": f"line {i}"})
    body = {"workerId": WORKER, "progress": 1, "logLines": lines}
    assert fetch_post(api, f"/api/jobs/{job_id}/progress", body).status_code == 200
    info = [x["message"] for x in lines if x["level"] == "info"]

    # Get info logs only
    data = js(api.get(f"/api/jobs/{job_id}/logs?level=info&limit=50"))
    assert {log["level"] for log in data["logs"]} == {"info"}
    assert [log["message"] for log in data["logs"]] == info[:50]
    assert data["total"] == len(info)
    for log in data["logs"]:  # console.log(`[${log.level}] ${log.timestamp}: ${log.message}`)
        assert isinstance(log["timestamp"], str) and log["timestamp"].endswith("Z")

    # Pagination
    page2 = api.get(f"/api/jobs/{job_id}/logs?limit=50&offset=50")
    assert page2.status_code == 200
    data2 = js(page2)
    assert [log["message"] for log in data2["logs"]] == [f"line {i}" for i in range(50, 100)]
    assert (data2["total"], data2["limit"], data2["offset"]) == (130, 50, 50)


# -- the WebSocket handler and the React component ---------------------------------


def test_ws_handler_reads_every_field(
    api: Any, started: float, ws_factory: Any, clock: Any, job_id: str
) -> None:
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": job_id})  # ws.onopen
    ack = recv(ws)
    assert ack == {"type": "subscribed", "subscriptionId": job_id, "seq": 1}

    assert fetch_post(api, f"/api/jobs/{job_id}/progress", COMPLETE_UPDATE).status_code == 200
    message = recv(ws)
    assert message["type"] == "JOB_PROGRESS"
    data = message["data"]
    progress, operation, metrics = data["progress"], data["currentOperation"], data["metrics"]
    assert progress == 45
    assert operation == "Training epoch 5/10"
    assert metrics["gpuUtilization"] == 87
    assert (metrics["gpuMemoryUsed"], metrics["gpuMemoryTotal"]) == (18000, 24000)
    assert metrics["gpuTemperature"] == 72
    assert metrics["powerUsage"] == 350
    assert data["timeRemaining"] == pytest.approx(EXPECTED_REMAINING, abs=1e-6)
    assert data["costSoFar"] == pytest.approx(EXPECTED_COST, abs=1e-6)

    message = recv(ws)
    assert message["type"] == "JOB_LOGS"
    logs = message["data"]["logs"]
    assert [(x["level"], x["message"]) for x in logs] == [
        ("info", "Epoch 5/10 completed"),
        ("info", "Loss: 0.0234, Accuracy: 98.5%"),
    ]

    clock.advance(10)
    r = api.post(
        f"/api/jobs/{job_id}/complete", json={"workerId": WORKER, "result": {"accuracy": 0.985}}
    )
    assert r.status_code == 200, r.text
    message = recv(ws)
    assert message["type"] == "JOB_COMPLETED"
    status, result = message["data"]["status"], message["data"]["result"]
    assert status == "completed"
    assert result == {"accuracy": 0.985}


def test_ws_progress_without_metrics_has_null_metrics(
    api: Any, started: float, ws_factory: Any, job_id: str
) -> None:
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": job_id})
    recv(ws)
    assert fetch_post(api, f"/api/jobs/{job_id}/progress", BASIC_PROGRESS).status_code == 200
    message = recv(ws)
    assert message["type"] == "JOB_PROGRESS"
    assert message["data"]["metrics"] is None  # `if (metrics)` skips the GPU widgets


def _react_flow(api: Any, ws_factory: Any, job_id: str) -> dict[str, Any]:
    """Run the React component's effect against the server; return its state."""
    data = js(api.get(f"/api/jobs/{job_id}/monitor"))
    state: dict[str, Any] = {
        "job": data["job"],
        "metrics": data["metrics"]["history"],
        "logs": data["logs"],
        "timeRemaining": data["timeRemaining"],
        "costSoFar": data["costSoFar"],
    }
    ws = ws_factory()
    ws.send({"type": "subscribe:job", "subscriptionId": job_id})
    assert recv(ws)["type"] == "subscribed"

    body = json.loads(json.dumps(COMPLETE_UPDATE))
    body["progress"] = 50
    body["currentOperation"] = "Training epoch 6/10"
    body["metrics"]["gpuUtilization"] = 91
    body["logLines"] = [{"level": "info", "message": "Epoch 6/10 completed"}]
    assert fetch_post(api, f"/api/jobs/{job_id}/progress", body).status_code == 200

    for _ in range(2):
        message = recv(ws)
        if message["type"] == "JOB_PROGRESS":
            d = message["data"]
            state["job"] = {
                **state["job"],
                "progress": d["progress"],
                "currentOperation": d["currentOperation"],
            }
            if d["metrics"]:
                state["metrics"] = [*state["metrics"][-29:], d["metrics"]]
            state["timeRemaining"] = d["timeRemaining"]
            state["costSoFar"] = d["costSoFar"]
        if message["type"] == "JOB_LOGS":
            state["logs"] = [*state["logs"], *message["data"]["logs"]]
    return state


def test_react_component_flow(api: Any, started: float, ws_factory: Any, job_id: str) -> None:
    assert fetch_post(api, f"/api/jobs/{job_id}/progress", COMPLETE_UPDATE).status_code == 200
    state = _react_flow(api, ws_factory, job_id)

    # the component's state now matches what a fresh /monitor says
    fresh = js(api.get(f"/api/jobs/{job_id}/monitor"))
    assert state["job"]["status"] == "running"
    assert state["job"]["progress"] == fresh["job"]["progress"] == 50
    assert state["job"]["currentOperation"] == fresh["job"]["currentOperation"]
    assert state["logs"] == fresh["logs"]
    assert [f"[{x['level']}] {x['message']}" for x in state["logs"]] == [
        "[info] Epoch 5/10 completed",
        "[info] Loss: 0.0234, Accuracy: 98.5%",
        "[info] Epoch 6/10 completed",
    ]
    assert state["timeRemaining"] == fresh["timeRemaining"]
    assert state["costSoFar"] == fresh["costSoFar"]
    assert [m["gpuUtilization"] for m in state["metrics"]] == [87, 91]
    assert [m["gpuTemperature"] for m in state["metrics"]] == [72, 72]


def test_react_chart_points_from_the_websocket_have_a_timestamp(
    api: Any, started: float, ws_factory: Any, job_id: str
) -> None:
    """The component appends ``message.data.metrics`` to the chart's data, whose
    ``<XAxis dataKey="timestamp" />`` reads ``timestamp``: a live point must have
    the same fields as a ``history`` point, or the chart's x axis breaks."""
    assert fetch_post(api, f"/api/jobs/{job_id}/progress", COMPLETE_UPDATE).status_code == 200
    state = _react_flow(api, ws_factory, job_id)
    history_point, live_point = state["metrics"]
    assert set(live_point) >= set(history_point)
    assert isinstance(live_point["timestamp"], str)
