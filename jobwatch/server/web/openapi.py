"""The API described for other languages' clients: OpenAPI 3.1 and AsyncAPI 3.0.

Both documents are generated from the pydantic models that validate requests
(:mod:`jobwatch.contract.requests`) and describe answers (:mod:`jobwatch.server.web.answers`),
so they cannot drift from what the server checks and sends. Served at
``GET /api/openapi.json`` and ``GET /api/asyncapi.json`` (readable with the read
token when tokens are on).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from jobwatch._version import __version__
from jobwatch.contract.admin import ShareSpec, TenantSpec, TokenSpec
from jobwatch.contract.costs import CostsQuery
from jobwatch.contract.requests import (
    JOB_ID_PATTERN,
    CompleteRequest,
    JobSpec,
    JobsQuery,
    LogsQuery,
    MetricsQuery,
    Page,
    ProgressUpdate,
    ScalarsQuery,
    SubscribeJobsMessage,
    SubscribeMessage,
    UnsubscribeJobsMessage,
    UnsubscribeMessage,
)
from jobwatch.server.web import admin_answers, answers
from jobwatch.server.web.api import json_response

bp = Blueprint("openapi", __name__, url_prefix="/api")

_REF = "#/components/schemas/{model}"
_REQUESTS: tuple[type[BaseModel], ...] = (
    JobSpec,
    ProgressUpdate,
    CompleteRequest,
    TenantSpec,
    TokenSpec,
    ShareSpec,
)
_ANSWERS: tuple[type[BaseModel], ...] = (
    answers.JobAnswer,
    answers.JobList,
    answers.ProgressAnswer,
    answers.MonitorAnswer,
    answers.MetricsAnswer,
    answers.ScalarsAnswer,
    answers.LogsAnswer,
    answers.WorkersAnswer,
    answers.AlertsAnswer,
    answers.ReceiptAnswer,
    answers.CostsAnswer,
    answers.Health,
    answers.Ready,
    answers.ErrorEnvelope,
    *admin_answers.ANSWERS,
)
_ERRORS = {
    "400": "Bad input: `validation_error` (with `details`: a bad field or query parameter, "
    "or a query parameter given more than once) or `invalid_json`",
    "415": "`unsupported_media_type`: the body's `Content-Type` is not JSON "
    "(`application/json` or a `+json` type), or its `Content-Encoding` is not `identity` "
    "(the answer's `Accept-Encoding: identity` says so)",
    "401": "`unauthorized`: the server needs a token (docs/deployment.md)",
    "403": "`worker_mismatch`: the job is bound to another worker (or a PUT would "
    "change it without its workerId); `forbidden`: the token may not do this "
    "(a tenant's id outside its namespace, the admin API without the admin token, "
    "a listing with a worker or share token)",
    "404": "`job_not_found`",
    "409": "`job_exists` (POST /api/jobs) or `job_finished` (a write that would change "
    "a finished job)",
    "413": "`payload_too_large`: the body is over 1 MiB",
    "507": "`quota_exceeded`: a quota of the server or of the token's tenant",
    "429": "`rate_limited`: too many updates from this worker (see `Retry-After`)",
    "503": "`store_unavailable`: the database cannot be reached; nothing was written "
    "(see `Retry-After`); on `/api/ready` also `broker_unavailable`: the subscription "
    "to Redis is down",
}


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 document of the REST API."""
    return json_response(openapi_document())


@bp.get("/asyncapi.json")
def asyncapi_json() -> Response:
    """The AsyncAPI 3.0 document of the WebSocket at ``/ws``."""
    return json_response(asyncapi_document())


def _schemas(
    inputs: tuple[type[BaseModel], ...], outputs: tuple[type[BaseModel], ...]
) -> dict[str, Any]:
    """The JSON Schemas (by wire names) of what clients send (``inputs``, as validated)
    and what they receive (``outputs``, as serialised), and of every model they use."""
    validation: JsonSchemaMode = "validation"
    serialization: JsonSchemaMode = "serialization"
    models = [(m, validation) for m in inputs] + [(m, serialization) for m in outputs]
    _, top = models_json_schema(models, ref_template=_REF, by_alias=True)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document: every path, parameter, body, answer and error.

    Returns
    -------
    dict
        JSON-ready; generated once per process from the pydantic models.
    """
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobwatch",
            "version": __version__,
            "description": "Live progress, time remaining, cost, GPU metrics and logs of "
            "machine-learning jobs. Units: percent, MB, degrees Celsius, watts, seconds, "
            "the job's currency. Live events stream over the WebSocket at /ws, "
            "described by /api/asyncapi.json.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(_REQUESTS, _ANSWERS),
            "responses": {
                code: _json_answer("ErrorEnvelope", text) for code, text in _ERRORS.items()
            },
            "parameters": {"jobId": _job_id_parameter()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Needed only when the server has tokens: the admin "
                    "token may do everything; a tenant's write token reads and writes its "
                    "jobs, its read token reads them; a worker token reports to one job; a "
                    "share link's token reads one job (docs/server.md).",
                }
            },
        },
        "security": [{}, {"bearer": []}],
    }


def _paths() -> dict[str, Any]:
    job = {"$ref": "#/components/parameters/jobId"}
    return {
        "/api/health": {
            "get": _operation("health", "Liveness and version", "Health", (), security=False)
        },
        "/api/ready": {
            "get": _operation(
                "ready",
                "Readiness: the database (and Redis) answer",
                "Ready",
                ("503",),
                security=False,
            )
        },
        "/api/jobs": {
            "post": _operation(
                "createJob",
                "Create a job",
                "JobAnswer",
                ("400", "401", "409"),
                body="JobSpec",
                status="201",
            ),
            "get": _operation(
                "listJobs",
                "List jobs, newest first",
                "JobList",
                ("400", "401"),
                query=JobsQuery,
            ),
        },
        "/api/jobs/{jobId}": {
            "parameters": [job],
            "get": _operation("getJob", "Read a job", "JobAnswer", ("401", "404")),
            "put": _operation(
                "putJob",
                "Create (201) or update (200) a job; idempotent",
                "JobAnswer",
                ("400", "401", "403", "409"),
                body="JobSpec",
                also_created=True,
            ),
        },
        "/api/jobs/{jobId}/progress": {
            "parameters": [job],
            "post": _operation(
                "postProgress",
                "Report progress, metrics, logs and training metrics",
                "ProgressAnswer",
                ("400", "401", "403", "404", "409", "429", "503"),
                body="ProgressUpdate",
            ),
        },
        "/api/jobs/{jobId}/complete": {
            "parameters": [job],
            "post": _operation(
                "completeJob",
                "Finish a job",
                "JobAnswer",
                ("400", "401", "403", "404", "409", "503"),
                body="CompleteRequest",
            ),
        },
        "/api/jobs/{jobId}/monitor": {
            "parameters": [job],
            "get": _operation(
                "monitor", "Everything a viewer needs to start", "MonitorAnswer", ("401", "404")
            ),
        },
        "/api/jobs/{jobId}/metrics": {
            "parameters": [job],
            "get": _operation(
                "metrics",
                "GPU samples of a time window",
                "MetricsAnswer",
                ("400", "401", "404"),
                query=MetricsQuery,
            ),
        },
        "/api/jobs/{jobId}/scalars": {
            "parameters": [job],
            "get": _operation(
                "scalars",
                "Training-metric history",
                "ScalarsAnswer",
                ("400", "401", "404"),
                query=ScalarsQuery,
            ),
        },
        "/api/jobs/{jobId}/alerts": {
            "parameters": [job],
            "get": _operation(
                "alerts",
                "One page of alerts, oldest first",
                "AlertsAnswer",
                ("400", "401", "404"),
                query=Page,
            ),
        },
        "/api/jobs/{jobId}/receipt": {
            "parameters": [job],
            "get": _operation(
                "receipt",
                "What the job cost and what it got: duration, cost, budget, GPU hours, "
                "training metrics, time lost to hangs and stalls",
                "ReceiptAnswer",
                ("401", "404"),
            ),
        },
        "/api/jobs/{jobId}/workers": {
            "parameters": [job],
            "get": _operation(
                "workers",
                "The workers of a job: each rank of a distributed job",
                "WorkersAnswer",
                ("401", "404"),
            ),
        },
        "/api/jobs/{jobId}/logs": {
            "parameters": [job],
            "get": _operation(
                "logs",
                "One page of log lines, oldest first",
                "LogsAnswer",
                ("400", "401", "404"),
                query=LogsQuery,
            ),
        },
        "/api/costs": {
            "get": _operation(
                "costs",
                "Spend per day and per group (provider, tenant or name) over the jobs the "
                "token may read, finished and running alike (docs/api.md says what is counted)",
                "CostsAnswer",
                ("400", "401", "403"),
                query=CostsQuery,
            )
        },
        "/api/prometheus": {
            "get": {
                "operationId": "prometheus",
                "summary": "Running jobs and server figures in Prometheus' text format "
                "(docs/server.md lists the series)",
                "responses": {
                    "200": {
                        "description": "Text exposition format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {"$ref": "#/components/responses/401"},
                },
            }
        },
        **_admin_paths(job),
        "/api/openapi.json": {"get": _document_operation("openapi", "This document")},
        "/api/asyncapi.json": {
            "get": _document_operation("asyncapi", "The WebSocket's AsyncAPI 3.0 document")
        },
    }


def _admin_paths(job: dict[str, Any]) -> dict[str, Any]:
    """The admin API (admin token only) and a job's share links."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    token_id = {"name": "tokenId", "in": "path", "required": True, "schema": {"type": "string"}}
    share_id = {"name": "shareId", "in": "path", "required": True, "schema": {"type": "string"}}
    admin_errors = ("401", "403")
    return {
        "/api/admin/tenants": {
            "get": _operation("listTenants", "Every tenant", "TenantList", admin_errors)
        },
        "/api/admin/tenants/{name}": {
            "parameters": [name],
            "put": _operation(
                "putTenant",
                "Create (201) a tenant or set its quotas (200)",
                "TenantAnswer",
                ("400", *admin_errors, "409"),
                body="TenantSpec",
                also_created=True,
            ),
        },
        "/api/admin/tokens": {
            "get": _operation("listTokens", "Tokens, oldest first", "TokenList", admin_errors),
            "post": _operation(
                "createToken",
                "Make a token; its secret is shown only in this answer",
                "TokenCreated",
                ("400", *admin_errors),
                body="TokenSpec",
                status="201",
            ),
        },
        "/api/admin/tokens/{tokenId}": {
            "parameters": [token_id],
            "delete": _operation(
                "revokeToken", "Revoke a token", "TokenAnswer", (*admin_errors, "404")
            ),
        },
        "/api/jobs/{jobId}/shares": {
            "parameters": [job],
            "get": _operation(
                "listShares", "A job's share links", "ShareList", ("401", "403", "404")
            ),
            "post": _operation(
                "shareJob",
                "Share a job read-only with a link that expires",
                "ShareCreated",
                ("400", "401", "403", "404"),
                body="ShareSpec",
                status="201",
            ),
        },
        "/api/jobs/{jobId}/shares/{shareId}": {
            "parameters": [job, share_id],
            "delete": _operation(
                "revokeShare", "Revoke a share link", "ShareAnswer", ("401", "403", "404")
            ),
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    answer: str,
    errors: tuple[str, ...],
    *,
    body: str | None = None,
    query: type[BaseModel] | None = None,
    status: str = "200",
    also_created: bool = False,
    security: bool = True,
) -> dict[str, Any]:
    """One operation: its body, query parameters, answer and error answers (an
    operation with a body may also answer 413 and 415, as every body is read alike)."""
    responses: dict[str, Any] = {status: _json_answer(answer, summary)}
    if also_created:
        responses["201"] = _json_answer(answer, "Created")
    body_errors = ("413", "415") if body is not None else ()
    for code in sorted({*errors, *body_errors}):
        responses[code] = {"$ref": f"#/components/responses/{code}"}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": responses,
    }
    if body is not None:
        model = next(m for m in _REQUESTS if m.__name__ == body)
        operation["requestBody"] = {
            # Without a body a request reads as {}: optional where every field is.
            "required": any(f.is_required() for f in model.model_fields.values()),
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=body)}}},
        }
    if query is not None:
        operation["description"] = inspect.cleandoc(query.__doc__ or "")
        operation["parameters"] = _query_parameters(query)
    if not security:
        operation["security"] = [{}]
    return operation


def _document_operation(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "responses": {
            "200": {
                "description": summary,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "401": {"$ref": "#/components/responses/401"},
        },
    }


def _json_answer(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
    }


def _job_id_parameter() -> dict[str, Any]:
    return {
        "name": "jobId",
        "in": "path",
        "required": True,
        "description": "1-128 characters of letters, digits and . _ : @ -, "
        "starting with a letter or digit",
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of a query model, by their URL names."""
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _not_null(prop),
        }
        for name, prop in schema["properties"].items()
    ]


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its ``null`` branch: a query parameter is absent, never null."""
    branches = [b for b in schema.get("anyOf", ()) if b.get("type") != "null"]
    if not branches:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and (k, v) != ("default", None)}
    return {**rest, **branches[0]} if len(branches) == 1 else {**rest, "anyOf": branches}


@functools.cache
def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``/ws``: what a client sends and every message it gets.

    Returns
    -------
    dict
        JSON-ready; message payloads are JSON Schemas generated from the models.
    """
    sent = (SubscribeMessage, UnsubscribeMessage, SubscribeJobsMessage, UnsubscribeJobsMessage)
    received = answers.SERVER_MESSAGES
    messages = {
        m.__name__: {
            "name": m.__name__,
            "summary": (m.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": _REF.format(model=m.__name__)},
        }
        for m in sent + received
    }
    channel = {"$ref": "#/channels/jobs"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "jobwatch live events",
            "version": __version__,
            "description": "Subscribe to a job on /ws and receive its events in seq order. "
            "The REST API is described by /api/openapi.json.",
        },
        "channels": {
            "jobs": {
                "address": "/ws",
                "description": "Opened by a WebSocket upgrade (GET with `Upgrade: websocket`, "
                "`Sec-WebSocket-Version: 13`). A request without one answers 426 "
                "`upgrade_required` in the REST error shape, with `Upgrade: websocket` "
                "(RFC 9110, section 15.5.22); a repeated `?token=` answers 400.",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "send": {
                "action": "receive",
                "summary": "Messages the server accepts from a client",
                "channel": channel,
                "messages": [{"$ref": f"#/channels/jobs/messages/{m.__name__}"} for m in sent],
            },
            "receive": {
                "action": "send",
                "summary": "Messages the server sends to a client",
                "channel": channel,
                "messages": [{"$ref": f"#/channels/jobs/messages/{m.__name__}"} for m in received],
            },
        },
        "components": {"messages": messages, "schemas": _schemas(sent, received)},
    }
