"""How the server reads a request, over HTTP on both backends: a request without
a body, a body in a content coding the server does not decode, a query
parameter given twice, and negative zero in any number it stores or echoes.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.contract.helpers import error_of, fields, js, snapshot

ADMIN = "admin-token-0123456789abcdef"
NEGATIVE_ZERO = re.compile(rb"-0(?:\.0+)?(?:[eE][-+]?[0-9]+)?(?=[,}\]\s])")
"""A JSON number that is negative zero (``-0``, ``-0.0``, ``-0e3``)."""


def raw_request(base: str, head: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """Send ``head`` (request line and headers, no body) as it is, with no
    ``Content-Length`` unless ``head`` has one (as ``curl -X POST`` does);
    the status and the JSON answer."""
    url = urlsplit(base)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"{head}\r\nHost: {url.netloc}\r\n{auth}Connection: close\r\n\r\n".encode("latin-1")
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    status = int(answer.split(b" ", 2)[1])
    body = answer.split(b"\r\n\r\n", 1)[1]
    return status, requests.models.complexjson.loads(body)


# -- a request without a body ------------------------------------------------------


@pytest.mark.parametrize("length", ["", "Content-Length: 0\r\n"], ids=["no-length", "length-0"])
def test_a_request_without_a_body_is_an_empty_object(
    api: Any, server: EmbeddedServer, job_id: str, length: str
) -> None:
    """``curl -X POST .../api/jobs``: every field of a new job is optional."""
    status, answer = raw_request(server.url, f"POST /api/jobs HTTP/1.1\r\n{length}".rstrip())
    assert status == 201, answer
    assert answer["job"]["status"] == "pending"
    status, answer = raw_request(
        server.url, f"PUT /api/jobs/{job_id} HTTP/1.1\r\n{length}".rstrip()
    )
    assert status == 201, answer
    assert answer["job"]["id"] == job_id


def test_no_body_with_any_content_type_is_still_no_body(api: Any, job_id: str) -> None:
    r = api.put(f"/api/jobs/{job_id}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("path", "required"),
    [("progress", ["workerId", "progress"]), ("complete", ["workerId"])],
)
def test_no_body_where_fields_are_required_is_400_naming_them(
    api: Any, server: EmbeddedServer, job: str, path: str, required: list[str]
) -> None:
    before = snapshot(api, job)
    status, answer = raw_request(server.url, f"POST /api/jobs/{job}/{path} HTTP/1.1")
    assert status == 400, answer
    assert answer["error"]["code"] == "validation_error"
    assert sorted(d["field"] for d in answer["error"]["details"]) == sorted(required)
    assert all(d["message"] == "is required" for d in answer["error"]["details"])
    assert snapshot(api, job) == before


# -- content codings ---------------------------------------------------------------

BODIES = [
    ("POST", "/api/jobs", {"name": "x"}),
    ("PUT", "/api/jobs/{job}", {"name": "x"}),
    ("POST", "/api/jobs/{job}/progress", {"workerId": "w", "progress": 5}),
    ("POST", "/api/jobs/{job}/complete", {"workerId": "w"}),
]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "x-gzip", "identity, gzip"])
@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[m + p for m, p, _ in BODIES])
def test_a_body_in_a_content_coding_is_415_naming_identity(
    api: Any, job: str, coding: str, method: str, path: str, body: dict[str, Any]
) -> None:
    """RFC 9110, section 15.5.16: 415 for a content coding the server does not decode."""
    before = snapshot(api, job)
    r = api.session.request(
        method,
        api.base + path.format(job=job),
        json=body,
        headers={"Content-Encoding": coding},
        timeout=10,
    )
    error = error_of(r, 415, "unsupported_media_type")
    assert "Content-Encoding" in error["message"] and "identity" in error["message"]
    assert r.headers["Accept-Encoding"] == "identity"
    assert snapshot(api, job) == before


def test_identity_is_the_one_content_coding_taken(api: Any, job: str) -> None:
    r = api.post(
        f"/api/jobs/{job}/progress",
        json={"workerId": "w", "progress": 5},
        headers={"Content-Encoding": "Identity"},
    )
    assert r.status_code == 200, r.text


# -- query parameters given twice --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "param"),
    [
        ("/api/jobs", "limit=1&limit=3", "limit"),
        ("/api/jobs", "status=running&status=failed", "status"),
        ("/api/jobs", "offset=0&offset=0", "offset"),
        ("/api/jobs/{job}/logs", "level=info&level=error", "level"),
        ("/api/jobs/{job}/logs", "limit=5&beforeId=3&beforeId=4", "beforeId"),
        ("/api/jobs/{job}/metrics", "timeRange=60&timeRange=120", "timeRange"),
        ("/api/jobs/{job}/metrics", "timeRange=60&time_range=120", "timeRange"),
        ("/api/jobs/{job}/scalars", "names=loss&names=acc", "names"),
        ("/api/jobs/{job}/alerts", "offset=1&limit=2&offset=3", "offset"),
        ("/api/costs", "by=name&by=provider", "by"),
    ],
)
def test_a_query_parameter_given_twice_is_400_naming_it(
    api: Any, job: str, path: str, query: str, param: str
) -> None:
    r = api.get(f"{path.format(job=job)}?{query}")
    error = error_of(r, 400, "validation_error")
    assert fields(error) == [param]
    assert "more than once" in error["details"][0]["message"]


def test_unknown_parameters_are_ignored_even_when_repeated(api: Any, job: str) -> None:
    r = api.get(f"/api/jobs/{job}/logs?_=1&_=2&limit=5")
    assert r.status_code == 200, r.text
    assert js(r)["limit"] == 5


# -- negative zero -----------------------------------------------------------------


def test_negative_zero_is_stored_and_echoed_as_zero(api: Any, job_id: str) -> None:
    """JavaScript writes -0 as 0 (JSON.stringify(-0) is "0"); so does the server,
    whatever number field it came in."""
    created = api.post(
        "/api/jobs",
        json={"id": job_id, "pricePerHour": -0.0, "budget": -0.0, "config": {"a": [-0.0]}},
    )
    assert created.status_code == 201, created.text
    update = {
        "workerId": "w",
        "progress": -0.0,
        "metrics": {"gpuUtilization": -0.0, "gpuTemperature": -0.0, "powerUsage": -0.0},
        "scalars": {"step": 0, "values": {"loss": -0.0}},
        "nodePricePerHour": -0.0,
    }
    answers = [created, api.post(f"/api/jobs/{job_id}/progress", json=update)]
    answers.append(
        api.post(f"/api/jobs/{job_id}/complete", json={"workerId": "w", "result": {"r": -0.0}})
    )
    for path in ("", "/monitor", "/metrics", "/scalars", "/receipt"):
        answers.append(api.get(f"/api/jobs/{job_id}{path}"))
    for r in answers:
        assert r.status_code in (200, 201), r.text
        assert not NEGATIVE_ZERO.search(r.content), r.text
    job = js(answers[-5])["job"]
    assert job["config"] == {"a": [0.0]}
    assert job["result"] == {"r": 0.0}


# -- the admin API -----------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_server() -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(config={"WRITE_TOKEN": ADMIN, "STALL_CHECK_INTERVAL": 0})
    yield srv
    srv.stop()


def test_admin_bodies_follow_the_same_rules(admin_server: EmbeddedServer) -> None:
    base = admin_server.url
    status, answer = raw_request(base, "PUT /api/admin/tenants/acme HTTP/1.1", ADMIN)
    assert status == 201, answer
    status, answer = raw_request(base, "POST /api/admin/tokens HTTP/1.1", ADMIN)
    assert status == 400, answer
    assert [d["field"] for d in answer["error"]["details"]] == ["kind"]
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Encoding": "gzip"}
    r = requests.put(f"{base}/api/admin/tenants/acme", json={}, headers=headers, timeout=10)
    assert r.status_code == 415, r.text
    r = requests.get(
        f"{base}/api/admin/tokens?tenant=acme&tenant=other",
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert r.status_code == 400, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["tenant"]


def test_a_websocket_token_given_twice_is_400(admin_server: EmbeddedServer) -> None:
    r = requests.get(f"{admin_server.url}/ws?token={ADMIN}&token={ADMIN}", timeout=10)
    assert r.status_code == 400, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["token"]
