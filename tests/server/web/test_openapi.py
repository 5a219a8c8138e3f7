"""The OpenAPI and AsyncAPI documents: valid, complete, and true of a live server.

schemathesis sends generated requests (valid and invalid) to a real threaded
server on loopback and checks every answer against the document: no 5xx, only
documented status codes and content types, and bodies that match their schemas.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from jobwatch.server import EmbeddedServer
from jobwatch.server.web.openapi import asyncapi_document, openapi_document
from tests.conftest import Api, WsClient

EXAMPLES = 30
"""Generated requests per operation and mode (positive, negative); bounded to stay fast."""
KNOWN_JOB = "known-job"


def test_served_document_is_valid_openapi_3_1(api: Api) -> None:
    response = api.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def test_document_covers_every_route(server: EmbeddedServer) -> None:
    documented = {
        (path, method.upper())
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    routes = set()
    for rule in server.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + _camel(m[1]) + "}", rule.rule)
        routes |= {(path, m) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert routes == documented


def test_request_schemas_name_the_wire_fields() -> None:
    schemas = openapi_document()["components"]["schemas"]
    progress = schemas["ProgressUpdate"]
    assert progress["required"] == ["workerId", "progress"]
    assert {"updateId", "scalars", "logLines", "currentOperation"} <= progress["properties"].keys()
    resumed = progress["properties"]["resumedFrom"]
    assert "resume" in resumed["description"]
    assert {"minimum": 0, "maximum": 100}.items() <= resumed["anyOf"][0].items()
    logs = openapi_document()["paths"]["/api/jobs/{jobId}/logs"]["get"]["parameters"]
    assert {p["name"] for p in logs} == {"level", "limit", "offset", "beforeId", "rank", "node"}


# -- AsyncAPI -------------------------------------------------------------------


def _message_validators() -> dict[str, Draft202012Validator]:
    document = asyncapi_document()
    registry: Registry[Any] = Registry().with_resource(
        "urn:asyncapi", DRAFT202012.create_resource(document)
    )
    validators = {}
    for name, message in document["components"]["messages"].items():
        schema = {"$ref": "urn:asyncapi" + message["payload"]["$ref"]}
        validators[name] = Draft202012Validator(schema, registry=registry)
    return validators


def test_asyncapi_payloads_are_valid_json_schemas(api: Api) -> None:
    document = api.get("/api/asyncapi.json").json()
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["jobs"]["address"] == "/ws"
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for operation in document["operations"].values():
        for ref in operation["messages"]:
            name = ref["$ref"].rsplit("/", 1)[-1]
            assert name in document["components"]["messages"]


def test_every_socket_message_matches_the_asyncapi_document(
    api: Api, ws_factory: Callable[[], WsClient], make_job: Callable[..., dict[str, Any]]
) -> None:
    validators = _message_validators()
    sends = asyncapi_document()["operations"]["send"]["messages"]
    client_sent = [ref["$ref"].rsplit("/", 1)[-1] for ref in sends]
    job = make_job(name="doc", pricePerHour=2.0)
    ws = ws_factory()
    sent = [
        {"type": "subscribe:job", "subscriptionId": job["id"]},
        {"type": "subscribe:job", "subscriptionId": "no-such-job"},
        {"type": "subscribe:jobs"},
        {"type": "bogus"},
    ]
    for message in sent:
        valid = any(validators[name].is_valid(message) for name in client_sent)
        assert valid == (message["type"] != "bogus")
        ws.send(message)
    body = {
        "workerId": "w",
        "progress": 10,
        "currentOperation": "epoch 1",
        "metrics": {"gpuUtilization": 50, "gpus": [{"index": 0, "gpuUtilization": 50}]},
        "logLines": [{"level": "INFO", "message": "hello"}],
        "scalars": {"step": 1, "values": {"loss": 0.5}},
        "updateId": "u-1",
        "alerts": [{"title": "loss spiked", "level": "warning"}],
    }
    # the job's subscription is live before the job moves (no since: no replay)
    received = ws.recv_until(
        lambda m: m["type"] == "subscribed" and m.get("subscriptionId") == job["id"]
    )
    assert api.post(f"/api/jobs/{job['id']}/progress", json=body).status_code == 200
    assert api.post(f"/api/jobs/{job['id']}/complete", json={"workerId": "w"}).status_code == 200
    # every event first: an unsubscribe drops what the socket has not sent yet
    received += ws.recv_until(lambda m: m["type"] == "JOB_COMPLETED")
    ws.send({"type": "unsubscribe:job", "subscriptionId": job["id"]})
    received += ws.recv_until(lambda m: m["type"] == "unsubscribed")
    kinds = {m["type"] for m in received}
    assert {
        "subscribed",
        "error",
        "JOB_PROGRESS",
        "JOB_LOGS",
        "JOB_ALERT",
        "JOB_COMPLETED",
    } <= kinds
    server_messages = [n for n in validators if n not in client_sent]
    for message in received:
        matching = [n for n in server_messages if validators[n].is_valid(message)]
        assert len(matching) == 1, (message, matching)


# -- schemathesis against a live server -----------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[EmbeddedServer]:
    """One server for every generated request, with a job the requests can find."""
    server = EmbeddedServer(config={"DATABASE": ":memory:"})
    base = server.url
    requests.put(f"{base}/api/jobs/{KNOWN_JOB}", json={"pricePerHour": 1.0}, timeout=10)
    requests.post(
        f"{base}/api/jobs/{KNOWN_JOB}/progress",
        json={"workerId": "w", "progress": 5, "metrics": {"gpuUtilization": 1},
              "logLines": [{"level": "info", "message": "x"}],
              "scalars": {"step": 0, "values": {"loss": 1.0}}},
        timeout=10,
    )  # fmt: skip
    yield server
    server.stop()


schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_live_server_answers_as_documented(case: Any, live: EmbeddedServer) -> None:
    # Half the valid requests name a real job, so answers other than 404 are checked too.
    drawn = json.dumps([case.body, case.query, case.path_parameters], default=str)
    positive = case.meta is None or case.meta.generation.mode.is_positive
    if "jobId" in (case.path_parameters or {}) and positive and zlib.crc32(drawn.encode()) % 2:
        case.path_parameters["jobId"] = KNOWN_JOB
    case.call_and_validate(
        base_url=live.url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
        timeout=10,
    )
