"""The admin API (``/api/admin/...``, the admin token only) and share links of a job.

Tenants and tokens are made, listed and revoked here (``jobwatch tenants`` and
``jobwatch tokens`` call these endpoints). A token is returned once, when it
is made; lists show its id, kind, tenant, job, label and times, never the
token. A job's tenant (its write token) or the admin shares a job read-only
with ``POST /api/jobs/{jobId}/shares``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from jobwatch.contract.admin import (
    DEFAULT_SHARE_SECONDS,
    ShareSpec,
    TenantSpec,
    TokenSpec,
    TokensQuery,
)
from jobwatch.contract.requests import parse_body, parse_query, valid_job_id
from jobwatch.errors import JobNotFound, NotFound, ValidationError
from jobwatch.server.core import tenancy
from jobwatch.server.core.tenancy import DEFAULT_TENANT_QUOTAS, Kind, TenantQuotas
from jobwatch.server.storage import queries
from jobwatch.server.storage.tenancy import TenancyStore
from jobwatch.server.web.access import current_principal
from jobwatch.server.web.api import _body, json_response
from jobwatch.server.web.services import Services

bp = Blueprint("admin", __name__, url_prefix="/api")


def _services() -> Services:
    services: Services = current_app.extensions["jobwatch"]
    return services


def _tenancy() -> TenancyStore:
    store = _services().tenancy
    assert store is not None
    return store


def _admin() -> TenancyStore:
    tenancy.refuse_unless_admin(current_principal())
    return _tenancy()


def share_url(job_id: str, token: str) -> str:
    """The page that opens ``job_id`` with a share token: ``<server>/jobs/<id>#share=<token>``
    (in the fragment, which browsers never send, so no proxy or access log sees it)."""
    return f"{request.host_url}jobs/{job_id}#share={token}"


@bp.get("/admin/tenants")
def list_tenants() -> Response:
    """``{tenants: [{name, quotas, usage, createdAt}]}``, by name."""
    return json_response({"tenants": _admin().tenants()})


@bp.put("/admin/tenants/<name>")
def put_tenant(name: str) -> Response:
    """Create tenant ``name`` (201) or set its quotas (200): ``{tenant}``. The new
    quotas hold at once in this server process, and within
    :data:`~jobwatch.server.web.access.REVALIDATE_AFTER` seconds in the others."""
    store = _admin()
    tenancy.check_tenant_name(name)
    spec = parse_body(TenantSpec, _body())
    quotas = TenantQuotas(
        DEFAULT_TENANT_QUOTAS.max_jobs if spec.max_jobs is None else spec.max_jobs,
        DEFAULT_TENANT_QUOTAS.max_bytes if spec.max_bytes is None else spec.max_bytes,
        DEFAULT_TENANT_QUOTAS.max_connections
        if spec.max_connections is None
        else spec.max_connections,
    )
    tenant, created = store.put_tenant(name, quotas)
    authenticator = _services().authenticator
    if authenticator is not None:  # this process applies the new quotas from now on
        authenticator.forget_tenant(name)
    return json_response({"tenant": tenant}, 201 if created else 200)


@bp.get("/admin/tokens")
def list_tokens() -> Response:
    """``{tokens}``: every token, or ``?tenant=``'s, or ``?jobId=``'s, oldest first."""
    store = _admin()
    query = parse_query(TokensQuery, request.args)
    return json_response({"tokens": store.tokens(query.tenant, query.job_id)})


@bp.post("/admin/tokens")
def create_token() -> Response:
    """Make a token: 201 ``{token: {id, kind, ...}, secret}`` (and ``url`` for a share link).

    The secret is shown only in this answer."""
    store = _admin()
    spec = parse_body(TokenSpec, _body())
    kind = Kind(spec.kind)
    if kind in (Kind.WRITE, Kind.READ) and spec.tenant is None:
        raise _field_error("tenant", f"a {kind.value} token needs a tenant")
    if kind in (Kind.WORKER, Kind.SHARE) and spec.job_id is None:
        raise _field_error("jobId", f"a {kind.value} token needs the job it reaches")
    names = store.tenant_names()
    if spec.tenant is not None and spec.tenant not in names:
        raise _field_error("tenant", f"no tenant named {spec.tenant!r}")
    tenant = spec.tenant
    if kind in (Kind.WORKER, Kind.SHARE) and spec.job_id is not None:
        job = _stored_job(spec.job_id)
        owner = None if job is None else job["tenant"]
        tenant = tenancy.one_job_tenant(
            spec.job_id, spec.tenant, owner, names, exists=job is not None
        )
    elif spec.job_id is not None and spec.tenant is not None:
        prefix = tenancy.job_namespace(spec.tenant)
        if not spec.job_id.startswith(prefix):
            raise _field_error("jobId", f"tenant {spec.tenant!r}'s job ids start with {prefix!r}")
    expires_in = spec.expires_in
    if kind is Kind.SHARE and expires_in is None:
        expires_in = DEFAULT_SHARE_SECONDS
    expires_at = None if expires_in is None else _services().clock() + expires_in
    token, secret = store.create_token(
        kind, tenant, job_id=spec.job_id, label=spec.label, expires_at=expires_at
    )
    body: dict[str, Any] = {"token": token, "secret": secret}
    if kind is Kind.SHARE and spec.job_id is not None:
        body["url"] = share_url(spec.job_id, secret)
    return json_response(body, 201)


@bp.delete("/admin/tokens/<token_id>")
def revoke_token(token_id: str) -> Response:
    """Revoke a token: ``{token}``; its requests fail and its WebSockets close within
    a few seconds on every server process. 404 ``not_found`` for an unknown id."""
    store = _admin()
    token = store.revoke(token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id!r}")
    _forget(token_id)
    return json_response({"token": token})


@bp.post("/jobs/<job_id>/shares")
def share_job(job_id: str) -> Response:
    """Share a job read-only: 201 ``{share: {id, ...}, secret, url}``; ``url`` opens
    the job's page, ``secret`` reads its API and stream, until ``expiresIn`` seconds
    pass or it is revoked."""
    principal = current_principal()
    job_tenant = _job_tenant(job_id)
    tenancy.refuse_unless_sharer(principal, job_tenant, job_id)
    spec = parse_body(ShareSpec, _body())
    share, secret = _tenancy().create_token(
        Kind.SHARE,
        job_tenant,
        job_id=job_id,
        label=spec.label,
        expires_at=_services().clock() + spec.expires_in,
    )
    return json_response({"share": share, "secret": secret, "url": share_url(job_id, secret)}, 201)


@bp.get("/jobs/<job_id>/shares")
def list_shares(job_id: str) -> Response:
    """``{shares}``: the job's share links (revoked and expired ones too), oldest first."""
    job_tenant = _job_tenant(job_id)
    tenancy.refuse_unless_sharer(current_principal(), job_tenant, job_id)
    tokens = _tenancy().tokens(job_id=job_id)
    return json_response({"shares": [t for t in tokens if t["kind"] == Kind.SHARE.value]})


@bp.delete("/jobs/<job_id>/shares/<share_id>")
def revoke_share(job_id: str, share_id: str) -> Response:
    """Revoke one of the job's share links: ``{share}``; 404 ``not_found`` if it has none
    with that id."""
    job_tenant = _job_tenant(job_id)
    tenancy.refuse_unless_sharer(current_principal(), job_tenant, job_id)
    store = _tenancy()
    share = store.token(share_id)
    if share is None or share["kind"] != Kind.SHARE.value or share["jobId"] != job_id:
        raise NotFound(f"job {job_id!r} has no share link {share_id!r}")
    revoked = store.revoke(share_id)
    _forget(share_id)
    return json_response({"share": revoked})


def _stored_job(job_id: str) -> Any | None:
    """The stored job ``job_id`` (its row), or ``None``."""
    if not valid_job_id(job_id):
        return None
    with _services().store.read() as conn:
        return queries.get_job(conn, job_id)


def _job_tenant(job_id: str) -> str | None:
    """The tenant of the job ``job_id``; 404 if there is none (whoever asks)."""
    job = _stored_job(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    tenant: str | None = job["tenant"]
    return tenant


def _forget(token_id: str) -> None:
    authenticator = _services().authenticator
    if authenticator is not None:
        authenticator.forget(token_id)


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"invalid token request: {message}", details=[{"field": field, "message": message}]
    )
