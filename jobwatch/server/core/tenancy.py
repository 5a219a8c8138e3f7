"""Who may see and write what: tenants, token kinds and the rules between them.

One server may serve many tenants (customers or teams). Each job belongs to at
most one tenant; a job of no tenant is the operator's. A request carries one
:class:`Principal`, what its token proves:

=========  ==========================================================
kind       may
=========  ==========================================================
``admin``  everything: every job, the admin API (the server's
           ``JOBWATCH_TOKEN``; also whoever reaches a server without
           a token, which answers loopback only)
``read``   read every job of its tenant (with no tenant: the
           server's ``JOBWATCH_READ_TOKEN``, every job)
``write``  read and write every job of its tenant, create jobs in its
           namespace, share them
``worker`` create, update, report to and complete one job; read it
``share``  read one job (a share link); nothing else
=========  ==========================================================

Job ids are one space for the whole server, split by tenant: a tenant's job
ids start with its name and a colon (``acme:resnet-7``), and only the tenant
(or the admin) may create ids there. So no tenant can take an id another
will want (squat it), and no answer depends on whether another tenant's job
exists: a job the principal may not read is answered as a missing one (404),
and an id outside its namespace is refused whether or not it exists. The
operator's own ids (those of a single-tenant server) keep any form. The
seed's requests are unchanged: a tenant's worker sends them with its job id.

Nothing here does I/O; the web layer asks these functions and the store
applies them inside its transactions.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from enum import Enum

from jobwatch.errors import Conflict, Forbidden, JobNotFound, QuotaExceeded, ValidationError

__all__ = [
    "ADMIN",
    "DEFAULT_TENANT_QUOTAS",
    "Kind",
    "Principal",
    "Scope",
    "TenantQuotas",
    "can_read",
    "can_write",
    "check_create",
    "check_tenant_name",
    "check_upsert",
    "job_namespace",
    "list_scope",
    "new_job_owner",
    "one_job_tenant",
    "refuse_other_job",
    "refuse_unless_admin",
    "refuse_unless_sharer",
    "tenant_of_id",
]

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""A tenant's name: 1-32 lower-case letters, digits and ``-``, not starting with ``-``."""
NAMESPACE_SEPARATOR = ":"
"""Between a tenant's name and the rest of its job ids."""


class Kind(str, Enum):
    """What a token may do (see the module's table)."""

    ADMIN = "admin"
    WRITE = "write"
    READ = "read"
    WORKER = "worker"
    SHARE = "share"


STORED_KINDS = (Kind.WRITE, Kind.READ, Kind.WORKER, Kind.SHARE)
"""Kinds of token the admin API makes; the admin token is the server's setting."""


@dataclass(frozen=True)
class TenantQuotas:
    """What one tenant may hold; 0 turns one off.

    Attributes
    ----------
    max_jobs:
        Jobs stored at once (finished ones count until pruned).
    max_bytes:
        Bytes of log text, per-GPU samples and training metrics of all its
        jobs (counted as :mod:`jobwatch.server.core.quotas` counts them).
    max_connections:
        WebSocket connections open at once, per server process.
    """

    max_jobs: int = 10_000
    max_bytes: int = 10 * 1024**3
    max_connections: int = 100

    def __post_init__(self) -> None:
        for name in ("max_jobs", "max_bytes", "max_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0 (0: no limit), got {value!r}")

    def check_new_job(self, tenant: str, stored_jobs: int) -> None:
        """Refuse a new job of ``tenant`` holding ``stored_jobs`` (507 ``quota_exceeded``)."""
        if self.max_jobs and stored_jobs >= self.max_jobs:
            raise QuotaExceeded(
                f"tenant {tenant!r} stores {stored_jobs} jobs, the most its quota allows "
                f"(maxJobs {self.max_jobs}); prune finished jobs or ask for a larger quota"
            )

    def check_bytes(self, tenant: str, stored: int, added: int) -> None:
        """Refuse ``added`` bytes for ``tenant`` storing ``stored`` (507); nothing is stored."""
        if self.max_bytes and stored + added > self.max_bytes:
            raise QuotaExceeded(
                f"tenant {tenant!r} stores {stored} bytes of log lines, samples and metrics; "
                f"{added} more would pass its quota (maxBytes {self.max_bytes}); nothing was stored"
            )

    def check_connection(self, tenant: str, open_now: int) -> None:
        """Refuse one more WebSocket of ``tenant`` with ``open_now`` open (507)."""
        if self.max_connections and open_now >= self.max_connections:
            raise QuotaExceeded(
                f"tenant {tenant!r} has {open_now} WebSocket connections open on this server "
                f"process, the most its quota allows (maxConnections {self.max_connections})"
            )


DEFAULT_TENANT_QUOTAS = TenantQuotas()
"""A new tenant's quotas unless the admin gives others."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, as its token proves.

    Attributes
    ----------
    kind:
        The token's :class:`Kind`.
    tenant:
        Its tenant; ``None`` for the server's own tokens (admin, and the
        read token of a single-tenant server), which reach every job, and for
        worker and share tokens of an operator's job.
    job_id:
        For ``worker`` and ``share`` tokens, the one job they reach.
    token_id:
        The stored token's public id (``None`` for the server's own tokens):
        what revoking names, and what a WebSocket re-checks.
    quotas:
        The tenant's quotas (``None`` without a tenant).
    """

    kind: Kind
    tenant: str | None = None
    job_id: str | None = None
    token_id: str | None = None
    quotas: TenantQuotas | None = None

    @property
    def writes(self) -> bool:
        """Whether this token may write anything at all."""
        return self.kind in (Kind.ADMIN, Kind.WRITE, Kind.WORKER)


ADMIN = Principal(Kind.ADMIN)
"""The server's admin token, or anyone on a server without tokens."""


def check_tenant_name(name: str) -> str:
    """``name`` if it is a valid tenant name (:data:`TENANT_NAME`).

    Raises
    ------
    jobwatch.errors.ValidationError
        With the rule.
    """
    if not isinstance(name, str) or not TENANT_NAME.fullmatch(name):
        raise ValidationError(
            "invalid tenant name",
            details=[
                {
                    "field": "name",
                    "message": "must be 1-32 lower-case letters, digits and -, "
                    "starting with a letter or digit",
                }
            ],
        )
    return name


def job_namespace(tenant: str) -> str:
    """The prefix every job id of ``tenant`` starts with: ``"<tenant>:"``."""
    return tenant + NAMESPACE_SEPARATOR


def tenant_of_id(job_id: str) -> str | None:
    """The tenant name a job id's namespace names (the part before the first
    colon, if it is a valid tenant name), or ``None``. Whether such a tenant
    exists is the caller's to know."""
    head, sep, _ = job_id.partition(NAMESPACE_SEPARATOR)
    return head if sep and TENANT_NAME.fullmatch(head) else None


def _same_tenant(principal: Principal, job_tenant: str | None) -> bool:
    return principal.tenant is not None and principal.tenant == job_tenant


def can_read(principal: Principal, job_tenant: str | None, job_id: str) -> bool:
    """Whether ``principal`` may read the job ``job_id`` of ``job_tenant``
    (``None``: the operator's). A job it may not read is answered as missing."""
    if principal.kind in (Kind.WORKER, Kind.SHARE):
        return principal.job_id == job_id and principal.tenant == job_tenant
    if principal.tenant is None:  # the admin token, the single-tenant read token
        return True
    return _same_tenant(principal, job_tenant)


def can_write(principal: Principal, job_tenant: str | None, job_id: str) -> bool:
    """Whether ``principal`` may update, report to or complete an existing job."""
    if principal.kind is Kind.ADMIN:
        return True
    if principal.kind is Kind.WRITE:
        return _same_tenant(principal, job_tenant)
    if principal.kind is Kind.WORKER:
        return principal.job_id == job_id and principal.tenant == job_tenant
    return False


def check_create(principal: Principal, job_id: str) -> None:
    """Refuse ``principal`` a new job (or an upsert) named ``job_id`` outside what it may create.

    Checked before the store is asked, so the answer is the same whether the
    id exists or not.

    Raises
    ------
    Forbidden
        A read or share token; a tenant's id outside its namespace; a worker
        token's other job (:func:`refuse_other_job`).
    """
    if principal.kind is Kind.ADMIN:
        return
    if principal.kind is Kind.WORKER:
        refuse_other_job(principal, job_id)
        return
    if principal.kind is not Kind.WRITE or principal.tenant is None:
        raise Forbidden("this token may not create or change jobs")
    prefix = job_namespace(principal.tenant)
    if not job_id.startswith(prefix) or len(job_id) == len(prefix):
        raise Forbidden(
            f"tenant {principal.tenant!r} creates job ids that start with {prefix!r}, "
            f"e.g. {prefix}run-1"
        )


def refuse_other_job(principal: Principal, job_id: str) -> None:
    """Refuse a worker token a write to any job but its own (403 ``forbidden``).

    Decided from the token alone, before the store is asked, so the answer is
    the same whether ``job_id`` exists or not (a read of another job is
    answered as missing, as for every token). Other tokens pass: the store
    checks their writes.

    Raises
    ------
    Forbidden
        Naming the one job the worker token reports to.
    """
    if principal.kind is Kind.WORKER and principal.job_id != job_id:
        raise Forbidden(
            f"a worker token may only create, report to and complete its own job "
            f"{principal.job_id!r}, not {job_id!r}"
        )


def one_job_tenant(
    job_id: str,
    given: str | None,
    owner: str | None,
    tenants: Container[str],
    *,
    exists: bool = False,
) -> str | None:
    """The tenant a worker or share token for ``job_id`` belongs to: its job's.

    That is the stored job's ``owner`` when the job ``exists`` (an ``owner``
    other than ``None`` implies it; ``None``: the operator's), else the tenant
    its id's namespace names if that tenant is among ``tenants`` (the owner
    :func:`new_job_owner` will give the job), else ``None``. A token of any
    other tenant could never reach the job.

    Parameters
    ----------
    given:
        The tenant the request named, if any; it must agree.

    Raises
    ------
    ValidationError
        ``given`` contradicts the job's owner (field ``tenant``), or names a
        tenant whose namespace ``job_id`` is not in (field ``jobId``).
    """
    exists = exists or owner is not None
    if exists:
        tenant = owner
    else:
        named = tenant_of_id(job_id)
        tenant = named if named is not None and named in tenants else None
    if given is None or given == tenant:
        return tenant
    prefix = job_namespace(given)
    if not exists and not job_id.startswith(prefix):
        raise _field_error("jobId", f"tenant {given!r}'s job ids start with {prefix!r}")
    raise _field_error(
        "tenant",
        f"job {job_id!r} belongs to {_owner_name(tenant)}, not to tenant {given!r}; "
        "leave tenant out and the token gets the job's",
    )


def _owner_name(tenant: str | None) -> str:
    return "the operator" if tenant is None else f"tenant {tenant!r}"


def _field_error(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"invalid token request: {message}", details=[{"field": field, "message": message}]
    )


def new_job_owner(principal: Principal, job_id: str, tenants: Container[str]) -> str | None:
    """The tenant a new job ``job_id`` made by ``principal`` belongs to: the
    principal's, or for the admin the tenant whose namespace the id is in (if
    it exists among ``tenants``), else ``None`` (the operator's)."""
    if principal.kind is not Kind.ADMIN:
        return principal.tenant
    named = tenant_of_id(job_id)
    return named if named is not None and named in tenants else None


def check_upsert(principal: Principal, job_tenant: str | None, job_id: str) -> None:
    """Refuse ``principal`` an update of the existing job ``job_id`` of ``job_tenant``.

    Only reached after :func:`check_create` let the id through, so the job is
    in the principal's namespace (or is a worker token's own job): one it
    still may not write is the operator's (made there before the tenant was),
    or for a worker token made before its job, the job's tenant. Naming that
    owner tells nothing the principal may not know.

    Raises
    ------
    Conflict
        409 ``job_exists``, naming who the job belongs to.
    """
    if not can_write(principal, job_tenant, job_id):
        raise Conflict(
            f"job {job_id!r} exists and belongs to {_owner_name(job_tenant)}, "
            f"not to {_owner_name(principal.tenant)}"
        )


@dataclass(frozen=True)
class Scope:
    """Which jobs a listing or stream shows: every job (``everything``), or those of ``tenant``."""

    everything: bool
    tenant: str | None = None

    def shows(self, job_tenant: str | None) -> bool:
        """Whether a job of ``job_tenant`` is in this scope."""
        return self.everything or (self.tenant is not None and job_tenant == self.tenant)


def list_scope(principal: Principal) -> Scope:
    """The jobs ``principal`` may list (``/api/jobs``, ``subscribe:jobs``, Prometheus).

    Raises
    ------
    Forbidden
        Worker and share tokens, which reach one job and no listing.
    """
    if principal.kind in (Kind.WORKER, Kind.SHARE):
        raise Forbidden("this token reaches one job only; it lists nothing")
    if principal.tenant is None:
        return Scope(everything=True)
    return Scope(everything=False, tenant=principal.tenant)


def refuse_unless_admin(principal: Principal) -> None:
    """Raise :class:`Forbidden` unless ``principal`` is the admin."""
    if principal.kind is not Kind.ADMIN:
        raise Forbidden("the admin API needs the server's admin token (JOBWATCH_TOKEN)")


def refuse_unless_sharer(principal: Principal, job_tenant: str | None, job_id: str) -> None:
    """Refuse ``principal`` sharing (or unsharing) the job: only the admin and
    its tenant's write tokens may.

    Raises
    ------
    JobNotFound
        ``principal`` may not read the job (as if it did not exist).
    Forbidden
        It may read it but not share it.
    """
    if not can_read(principal, job_tenant, job_id):
        raise JobNotFound(f"no job with id {job_id!r}")
    if principal.kind is Kind.ADMIN:
        return
    if principal.kind is not Kind.WRITE or not _same_tenant(principal, job_tenant):
        raise Forbidden("only the tenant's write token (or the admin) may share its jobs")
