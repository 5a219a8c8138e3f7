"""The shapes of the admin API's answers and of share links, as pydantic models
(see :mod:`jobwatch.server.web.answers` for why answers are models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_Answer = ConfigDict(extra="forbid", populate_by_name=True)


class TenantQuotasAnswer(BaseModel):
    """A tenant's quotas; 0: no limit."""

    model_config = _Answer

    max_jobs: int = Field(alias="maxJobs", ge=0, description="jobs stored")
    max_bytes: int = Field(
        alias="maxBytes", ge=0, description="bytes of log text, samples and training metrics"
    )
    max_connections: int = Field(
        alias="maxConnections", ge=0, description="WebSockets open at once, per server process"
    )


class TenantUsage(BaseModel):
    """What a tenant stores now."""

    model_config = _Answer

    jobs: int = Field(ge=0)
    bytes: int = Field(ge=0)


class Tenant(BaseModel):
    """A tenant: its name (its job ids start with ``name:``), quotas and usage."""

    model_config = _Answer

    name: str
    quotas: TenantQuotasAnswer
    usage: TenantUsage
    created_at: datetime = Field(alias="createdAt")


class TenantAnswer(BaseModel):
    """``{tenant}``: the answer of ``PUT /api/admin/tenants/{name}``."""

    model_config = _Answer

    tenant: Tenant


class TenantList(BaseModel):
    """``{tenants}``, by name."""

    model_config = _Answer

    tenants: list[Tenant]


class Token(BaseModel):
    """A stored token as lists show it: never the token itself."""

    model_config = _Answer

    id: str = Field(description="public: what revoking names")
    kind: Literal["write", "read", "worker", "share"]
    tenant: str | None = Field(description="null: a worker or share token of an operator's job")
    job_id: str | None = Field(alias="jobId", description="the one job of a worker or share token")
    label: str | None
    created_at: datetime = Field(alias="createdAt")
    expires_at: datetime | None = Field(alias="expiresAt")
    revoked_at: datetime | None = Field(alias="revokedAt")
    state: Literal["active", "expired", "revoked"] = Field(
        description="whether it is in force now: active, or expired, or revoked"
    )


class TokenCreated(BaseModel):
    """A new token: ``secret`` is the token, shown only here; ``url`` opens a share link's job."""

    model_config = _Answer

    token: Token
    secret: str
    url: str | None = Field(None, description="share links only")


class TokenAnswer(BaseModel):
    """``{token}``: the answer of a revocation."""

    model_config = _Answer

    token: Token


class TokenList(BaseModel):
    """``{tokens}``, oldest first."""

    model_config = _Answer

    tokens: list[Token]


class ShareCreated(BaseModel):
    """A new share link: ``url`` opens the job's page, ``secret`` reads its API and stream."""

    model_config = _Answer

    share: Token
    secret: str
    url: str


class ShareAnswer(BaseModel):
    """``{share}``: the answer of a revocation."""

    model_config = _Answer

    share: Token


class ShareList(BaseModel):
    """``{shares}``: a job's share links, revoked and expired ones too."""

    model_config = _Answer

    shares: list[Token]


ANSWERS: tuple[type[BaseModel], ...] = (
    TenantAnswer,
    TenantList,
    TokenCreated,
    TokenAnswer,
    TokenList,
    ShareCreated,
    ShareAnswer,
    ShareList,
)
"""The models the OpenAPI document lists."""
