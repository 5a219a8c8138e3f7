"""Bodies of the admin API and of share links (``/api/admin/...``, ``/api/jobs/{jobId}/shares``).

The rules they serve (who may do what) are the server's
(:mod:`jobwatch.server.core.tenancy`); here is only their shape on the wire.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from jobwatch.contract.requests import JOB_ID_PATTERN, NoNul

__all__ = [
    "DEFAULT_SHARE_SECONDS",
    "MAX_SHARE_SECONDS",
    "MAX_TOKEN_SECONDS",
    "ShareSpec",
    "TenantSpec",
    "TokenSpec",
    "TokensQuery",
    "expiry_limit",
    "expiry_problem",
]

DEFAULT_SHARE_SECONDS = 7 * 24 * 3600.0
"""A share link lasts a week unless asked otherwise."""
MAX_SHARE_SECONDS = 365 * 24 * 3600.0
"""Longest a share link may last (a year): a link always expires."""
MAX_TOKEN_SECONDS = 10 * 365 * 24 * 3600.0
"""Longest ``expiresIn`` of another token (ten years)."""


def expiry_limit(kind: str) -> float:
    """Most seconds a token of ``kind`` may last: :data:`MAX_SHARE_SECONDS` for a
    share link, :data:`MAX_TOKEN_SECONDS` for the others."""
    return MAX_SHARE_SECONDS if kind == "share" else MAX_TOKEN_SECONDS


def expiry_problem(kind: str, seconds: float) -> str | None:
    """Why ``seconds`` is too long an expiry for a token of ``kind``, or ``None``.

    The one wording of every path that makes a token (the admin API, share
    links, the CLI), so none of them shortens an expiry silently.
    """
    limit = expiry_limit(kind)
    if seconds <= limit:
        return None
    what = "a share link" if kind == "share" else f"a {kind} token"
    return (
        f"must be at most {limit:.0f} seconds ({limit / 86400:.0f} days) for {what}, "
        f"got {seconds:g}"
    )


def _share_expiry(seconds: float) -> float:
    problem = expiry_problem("share", seconds)
    if problem:
        raise ValueError(problem)
    return seconds


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
    week and last at most a year, other tokens at most ten years and never
    expire by default; a longer one is refused, never shortened).
    """

    model_config = _Strict

    kind: Literal["write", "read", "worker", "share"]
    tenant: Annotated[str, Field(max_length=32)] | None = None
    job_id: Annotated[str, Field(max_length=128, pattern=JOB_ID_PATTERN)] | None = Field(
        None, alias="jobId"
    )
    label: Label | None = None
    expires_in: Annotated[float, Field(gt=0)] | None = Field(None, alias="expiresIn")

    @field_validator("expires_in")
    @classmethod
    def _within_limit(cls, value: float | None, info: ValidationInfo) -> float | None:
        problem = None if value is None else expiry_problem(info.data.get("kind", ""), value)
        if problem:
            raise ValueError(problem)
        return value


class ShareSpec(BaseModel):
    """Body of ``POST /api/jobs/{jobId}/shares``: ``expiresIn`` (seconds, default a
    week, at most a year) and ``label``; both optional."""

    model_config = _Strict

    expires_in: Annotated[float, Field(gt=0), AfterValidator(_share_expiry)] = Field(
        DEFAULT_SHARE_SECONDS, alias="expiresIn"
    )
    label: Label | None = None


class TokensQuery(BaseModel):
    """``GET /api/admin/tokens`` parameters: ``tenant`` and ``jobId``, each optional
    (the tokens of that tenant or job; absent: every token)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tenant: str | None = None
    job_id: str | None = Field(None, alias="jobId")
