"""Property-based fuzzing of every endpoint and WebSocket message (hypothesis).

Whatever arrives: never a 5xx, always strict JSON (no NaN/Infinity), errors in
the one envelope, and a refused request changes nothing stored.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

import pytest
import requests
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobwatch.server import EmbeddedServer

pytestmark = pytest.mark.slow  # thousands of requests: seconds to a minute per test

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
"""Hypothesis's default of 100 examples per test."""
JOB = "fuzz-job"
HTTP = requests.Session()
"""One kept-alive connection for the module's thousands of requests (a new one each
was most of its time); closed with the module's server."""
WORKER = "fuzz-worker"


def _strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def base():
    # no stall watchdog: this module runs for minutes, and a stall would add events
    with EmbeddedServer(config={"STALL_CHECK_INTERVAL": 0}) as server:
        HTTP.put(f"{server.url}/api/jobs/{JOB}", json={"pricePerHour": 1.0}, timeout=5)
        HTTP.post(
            f"{server.url}/api/jobs/{JOB}/progress",
            json={"workerId": WORKER, "progress": 1, "metrics": {"gpuUtilization": 1}},
            timeout=5,
        )
        yield server
    HTTP.close()


def _snapshot(url: str) -> tuple[Any, ...]:
    job = HTTP.get(f"{url}/api/jobs/{JOB}", timeout=5).json()["job"]
    logs = HTTP.get(f"{url}/api/jobs/{JOB}/logs", timeout=5).json()["total"]
    samples = len(
        HTTP.get(f"{url}/api/jobs/{JOB}/metrics?timeRange=86400", timeout=5).json()["metrics"]
    )
    return job["seq"], job["progress"], job["currentOperation"], job["status"], logs, samples


def _check(response: requests.Response) -> Any:
    assert response.status_code < 500, response.text
    body = _strict(response.text)
    if response.status_code >= 400:
        error = body["error"]
        assert set(error) == {"code", "message", "details"} and error["message"]
    return body


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([4294967295, 9.2e18, -1, 0, 100, 100.0001, 1e308]),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
metric_values = st.one_of(scalars, st.just("NaN"))
metrics = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            name: metric_values
            for name in (
                "gpuUtilization",
                "gpuMemoryUsed",
                "gpuMemoryTotal",
                "gpuTemperature",
                "powerUsage",
            )
        },
    ),
)
log_lines = st.one_of(
    st.none(),
    json_values,
    st.lists(
        st.fixed_dictionaries(
            {
                "level": st.one_of(
                    st.sampled_from(["info", "WARNING", "Error", "debug", ""]), scalars
                ),
                "message": st.one_of(st.text(max_size=60), scalars),
            },
            optional={
                "timestamp": st.one_of(st.text(max_size=30), st.just("9999-12-31T00:00:00Z"))
            },
        ),
        max_size=5,
    ),
)
progress_bodies = st.fixed_dictionaries(
    {},
    optional={
        "workerId": st.one_of(st.just("someone-else"), scalars),
        "progress": scalars,
        "currentOperation": scalars,
        "metrics": metrics,
        "logLines": log_lines,
        "timestamp": st.one_of(scalars, st.just("2026-01-01T00:00:00Z")),
    },
)


@FUZZ
@given(body=progress_bodies)
def test_progress_never_fails_and_refusals_change_nothing(base, body):
    before = _snapshot(base.url)
    text = json.dumps(body).replace('"NaN"', "NaN")  # real NaN tokens too
    response = HTTP.post(
        f"{base.url}/api/jobs/{JOB}/progress",
        data=text,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    _check(response)
    if response.status_code >= 400:
        assert _snapshot(base.url) == before


@FUZZ
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/json; charset=latin-1"]
    ),
)
def test_raw_bytes_to_every_write_endpoint(base, raw, content_type):
    before = _snapshot(base.url)
    for method, path in (
        ("POST", f"/api/jobs/{JOB}/progress"),
        ("POST", f"/api/jobs/{JOB}/complete"),
        ("PUT", f"/api/jobs/{JOB}"),
        ("POST", "/api/jobs"),
    ):
        response = HTTP.request(
            method, base.url + path, data=raw, headers={"Content-Type": content_type}, timeout=5
        )
        _check(response)
        if response.status_code >= 400:
            assert _snapshot(base.url) == before


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["limit", "offset", "level", "timeRange", "maxPoints", "beforeId", "status", "since"]
        ),
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(["0", "-1", "abc", "1e12", "nan", "inf", "1000", "1001", "2"]),
        ),
        max_size=4,
    ),
    path=st.sampled_from(
        [
            "/api/jobs",
            f"/api/jobs/{JOB}/logs",
            f"/api/jobs/{JOB}/metrics",
            f"/api/jobs/{JOB}/monitor",
        ]
    ),
)
def test_query_parameters(base, params, path):
    _check(HTTP.get(base.url + path, params=params, timeout=5))


@FUZZ
@given(job_id=st.text(min_size=1, max_size=300))
def test_odd_job_ids(base, job_id):
    quoted = quote(job_id, safe="")
    for suffix in ("", "/monitor", "/logs", "/metrics"):
        _check(HTTP.get(f"{base.url}/api/jobs/{quoted}{suffix}", timeout=5))
    before = _snapshot(base.url)
    _check(
        HTTP.post(
            f"{base.url}/api/jobs/{quoted}/progress",
            json={"workerId": "w", "progress": 1},
            timeout=5,
        )
    )
    assert _snapshot(base.url) == before


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "id": scalars,
            "name": scalars,
            "pricePerHour": scalars,
            "currency": scalars,
            "workerId": scalars,
            "providerId": scalars,
        },
    )
)
def test_job_creation(base, body):
    response = HTTP.post(f"{base.url}/api/jobs", json=body, timeout=5)
    created = _check(response)
    if response.status_code == 201:
        price = created["job"]["pricePerHour"]
        assert price is None or (math.isfinite(price) and price >= 0)


@FUZZ
@given(
    message=st.one_of(
        json_values.map(json.dumps),
        st.text(max_size=80),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["subscribe:job", "unsubscribe:job", "nope"])},
            optional={"subscriptionId": scalars, "since": scalars},
        ).map(json.dumps),
    )
)
def test_websocket_messages(base, message):
    ws = websocket.create_connection(base.ws_url, timeout=5)
    try:
        ws.send(message)
        answer = _strict(ws.recv())
        assert answer["type"] in {"error", "subscribed", "unsubscribed"}
        if answer["type"] == "error":
            assert answer["error"]["code"] and answer["error"]["message"]
        ws.send(
            json.dumps({"type": "subscribe:job", "subscriptionId": JOB})
        )  # still open and working
        while (reply := _strict(ws.recv()))["type"] != "subscribed":
            assert reply["type"] in {
                "JOB_PROGRESS",
                "JOB_LOGS",
                "unsubscribed",
                "subscribed",
                "error",
            }
    finally:
        ws.close()
