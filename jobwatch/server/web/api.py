"""The REST blueprint: every ``/api`` endpoint of docs/api.md."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.wsgi import get_input_stream

from jobwatch._version import __version__
from jobwatch.contract.requests import (
    FINISHED_STATUSES,
    MAX_BODY_BYTES,
    CompleteRequest,
    JobSpec,
    JobsQuery,
    LogsQuery,
    MetricsQuery,
    Page,
    ProgressUpdate,
    ScalarsQuery,
    parse_body,
    parse_query,
    valid_job_id,
)
from jobwatch.errors import (
    BrokerUnavailable,
    JobNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
)
from jobwatch.server.core import rules, tenancy
from jobwatch.server.core.alerts.alert_rules import alert_to_wire
from jobwatch.server.core.job_row import JobRow, job_row, log_counts
from jobwatch.server.core.rules import job_estimates
from jobwatch.server.core.serialize import (
    dumps,
    job_to_wire,
    log_to_wire,
    sample_to_wire,
    scalar_to_wire,
)
from jobwatch.server.core.workers import single_worker, worker_to_wire
from jobwatch.server.events.broker import MemoryBroker
from jobwatch.server.storage import prices, queries
from jobwatch.server.storage import workers as stored_workers
from jobwatch.server.web.access import current_principal
from jobwatch.server.web.services import Services

bp = Blueprint("api", __name__, url_prefix="/api")

HISTORY_SECONDS = 60.0
"""``/monitor`` returns this many seconds of samples."""
MONITOR_LOGS = 100
"""``/monitor`` returns this many of the newest log lines."""
MONITOR_ALERTS = 20
"""``/monitor`` returns this many of the newest alerts."""


def json_response(body: Any, status: int = 200) -> Response:
    """A strict-JSON response (see :func:`jobwatch.server.core.serialize.dumps`)."""
    return Response(dumps(body), status=status, mimetype="application/json")


def _services() -> Services:
    services: Services = current_app.extensions["jobwatch"]
    return services


def _body() -> bytes:
    """The raw JSON body; ``{}`` for a request without one (no ``Content-Length``
    or 0, not chunked): every field then takes its default, and a required one
    is named by the 400. Refuses other content types and content codings (415)
    and more than 1 MiB (413), with a ``Content-Length`` or chunked."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not request.content_length and not chunked:
        return b"{}"
    _check_content_coding()
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.content_type or 'none'!r}"
        )
    too_large = PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes (1 MiB)")
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    # Read one byte past the limit ourselves: Werkzeug cuts a chunked body at
    # the limit without a word, which would then fail as invalid JSON.
    data = get_input_stream(request.environ, max_content_length=None).read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise too_large
    return bytes(data)


def _check_content_coding() -> None:
    """Refuse a body in a content coding (``Content-Encoding: gzip``): the server
    decodes none, and reading one as JSON would be wrong; 415 (RFC 9110, section
    15.5.16) with ``Accept-Encoding: identity`` (section 12.5.3)."""
    header = request.headers.get("Content-Encoding", "")
    codings = [c.strip() for c in header.split(",") if c.strip()]
    other = [c for c in codings if c.lower() != "identity"]
    if other:
        raise UnsupportedMediaType(
            f"Content-Encoding {', '.join(other)!r} is not accepted: send the body "
            "uncompressed; only identity (no Content-Encoding) is accepted",
            headers={"Accept-Encoding": "identity"},
        )


def _known_job(job_id: str) -> JobRow:
    """The job, if it exists and the request's token may read it; else 404."""
    if not valid_job_id(job_id):
        raise JobNotFound(f"no job with id {job_id!r}")
    with _services().store.read() as conn:
        job = queries.get_job(conn, job_id)
    _check_readable(job, job_id)
    assert job is not None
    return job_row(dict(job))


def _check_readable(job: JobRow | None, job_id: str) -> None:
    """404 for a missing job and for one the request's token may not read alike."""
    if job is None or not tenancy.can_read(current_principal(), job["tenant"], job_id):
        raise JobNotFound(f"no job with id {job_id!r}")


def _new_job_owner(principal: tenancy.Principal, job_id: str) -> str | None:
    """Who a job created now under ``job_id`` belongs to (:func:`tenancy.new_job_owner`)."""
    tenancy.check_create(principal, job_id)
    if principal.kind is not tenancy.Kind.ADMIN or tenancy.tenant_of_id(job_id) is None:
        return tenancy.new_job_owner(principal, job_id, ())
    store = _services().tenancy
    names = store.tenant_names() if store is not None else set()
    return tenancy.new_job_owner(principal, job_id, names)


@bp.get("/health")
def health() -> Response:
    """``{"status": "ok", "version"}``: liveness, the process answers (no database query)."""
    return json_response({"status": "ok", "version": __version__})


@bp.get("/ready")
def ready() -> Response:
    """Readiness: ``{"status": "ready", "database": "ok", "broker": "ok" | "none"}``;
    503 ``store_unavailable`` while the database does not answer (within its
    timeout), 503 ``broker_unavailable`` while the subscription to Redis is down."""
    services = _services()
    services.store.ping()
    if not services.broker.connected:
        raise BrokerUnavailable("the subscription to Redis is down; reconnecting")
    broker = "none" if isinstance(services.broker, MemoryBroker) else "ok"
    return json_response({"status": "ready", "database": "ok", "broker": broker})


@bp.post("/jobs")
def create_job() -> Response:
    """201 ``{job}``; 409 ``job_exists`` when the given id is taken."""
    spec = parse_body(JobSpec, _body())
    principal = current_principal()
    target = spec.id
    if target is None and principal.kind is tenancy.Kind.WORKER:
        target = principal.job_id
    elif target is None and principal.tenant is not None:
        target = tenancy.job_namespace(principal.tenant) + uuid.uuid4().hex[:12]
    owner = None if target is None else _new_job_owner(principal, target)
    job, _ = _services().store.create_job(
        spec, target, upsert=False, principal=principal, owner=owner
    )
    return json_response({"job": job_to_wire(job)}, 201)


@bp.put("/jobs/<job_id>")
def put_job(job_id: str) -> Response:
    """Create (201) or update (200) a job; idempotent. The body's ``id``, if any, must match."""
    if not valid_job_id(job_id):
        raise ValidationError(
            "invalid job id",
            details=[
                {
                    "field": "jobId",
                    "message": "must be 1-128 characters of letters, digits and . _ : @ -, "
                    "starting with a letter or digit",
                }
            ],
        )
    spec = parse_body(JobSpec, _body())
    if spec.id is not None and spec.id != job_id:
        raise ValidationError(
            "body id differs from the URL's",
            details=[{"field": "id", "message": f"must equal the URL's job id {job_id!r}"}],
        )
    principal = current_principal()
    owner = _new_job_owner(principal, job_id)
    job, created = _services().store.create_job(
        spec, job_id, upsert=True, principal=principal, owner=owner
    )
    return json_response({"job": job_to_wire(job)}, 201 if created else 200)


@bp.get("/jobs")
def list_jobs() -> Response:
    """``{jobs, total, limit, offset}``, newest first."""
    query = parse_query(JobsQuery, request.args)
    scope = tenancy.list_scope(current_principal())
    with _services().store.read() as conn:
        rows, total = queries.list_jobs(
            conn, query.status, query.limit, query.offset, tenant=_tenant_filter(scope)
        )
    # The budget counts the answer's bytes as sent: JSON escapes (a control
    # character is 6 bytes) make a job longer than its stored text.
    tail = dumps({"total": total, "limit": query.limit, "offset": query.offset})
    head = b'{"jobs":['
    used = len(head) + 2 + len(tail)
    parts: list[bytes] = []
    for row in rows:
        part = dumps(job_to_wire(row))
        used += len(part) + (1 if parts else 0)
        if parts and used > queries.LIST_PAGE_BYTES:
            break
        parts.append(part)
    body = head + b",".join(parts) + b"]," + tail[1:]
    return Response(body, mimetype="application/json")


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """``{job}``; 404 ``job_not_found``."""
    return json_response({"job": job_to_wire(_known_job(job_id))})


@bp.post("/jobs/<job_id>/progress")
def progress(job_id: str) -> Response:
    """The seed's main call; see docs/api.md, "Progress"."""
    update = parse_body(ProgressUpdate, _body())
    services = _services()
    principal = current_principal()
    tenancy.refuse_other_job(principal, job_id)
    if services.rate_limit is not None:
        # Only an update its job would take counts against the worker's allowance.
        job = _known_job(job_id)
        if not tenancy.can_write(principal, job["tenant"], job_id):
            raise JobNotFound(f"no job with id {job_id!r}")
        rules.check_writable(job, update.worker_id)
        services.rate_limit.hit(update.worker_id, request.remote_addr)
    elif not valid_job_id(job_id):
        raise JobNotFound(f"no job with id {job_id!r}")
    reply = services.store.apply_progress(job_id, update, principal)
    body = reply.body
    pace = None if services.pace is None else services.pace.hit(time.monotonic())
    if pace is not None:  # busy: ask the worker to report less often
        body = {**body, "minInterval": pace}
    return json_response(body)


@bp.post("/jobs/<job_id>/complete")
def complete(job_id: str) -> Response:
    """Finish a job; 200 ``{job}`` and a ``JOB_COMPLETED`` event."""
    request_body = parse_body(CompleteRequest, _body())
    principal = current_principal()
    tenancy.refuse_other_job(principal, job_id)
    if not valid_job_id(job_id):
        raise JobNotFound(f"no job with id {job_id!r}")
    job = _services().store.complete_job(job_id, request_body, principal)
    return json_response({"job": job_to_wire(job)})


@bp.get("/jobs/<job_id>/monitor")
def monitor(job_id: str) -> Response:
    """Everything a viewer needs to start: job, latest sample, 60 s of history,
    the last 100 log lines, estimates and ``seq`` (subscribe with ``since=seq``)."""
    services = _services()
    now = services.clock()
    if not valid_job_id(job_id):
        raise JobNotFound(f"no job with id {job_id!r}")
    with services.store.read() as conn:
        job = queries.get_job(conn, job_id)
        _check_readable(job, job_id)
        assert job is not None
        end = _window_end(job, now)
        history = queries.sample_window(conn, job_id, end - HISTORY_SECONDS, end, None)
        latest = queries.latest_sample(conn, job_id)
        logs = queries.recent_logs(conn, job_id, job["seq"], MONITOR_LOGS)
        recent_alerts = queries.recent_alerts(conn, job_id, MONITOR_ALERTS)
    estimates = job_estimates(job, now)
    return json_response(
        {
            "job": job_to_wire(job),
            "metrics": {
                "latest": sample_to_wire(latest) if latest else None,
                "history": [sample_to_wire(s) for s in history.rows],
            },
            "gpusOmitted": history.gpus_omitted,
            "logs": [log_to_wire(r) for r in logs],
            "scalars": {
                name: {"cost": None, **entry}  # stored before values carried their cost
                for name, entry in (job["latest_scalars"] or {}).items()
            },
            "alerts": [alert_to_wire(a) for a in recent_alerts],
            "timeRemaining": estimates.time_remaining,
            "costSoFar": estimates.cost_so_far,
            "estimatedTotalCost": estimates.estimated_total_cost,
            "elapsed": estimates.elapsed,
            "currency": job["currency"],
            "seq": job["seq"],
        }
    )


@bp.get("/jobs/<job_id>/metrics")
def metrics(job_id: str) -> Response:
    """Samples of the last ``timeRange`` seconds (ending at the job's end once
    finished), oldest first, downsampled to ``maxPoints`` when given."""
    query = parse_query(MetricsQuery, request.args)
    job = _known_job(job_id)
    end = _window_end(job, _services().clock())
    with _services().store.read() as conn:
        window = queries.sample_window(conn, job_id, end - query.time_range, end, query.max_points)
    return json_response(
        {
            "jobId": job_id,
            "timeRange": query.time_range,
            "maxPoints": query.max_points,
            "downsampled": window.downsampled,
            "gpusOmitted": window.gpus_omitted,
            "metrics": [sample_to_wire(r) for r in window.rows],
        }
    )


@bp.get("/jobs/<job_id>/scalars")
def scalars(job_id: str) -> Response:
    """Training metrics ``{jobId, scalars: {name: [{step, timestamp, value}]}, downsampled}``,
    per name oldest first, downsampled to ``maxPoints`` per name when given. The
    answer holds at most :data:`~queries.SCALAR_ANSWER_POINTS` points: with many names,
    each gets at most its share of them."""
    query = parse_query(ScalarsQuery, request.args)
    job = _known_job(job_id)
    end = _window_end(job, _services().clock())
    start = None if query.time_range is None else end - query.time_range
    names = query.name_list()
    n_names = len(names) if names is not None else len(job["latest_scalars"] or {})
    share = max(2, queries.SCALAR_ANSWER_POINTS // max(1, n_names))
    per_name = min(query.max_points or queries.RAW_LIMIT, share)
    with _services().store.read() as conn:
        series, downsampled = queries.scalar_window(conn, job_id, names, start, end, per_name)
        timeline = prices.timeline(conn, job, end)
    return json_response(
        {
            "jobId": job_id,
            "timeRange": query.time_range,
            "maxPoints": query.max_points,
            "downsampled": downsampled,
            "scalars": {
                name: [scalar_to_wire(r, timeline.cost_at(r["ts"])) for r in rows]
                for name, rows in series.items()
            },
        }
    )


@bp.get("/jobs/<job_id>/alerts")
def alerts(job_id: str) -> Response:
    """``{jobId, alerts: [{seq, timestamp, level, title, text, source}], total, limit,
    offset}``, oldest first."""
    query = parse_query(Page, request.args)
    job = _known_job(job_id)
    with _services().store.read() as conn:
        rows = queries.alert_page(conn, job_id, query.limit, query.offset)
    return json_response(
        {
            "jobId": job_id,
            "alerts": [alert_to_wire(r) for r in rows],
            "total": job["n_alerts"],
            "limit": query.limit,
            "offset": query.offset,
        }
    )


@bp.get("/jobs/<job_id>/receipt")
def job_receipt(job_id: str) -> Response:
    """The job's receipt (docs/api.md "Receipts"): a finished job's figures, or a
    running one's so far; 404 ``job_not_found``."""
    _known_job(job_id)
    return json_response(_services().store.job_receipt(job_id))


@bp.get("/jobs/<job_id>/workers")
def job_workers(job_id: str) -> Response:
    """``{jobId, worldSize, workers: [{workerId, node, rank, localRank, status,
    lastUpdateAt, progress, ...}]}``: the ranks of a distributed job, by rank; a
    job of one worker lists that worker (docs/api.md "Distributed jobs")."""
    job = _known_job(job_id)
    with _services().store.read() as conn:
        rows = stored_workers.job_workers(conn, job_id)
    if job["world_size"] is None:
        listed = [] if job["worker_id"] is None else [single_worker(job)]
    else:
        listed = [worker_to_wire(row) for row in rows]
    return json_response({"jobId": job_id, "worldSize": job["world_size"], "workers": listed})


@bp.get("/jobs/<job_id>/logs")
def logs(job_id: str) -> Response:
    """``{jobId, logs, total, limit, offset}``, oldest first, optionally one level."""
    query = parse_query(LogsQuery, request.args)
    job = _known_job(job_id)
    with _services().store.read() as conn:
        if query.rank is not None or query.node is not None:
            total = queries.log_count(conn, job_id, query.level, query.rank, query.node)
        elif query.level is None:
            total = job["n_info"] + job["n_warning"] + job["n_error"]
        else:
            total = log_counts(job)[query.level]
        rows = queries.log_page(
            conn,
            job_id,
            query.level,
            query.limit,
            query.offset,
            query.before_id,
            total,
            rank=query.rank,
            node=query.node,
        )
    return json_response(
        {
            "jobId": job_id,
            "logs": [log_to_wire(r) for r in rows],
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }
    )


def _tenant_filter(scope: tenancy.Scope) -> str | None:
    """The tenant a listing keeps (``None``: every job)."""
    return None if scope.everything else scope.tenant


def _window_end(job: JobRow, now: float) -> float:
    """Where a job's time windows end: ``now`` while it runs; once finished, its
    last write (``updatedAt``), which is ``completedAt`` unless the completion
    came late (``sentAt``, docs/api.md "Sent later"): its end is then placed
    earlier, while what it sent keeps its arrival time."""
    if job["status"] in FINISHED_STATUSES and job["completed_at"] is not None:
        return max(float(job["completed_at"]), float(job["updated_at"]))
    return now
