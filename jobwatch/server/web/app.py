"""The application factory and its one error envelope."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_cors import CORS
from flask_sock import Sock
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import RequestRedirect

from jobwatch.contract.basics import currency_code
from jobwatch.contract.requests import MAX_BODY_BYTES
from jobwatch.errors import (
    APIError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UpgradeRequired,
    ValidationError,
)
from jobwatch.server.core.alerts.alert_rules import DEFAULT_STALL_AFTER, parse_rule
from jobwatch.server.core.alerts.hangs import DEFAULT_HANG_AFTER
from jobwatch.server.core.alerts.nccl_hang import DEFAULT_POWER, DEFAULT_UTILIZATION, NcclHangRule
from jobwatch.server.core.alerts.webhooks import WebhookTarget
from jobwatch.server.core.pace import UpdatePace
from jobwatch.server.core.quotas import DEFAULT_MAX_JOB_LOG_BYTES, DEFAULT_MAX_JOBS, Quotas
from jobwatch.server.core.rules import DEFAULT_CURRENCY
from jobwatch.server.core.serialize import Event
from jobwatch.server.events.broker import (
    DEFAULT_CHANNEL,
    DEFAULT_REDIS_TIMEOUT,
    Broker,
    MemoryBroker,
)
from jobwatch.server.events.fleet_feed import FleetFeed
from jobwatch.server.events.watchdog import StallWatchdog
from jobwatch.server.events.webhook import Webhooks
from jobwatch.server.storage.store import DEFAULT_TIMEOUT as DEFAULT_DATABASE_TIMEOUT
from jobwatch.server.storage.store import Store
from jobwatch.server.storage.tenancy import TenancyStore
from jobwatch.server.web import prometheus
from jobwatch.server.web.access import Authenticator, current_principal, remember
from jobwatch.server.web.admin import bp as admin_bp
from jobwatch.server.web.api import bp as api_bp
from jobwatch.server.web.api import json_response
from jobwatch.server.web.costs import bp as costs_bp
from jobwatch.server.web.openapi import bp as openapi_bp
from jobwatch.server.web.pages import bp as pages_bp
from jobwatch.server.web.pages import open_pages
from jobwatch.server.web.security import WEBSOCKET_PATH, AccessPolicy, WorkerRateLimit
from jobwatch.server.web.services import Services
from jobwatch.server.web.ws.session import serve_socket

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "DATABASE": ":memory:",
    "CLOCK": time.time,
    "WS_QUEUE_SIZE": 1024,
    "WS_QUEUE_BYTES": 8 * 1024 * 1024,
    "WS_SEND_TIMEOUT": 30.0,
    "WS_PING_INTERVAL": 25.0,
    "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
    "WRITE_TOKEN": None,
    "READ_TOKEN": None,
    "CORS_ORIGINS": (),
    "ALLOWED_HOSTS": (),
    "RATE_LIMIT": 0,
    "PACE_ABOVE": 1000.0,
    "PACE_INTERVAL": 5.0,
    "REDIS_URL": None,
    "REDIS_CHANNEL": DEFAULT_CHANNEL,
    "DATABASE_TIMEOUT": DEFAULT_DATABASE_TIMEOUT,
    "REDIS_TIMEOUT": DEFAULT_REDIS_TIMEOUT,
    "STALL_AFTER": DEFAULT_STALL_AFTER,
    "STALL_CHECK_INTERVAL": 5.0,
    "HANG_AFTER": DEFAULT_HANG_AFTER,
    "DEFAULT_CURRENCY": DEFAULT_CURRENCY,
    "ALERT_RULES": (),
    "MAX_JOBS": DEFAULT_MAX_JOBS,
    "MAX_JOB_LOG_BYTES": DEFAULT_MAX_JOB_LOG_BYTES,
    "MAX_LOG_BYTES": 0,
    "WEBHOOK_URL": None,
    "WEBHOOKS": (),
    "NCCL_HANG_AFTER": None,
    "NCCL_HANG_UTILIZATION": DEFAULT_UTILIZATION,
    "NCCL_HANG_POWER": DEFAULT_POWER,
}
"""Settings ``create_app`` understands, with their defaults:

``DATABASE``
    ``--db`` value: a SQLite path, ``:memory:`` or a URL (``postgresql://...``
    for several processes sharing one database).
``CLOCK``
    Callable returning server time in seconds since the epoch (tests pass a fake).
``WS_QUEUE_SIZE``, ``WS_QUEUE_BYTES``
    Messages and bytes (8 MiB) a WebSocket subscriber may have queued unsent
    before it is dropped.
``WS_SEND_TIMEOUT``
    Seconds one WebSocket send may wait for a client that does not read
    before it is dropped.
``WS_PING_INTERVAL``
    Seconds between WebSocket pings that keep idle connections open through proxies.
``MAX_CONTENT_LENGTH``
    Largest request body in bytes (1 MiB); more answers 413.
``WRITE_TOKEN``, ``READ_TOKEN``
    Bearer tokens (see :mod:`jobwatch.server.web.security`); ``None``: open.
``CORS_ORIGINS``
    Browser origins allowed to call the API and open the WebSocket.
``ALLOWED_HOSTS``
    Host names a server without a token answers besides loopback ones
    (``*``: any); see :mod:`jobwatch.server.web.security`.
``RATE_LIMIT``
    Most progress updates per second per worker and client address (0: no
    limit); more answer 429.
``PACE_ABOVE``, ``PACE_INTERVAL``
    Progress updates a second (this process) above which the server is busy
    (0: never), and the ``minInterval`` seconds its progress answers then carry
    (:class:`~jobwatch.server.core.pace.UpdatePace`).
``REDIS_URL``
    ``redis://host:port/db``: fan events out through Redis to every process
    sharing it (:class:`~jobwatch.server.events.redis_broker.RedisBroker`); ``None``:
    this process only.
``REDIS_CHANNEL``
    The Redis pub/sub channel; one per deployment.
``DATABASE_TIMEOUT``, ``REDIS_TIMEOUT``
    Seconds PostgreSQL and Redis may take to connect or answer (5 each); past
    it a request answers 503 and the subscription to Redis is replaced.
``STALL_AFTER``
    Seconds without an update after which a running job is stalled (or ten of
    its usual update intervals if that is longer).
``STALL_CHECK_INTERVAL``
    Seconds between two checks for stalled and hung jobs (0: none; tests call
    ``services.watchdog.check()``).
``DEFAULT_CURRENCY``
    The currency of a job created without one (``QUBIC``).
``HANG_AFTER``
    Seconds without a call from a reporting job's training code after which it
    is hung (or ten of its usual intervals between calls, or its
    ``expectSilenceFor``, if longer): :mod:`jobwatch.server.core.alerts.hangs`.
``MAX_JOBS``, ``MAX_JOB_LOG_BYTES``, ``MAX_LOG_BYTES``
    Quotas: jobs stored (100,000), log bytes one job may store (1 GiB), log
    bytes all jobs may store (0: no limit); past one a write answers 507
    (:mod:`jobwatch.server.core.quotas`).
``ALERT_RULES``
    ``--alert`` rules such as ``"gpuTemperature>85 for 60s"``.
``WEBHOOK_URL``
    A Slack webhook every alert is posted to (``{"text": ...}``); ``None``: none.
``WEBHOOKS``
    More webhooks, each ``[FORMAT+]URL [level>=LEVEL]``
    (:func:`~jobwatch.server.core.alerts.webhooks.parse_target`): Slack, Discord, ntfy,
    Microsoft Teams or JSON, each with the least level it takes.
``NCCL_HANG_AFTER``, ``NCCL_HANG_UTILIZATION``, ``NCCL_HANG_POWER``
    The NCCL-hang signature (:mod:`~jobwatch.server.core.alerts.nccl_hang`): seconds of
    utilization at or above a percentage (95) with power below a percentage (50)
    of the job's typical draw after which the job is hung; ``None``: off.
"""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the jobwatch server: REST API under ``/api``, the WebSocket at ``/ws`` and
    the web pages (``/``, ``/jobs/<jobId>``).

    Parameters
    ----------
    config:
        Overrides of :data:`DEFAULTS` (and any Flask setting).

    Returns
    -------
    flask.Flask
        Its parts are in ``app.extensions["jobwatch"]`` (:class:`Services`);
        call ``.close()`` on them to stop the writer thread.

    Raises
    ------
    ValueError
        A token is too short or has surrounding whitespace, or a read token
        comes without a write token; a webhook is not ``[FORMAT+]URL
        [level>=LEVEL]``; an NCCL-hang threshold is out of range.
    sqlalchemy.exc.OperationalError
        A SQLite database cannot be opened. (PostgreSQL and Redis need not
        answer yet: until they do, requests answer 503 and ``/api/ready``
        says which is missing.)
    """
    app = Flask("jobwatch")
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Werkzeug answers a doubled slash with a 308 redirect to the merged path (an
    # HTML body); an API client gets 404 in the error shape instead (_no_redirects).
    app.url_map.merge_slashes = False
    policy = AccessPolicy(
        app.config["WRITE_TOKEN"],
        app.config["READ_TOKEN"],
        app.config["CORS_ORIGINS"],
        app.config["ALLOWED_HOSTS"],
    )
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": app.config["WS_PING_INTERVAL"],
        "max_message_size": 64 * 1024,
    }
    alert_on = tuple(parse_rule(text) for text in app.config["ALERT_RULES"])
    nccl_after = app.config["NCCL_HANG_AFTER"]
    nccl_hang = (
        None
        if nccl_after is None
        else NcclHangRule(
            float(nccl_after),
            float(app.config["NCCL_HANG_UTILIZATION"]),
            float(app.config["NCCL_HANG_POWER"]),
        )
    )
    webhook = _webhooks(app.config["WEBHOOK_URL"], app.config["WEBHOOKS"])
    quotas = Quotas(
        int(app.config["MAX_JOBS"]),
        int(app.config["MAX_JOB_LOG_BYTES"]),
        int(app.config["MAX_LOG_BYTES"]),
    )
    store = Store(
        app.config["DATABASE"],
        clock=app.config["CLOCK"],
        alert_rules=alert_on,
        nccl_hang=nccl_hang,
        quotas=quotas,
        default_currency=currency_code(str(app.config["DEFAULT_CURRENCY"])),
        timeout=float(app.config["DATABASE_TIMEOUT"]),
    )
    broker = _broker(
        app.config["REDIS_URL"],
        app.config["REDIS_CHANNEL"],
        float(app.config["REDIS_TIMEOUT"]),
        store,
    )
    tenancy = TenancyStore(store)
    authenticator = Authenticator(tenancy, app.config["CLOCK"])
    policy.authenticate = authenticator
    store.set_publisher(_publisher(broker, webhook))
    rate = float(app.config["RATE_LIMIT"] or 0)
    services = Services(
        store=store,
        broker=broker,
        clock=app.config["CLOCK"],
        ws_queue_size=int(app.config["WS_QUEUE_SIZE"]),
        ws_queue_bytes=int(app.config["WS_QUEUE_BYTES"]),
        send_timeout=float(app.config["WS_SEND_TIMEOUT"]),
        rate_limit=WorkerRateLimit(rate) if rate > 0 else None,
        pace=UpdatePace(float(app.config["PACE_ABOVE"]), float(app.config["PACE_INTERVAL"])),
        watchdog=StallWatchdog(
            store,
            float(app.config["STALL_AFTER"]),
            float(app.config["STALL_CHECK_INTERVAL"]),
            float(app.config["HANG_AFTER"]),
        ),
        webhook=webhook,
        fleet=FleetFeed(store, broker, app.config["CLOCK"]),
        tenancy=tenancy,
        authenticator=authenticator,
    )
    app.extensions["jobwatch"] = services
    app.before_request(open_pages(remember(policy.check)))
    app.before_request(_websocket_handshake)
    app.before_request(_connection_quota)
    app.teardown_request(_connection_ended)
    app.before_request(_no_redirects)
    if app.config["CORS_ORIGINS"]:
        CORS(app, resources={r"/api/*": {"origins": list(app.config["CORS_ORIGINS"])}})

    app.register_blueprint(api_bp)
    app.register_blueprint(costs_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(openapi_bp)
    prometheus.install(app)
    app.register_blueprint(pages_bp)
    sock = Sock(app)

    sock.route("/ws")(_websocket)

    app.register_error_handler(APIError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _webhooks(slack_url: str | None, targets: tuple[str, ...]) -> Webhooks | None:
    """The server's webhooks: ``WEBHOOK_URL`` (Slack, every level) and ``WEBHOOKS``;
    ``None`` without any."""
    every: list[str | WebhookTarget] = [WebhookTarget(slack_url)] if slack_url else []
    every += targets
    return Webhooks(every) if every else None


def _publisher(broker: Broker, webhook: Webhooks | None) -> Callable[[list[Event]], None]:
    """Committed events go to the broker (every subscriber) and, for alerts, to the
    webhook: only from the process that committed them, so each alert is posted once."""
    if webhook is None:
        return broker.publish

    def publish(events: list[Event]) -> None:
        broker.publish(events)
        webhook.offer(events)

    return publish


def _broker(redis_url: str | None, channel: str, timeout: float, store: Store) -> Broker:
    if not redis_url:
        return MemoryBroker(dispatch=True)
    from jobwatch.server.events.redis_broker import RedisBroker

    try:
        return RedisBroker(redis_url, channel=channel, timeout=timeout)
    except Exception:
        store.close()
        raise


def _websocket(ws: Any) -> None:
    serve_socket(ws, current_app.extensions["jobwatch"], current_principal())


WEBSOCKET_VERSION = "13"
"""The one WebSocket version (RFC 6455) the server speaks."""


def _websocket_handshake() -> None:
    """Refuse a ``GET /ws`` that is no WebSocket opening handshake, in the error
    shape, before flask-sock tries it (which answers Werkzeug's HTML 400, or 500).

    Raises
    ------
    UpgradeRequired
        426 with ``Upgrade: websocket`` when ``Upgrade`` does not name websocket or
        ``Connection`` does not name upgrade (RFC 9110, section 15.5.22), or when
        ``Sec-WebSocket-Version`` is not 13 (then with ``Sec-WebSocket-Version: 13``,
        RFC 6455, section 4.2.2).
    ValidationError
        400 without a ``Sec-WebSocket-Key``.
    """
    if request.environ.get("PATH_INFO") != WEBSOCKET_PATH or request.method not in ("GET", "HEAD"):
        return  # other methods answer 405 from the routing, //ws 404 (_no_redirects)
    upgrade = {t.strip().lower() for t in request.headers.get("Upgrade", "").split(",")}
    connection = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"}
    if "websocket" not in upgrade or "upgrade" not in connection:
        raise UpgradeRequired(
            f"{WEBSOCKET_PATH} needs a WebSocket upgrade: GET with 'Upgrade: websocket' and "
            "'Connection: Upgrade' (a WebSocket client does this; plain HTTP is not served here)",
            headers=headers,
        )
    version = request.headers.get("Sec-WebSocket-Version", "").strip()
    if version != WEBSOCKET_VERSION:
        raise UpgradeRequired(
            f"{WEBSOCKET_PATH} needs a WebSocket upgrade of version {WEBSOCKET_VERSION} "
            f"(Sec-WebSocket-Version), not {version or 'none'!r}",
            headers={**headers, "Sec-WebSocket-Version": WEBSOCKET_VERSION},
        )
    if not request.headers.get("Sec-WebSocket-Key", "").strip():
        raise ValidationError(
            "a WebSocket upgrade needs a Sec-WebSocket-Key header (RFC 6455, section 4.1)",
            details=[{"field": "Sec-WebSocket-Key", "message": "is required"}],
        )


def _connection_quota() -> None:
    """Count a tenant's WebSocket, refused past its connection quota before the
    upgrade (507 ``quota_exceeded``); :func:`_connection_ended` releases it."""
    if request.path != WEBSOCKET_PATH:
        return
    principal = g.get("jobwatch_principal")
    services: Services = current_app.extensions["jobwatch"]
    if principal is not None and services.reserve_connection(principal):
        g.jobwatch_counted_tenant = principal.tenant


def _connection_ended(_exc: BaseException | None) -> None:
    tenant = g.pop("jobwatch_counted_tenant", None)
    if tenant is not None:
        services: Services = current_app.extensions["jobwatch"]
        services.release_connection(tenant)


def _no_redirects() -> None:
    """Answer 404 where Werkzeug's routing would redirect.

    A rule ending in ``/`` asked without it (``strict_slashes``) raises a
    redirect that skips the error handlers (Flask treats it as routing, not an
    error), so it is turned into 404 here, before any view runs. A path
    starting with ``//`` has an empty first segment like any doubled slash,
    but Werkzeug's routing strips leading slashes: it answers 404 here too.
    (Python's ``http.server``, under the embedded server, already reads
    ``//api/x`` as ``/api/x`` before the app sees it; gunicorn keeps it.)

    Raises
    ------
    werkzeug.exceptions.NotFound
        Answered as 404 ``not_found`` by :func:`_http_error`.
    """
    if isinstance(request.routing_exception, RequestRedirect) or request.environ.get(
        "PATH_INFO", ""
    ).startswith("//"):
        raise RouteNotFound()


def _api_error(exc: APIError) -> Response:
    response = json_response(exc.to_envelope(), exc.status)
    response.headers.update(exc.headers)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobwatch"'
    return response


def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    error: APIError
    if code == 404:
        error = NotFound("no such endpoint; see /api/health and the API reference")
    elif code == 405:
        allowed = getattr(exc, "valid_methods", None)
        error = MethodNotAllowed(f"method not allowed here; allowed: {', '.join(allowed or [])}")
    elif code == 413:
        error = PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes (1 MiB)")
    elif code < 500:
        error = APIError(exc.description or "bad request", status=code, code="bad_request")
    else:
        return _unexpected_error(exc)
    response = _api_error(error)
    if code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(getattr(exc, "valid_methods", []))
    return response


def _unexpected_error(exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    body = {"error": {"code": "internal_error", "message": "internal server error", "details": []}}
    return json_response(body, 500)
