"""Bodies of the admin API and of share links (``/api/admin/...``, ``/api/jobs/{jobId}/shares``).

The rules they serve (who may do what) are the server's
(:mod:`jobwatch.server.core.tenancy`); here is only their shape on the wire.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobwatch.contract.requests import JOB_ID_PATTERN, NoNul

__all__ = [
    "DEFAULT_SHARE_SECONDS",
    "MAX_SHARE_SECONDS",
    "MAX_TOKEN_SECONDS",
    "ShareSpec",
    "TenantSpec",
    "TokenSpec",
    "TokensQuery",
]

DEFAULT_SHARE_SECONDS = 7 * 24 * 3600.0
"""A share link lasts a week unless asked otherwise."""
MAX_SHARE_SECONDS = 365 * 24 * 3600.0
"""Longest a share link may last (a year): a link always expires."""
MAX_TOKEN_SECONDS = 10 * 365 * 24 * 3600.0
"""Longest ``expiresIn`` of another token (ten years)."""

_Strict = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", populate_by_name=True)
Label = Annotated[str, Field(max_length=200), NoNul]
Count = Annotated[int, Field(ge=0, le=2**62)]


class TenantSpec(BaseModel):
    """Body of ``PUT /api/admin/tenants/{name}``: the tenant's quotas, each optional
    (absent: the default; 0: no limit). ``maxJobs`` jobs stored, ``maxBytes`` bytes
    of log text, samples and metrics, ``maxConnections`` WebSockets per server process."""

    model_config = _Strict

    max_jobs: Count | None = Field(None, alias="maxJobs")
    max_bytes: Count | None = Field(None, alias="maxBytes")
    max_connections: Count | None = Field(None, alias="maxConnections")


class TokenSpec(BaseModel):
    """Body of ``POST /api/admin/tokens``.

    ``kind`` (``write``, ``read``, ``worker`` or ``share``), ``tenant`` (required
    for write and read; a worker or share token without one reaches an
    operator's job), ``jobId`` (required for worker and share: the one job),
    ``label`` (for people), ``expiresIn`` (seconds; share links default to a
    week and last at most a year; other tokens never expire by default).
    """

    model_config = _Strict

    kind: Literal["write", "read", "worker", "share"]
    tenant: Annotated[str, Field(max_length=32)] | None = None
    job_id: Annotated[str, Field(max_length=128, pattern=JOB_ID_PATTERN)] | None = Field(
        None, alias="jobId"
    )
    label: Label | None = None
    expires_in: Annotated[float, Field(gt=0, le=MAX_TOKEN_SECONDS)] | None = Field(
        None, alias="expiresIn"
    )


class ShareSpec(BaseModel):
    """Body of ``POST /api/jobs/{jobId}/shares``: ``expiresIn`` (seconds, default a
    week, at most a year) and ``label``; both optional."""

    model_config = _Strict

    expires_in: Annotated[float, Field(gt=0, le=MAX_SHARE_SECONDS)] = Field(
        DEFAULT_SHARE_SECONDS, alias="expiresIn"
    )
    label: Label | None = None


class TokensQuery(BaseModel):
    """``GET /api/admin/tokens`` parameters: ``tenant`` and ``jobId``, each optional
    (the tokens of that tenant or job; absent: every token)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tenant: str | None = None
    job_id: str | None = Field(None, alias="jobId")
