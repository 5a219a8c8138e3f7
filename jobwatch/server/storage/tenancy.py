"""Tenants, tokens and the server's secret key in the SQL store.

Kept in the same database as the jobs, so with PostgreSQL every server
process sees a token made or revoked through any of them. Tokens are stored
as their hash only (:func:`jobwatch.server.core.tokens.token_hash`); the
token itself is returned once, when it is made.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from jobwatch.errors import Conflict, NotFound
from jobwatch.server.core.tenancy import Kind, TenantQuotas
from jobwatch.server.core.tokens import (
    ShareClaim,
    ShareSigner,
    new_token,
    new_token_id,
    token_hash,
)
from jobwatch.server.storage.schema import server_keys, tenants, tokens
from jobwatch.server.storage.store import Store, tenant_bytes, tenant_job_count

__all__ = ["TenancyStore", "token_state"]

SHARE_KEY = "share-links"
"""Name of the secret key share links are signed with, in ``server_keys``."""


def _quotas(row: Any) -> TenantQuotas:
    return TenantQuotas(int(row.max_jobs), int(row.max_bytes), int(row.max_connections))


class TenancyStore:
    """Tenants and tokens in ``store``'s database.

    Parameters
    ----------
    store:
        The server's store (its database and clock).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._signer: ShareSigner | None = None

    # -- tenants -------------------------------------------------------------------

    def put_tenant(self, name: str, quotas: TenantQuotas) -> tuple[dict[str, Any], bool]:
        """Create tenant ``name`` (a valid name, :func:`~jobwatch.server.core.tenancy.check_tenant_name`)
        or set its quotas; returns (its description, created)."""
        values = {
            "max_jobs": quotas.max_jobs,
            "max_bytes": quotas.max_bytes,
            "max_connections": quotas.max_connections,
        }
        with self.store.transaction() as conn:
            changed = conn.execute(update(tenants).where(tenants.c.name == name).values(values))
            created = changed.rowcount == 0
            if created:
                row = {"name": name, "created_at": self.store.clock(), **values}
                conn.execute(insert(tenants).values(row))
        tenant = self.tenant(name)
        assert tenant is not None
        return tenant, created

    def tenant_quotas(self, name: str) -> TenantQuotas | None:
        """Tenant ``name``'s quotas, or ``None`` if there is no such tenant."""
        with self.store.read() as conn:
            row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
        return None if row is None else _quotas(row)

    def tenant(self, name: str) -> dict[str, Any] | None:
        """``{name, quotas, usage, createdAt}`` of tenant ``name``, or ``None``."""
        with self.store.read() as conn:
            row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
            return None if row is None else self._describe(conn, row)

    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant, by name, as :meth:`tenant` describes it."""
        with self.store.read() as conn:
            rows = conn.execute(select(tenants).order_by(tenants.c.name)).all()
            return [self._describe(conn, row) for row in rows]

    def tenant_names(self) -> set[str]:
        """The names of every tenant."""
        with self.store.read() as conn:
            return set(conn.execute(select(tenants.c.name)).scalars())

    def _describe(self, conn: Connection, row: Any) -> dict[str, Any]:
        from jobwatch.contract.requests import format_ts

        return {
            "name": row.name,
            "quotas": {
                "maxJobs": row.max_jobs,
                "maxBytes": row.max_bytes,
                "maxConnections": row.max_connections,
            },
            "usage": {
                "jobs": tenant_job_count(conn, row.name),
                "bytes": tenant_bytes(conn, row.name),
            },
            "createdAt": format_ts(row.created_at),
        }

    # -- tokens --------------------------------------------------------------------

    def create_token(
        self,
        kind: Kind,
        tenant: str | None,
        *,
        job_id: str | None = None,
        label: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Make a token; returns (its stored description, the token itself).

        The token is shown only here: the store keeps its hash. A share token
        is signed (:class:`~jobwatch.server.core.tokens.ShareSigner`) and
        needs ``job_id`` and ``expires_at``; a worker token needs ``job_id``.

        Raises
        ------
        NotFound
            No tenant ``tenant`` (404 ``not_found``); ``None`` is the operator.
        """
        if tenant is not None and self.tenant_quotas(tenant) is None:
            raise NotFound(f"no tenant named {tenant!r}")
        token_id = new_token_id()
        if kind is Kind.SHARE:
            assert job_id is not None and expires_at is not None
            token = self.signer().sign(ShareClaim(token_id, job_id, expires_at))
        else:
            token = new_token(token_id)
        row = {
            "id": token_id,
            "hash": token_hash(token),
            "kind": kind.value,
            "tenant": tenant,
            "job_id": job_id,
            "label": label,
            "created_at": self.store.clock(),
            "expires_at": expires_at,
            "revoked_at": None,
        }
        with self.store.transaction() as conn:
            conn.execute(insert(tokens).values(row))
        return self.token(token_id) or {}, token

    def token_row(self, token_id: str) -> Any | None:
        """The stored row of token ``token_id`` (with its hash), or ``None``."""
        with self.store.read() as conn:
            return conn.execute(select(tokens).where(tokens.c.id == token_id)).first()

    def token(self, token_id: str) -> dict[str, Any] | None:
        """Token ``token_id`` as lists show it (never its hash), or ``None``:
        ``{id, kind, tenant, jobId, label, createdAt, expiresAt, revokedAt, state}``,
        ``state`` as :func:`token_state` says."""
        row = self.token_row(token_id)
        return None if row is None else _describe_token(row, self.store.clock())

    def tokens(self, tenant: str | None = None, job_id: str | None = None) -> list[dict[str, Any]]:
        """Tokens, oldest first: all, or ``tenant``'s, or those of one job."""
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if tenant is not None:
            query = query.where(tokens.c.tenant == tenant)
        if job_id is not None:
            query = query.where(tokens.c.job_id == job_id)
        with self.store.read() as conn:
            now = self.store.clock()
            return [_describe_token(row, now) for row in conn.execute(query)]

    def revoke(self, token_id: str) -> dict[str, Any] | None:
        """Revoke token ``token_id`` (again is harmless); returns it, or ``None`` if unknown."""
        with self.store.transaction() as conn:
            conn.execute(
                update(tokens)
                .where((tokens.c.id == token_id) & tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.store.clock())
            )
        return self.token(token_id)

    # -- the secret key ------------------------------------------------------------

    def signer(self) -> ShareSigner:
        """The share-link signer, with the key the first process made and stored."""
        if self._signer is None:
            self._signer = ShareSigner(self._secret_key(SHARE_KEY))
        return self._signer

    def _secret_key(self, name: str) -> str:
        with self.store.read() as conn:
            value = conn.execute(
                select(server_keys.c.value).where(server_keys.c.name == name)
            ).scalar()
        if value is not None:
            return str(value)
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(server_keys).values(name=name, value=secrets.token_hex(32)))
        except (IntegrityError, Conflict):  # another process made it first: use theirs
            pass
        with self.store.read() as conn:
            return str(
                conn.execute(
                    select(server_keys.c.value).where(server_keys.c.name == name)
                ).scalar_one()
            )


def token_state(row: Any, now: float) -> str:
    """``"revoked"``, ``"expired"`` (its ``expires_at`` is at or before ``now``,
    seconds since the epoch) or ``"active"``: whether a token row is in force."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and now >= row.expires_at:
        return "expired"
    return "active"


def _describe_token(row: Any, now: float) -> dict[str, Any]:
    from jobwatch.contract.requests import format_ts

    return {
        "id": row.id,
        "kind": row.kind,
        "tenant": row.tenant,
        "jobId": row.job_id,
        "label": row.label,
        "createdAt": format_ts(row.created_at),
        "expiresAt": format_ts(row.expires_at),
        "revokedAt": format_ts(row.revoked_at),
        "state": token_state(row, now),
    }
