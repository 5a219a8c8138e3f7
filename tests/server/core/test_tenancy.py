"""Who may see and write what (jobwatch.server.core.tenancy) and tokens as text (core.tokens)."""

from __future__ import annotations

import pytest

from jobwatch.errors import Conflict, Forbidden, JobNotFound, QuotaExceeded, ValidationError
from jobwatch.server.core import tenancy
from jobwatch.server.core.tenancy import ADMIN, Kind, Principal, Scope, TenantQuotas
from jobwatch.server.core.tokens import (
    ShareClaim,
    ShareSigner,
    hashes_equal,
    new_token,
    new_token_id,
    stored_token_id,
    token_hash,
)

ACME_WRITE = Principal(Kind.WRITE, "acme", token_id="a" * 16, quotas=TenantQuotas())
ACME_READ = Principal(Kind.READ, "acme", token_id="b" * 16, quotas=TenantQuotas())
ACME_WORKER = Principal(Kind.WORKER, "acme", "acme:run-1", "c" * 16, TenantQuotas())
ACME_SHARE = Principal(Kind.SHARE, "acme", "acme:run-1", "d" * 16, TenantQuotas())
SERVER_READ = Principal(Kind.READ)  # JOBWATCH_READ_TOKEN of a single-tenant server


@pytest.mark.parametrize(
    ("principal", "tenant", "job_id", "readable"),
    [
        (ADMIN, "acme", "acme:run-1", True),
        (ADMIN, None, "run-1", True),
        (SERVER_READ, "globex", "globex:x", True),
        (ACME_WRITE, "acme", "acme:run-1", True),
        (ACME_WRITE, "globex", "globex:run-1", False),
        (ACME_WRITE, None, "run-1", False),
        (ACME_READ, "acme", "acme:run-2", True),
        (ACME_READ, "globex", "globex:run-2", False),
        (ACME_WORKER, "acme", "acme:run-1", True),
        (ACME_WORKER, "acme", "acme:run-2", False),
        (ACME_SHARE, "acme", "acme:run-1", True),
        (ACME_SHARE, "acme", "acme:run-2", False),
        # the job id and the tenant must both match
        (ACME_SHARE, "globex", "acme:run-1", False),
    ],
)
def test_who_may_read_a_job(
    principal: Principal, tenant: str | None, job_id: str, readable: bool
) -> None:
    assert tenancy.can_read(principal, tenant, job_id) is readable


@pytest.mark.parametrize(
    ("principal", "tenant", "job_id", "writable"),
    [
        (ADMIN, "acme", "acme:run-1", True),
        (SERVER_READ, None, "run-1", False),
        (ACME_WRITE, "acme", "acme:run-1", True),
        (ACME_WRITE, "globex", "globex:run-1", False),
        (ACME_READ, "acme", "acme:run-1", False),
        (ACME_WORKER, "acme", "acme:run-1", True),
        (ACME_WORKER, "acme", "acme:run-2", False),
        (ACME_SHARE, "acme", "acme:run-1", False),
    ],
)
def test_who_may_write_a_job(
    principal: Principal, tenant: str | None, job_id: str, writable: bool
) -> None:
    assert tenancy.can_write(principal, tenant, job_id) is writable


def test_a_tenant_creates_ids_only_in_its_namespace() -> None:
    tenancy.check_create(ACME_WRITE, "acme:run-9")
    for other in ("globex:run-9", "run-9", "acme:", "acmex:run"):
        with pytest.raises(Forbidden, match="start with 'acme:'"):
            tenancy.check_create(ACME_WRITE, other)
    tenancy.check_create(ADMIN, "anything-at-all")


def test_a_worker_token_creates_only_its_job_and_is_told_so() -> None:
    tenancy.check_create(ACME_WORKER, "acme:run-1")
    for other in ("acme:run-2", "globex:x", "op"):
        with pytest.raises(Forbidden, match=r"worker token .* only .*'acme:run-1'"):
            tenancy.check_create(ACME_WORKER, other)
        with pytest.raises(Forbidden, match="'acme:run-1'"):
            tenancy.refuse_other_job(ACME_WORKER, other)
    tenancy.refuse_other_job(ACME_WORKER, "acme:run-1")
    tenancy.refuse_other_job(ACME_WRITE, "acme:run-2")  # tenant tokens: the store decides


@pytest.mark.parametrize("principal", [ACME_READ, ACME_SHARE, SERVER_READ])
def test_readers_create_nothing(principal: Principal) -> None:
    with pytest.raises(Forbidden):
        tenancy.check_create(principal, "acme:run-1")


def test_a_new_jobs_owner() -> None:
    assert tenancy.new_job_owner(ACME_WRITE, "acme:x", set()) == "acme"
    assert tenancy.new_job_owner(ACME_WORKER, "acme:run-1", set()) == "acme"
    # the admin's job in an existing tenant's namespace is the tenant's
    assert tenancy.new_job_owner(ADMIN, "acme:x", {"acme"}) == "acme"
    assert tenancy.new_job_owner(ADMIN, "acme:x", set()) is None
    assert tenancy.new_job_owner(ADMIN, "run-1", {"acme"}) is None


def test_an_operators_job_in_a_tenants_namespace_is_not_the_tenants_to_change() -> None:
    tenancy.check_upsert(ACME_WRITE, "acme", "acme:x")
    with pytest.raises(Conflict, match="belongs to the operator, not to tenant 'acme'"):
        tenancy.check_upsert(ACME_WRITE, None, "acme:x")
    # a worker token of no tenant for a job that is acme's: the message names acme
    operators_worker = Principal(Kind.WORKER, None, "acme:run-1", "e" * 16)
    with pytest.raises(Conflict, match="belongs to tenant 'acme', not to the operator"):
        tenancy.check_upsert(operators_worker, "acme", "acme:run-1")


def test_a_one_job_tokens_tenant_is_its_jobs() -> None:
    names = {"acme", "globex"}
    assert tenancy.one_job_tenant("acme:j1", None, None, names) == "acme"  # not made yet
    assert tenancy.one_job_tenant("acme:j1", "acme", None, names) == "acme"
    assert tenancy.one_job_tenant("acme:j1", None, "acme", names) == "acme"  # the stored owner
    assert tenancy.one_job_tenant("nosuch:j1", None, None, names) is None
    assert tenancy.one_job_tenant("run-1", None, None, names) is None
    # the operator's job made in acme's namespace before acme was
    assert tenancy.one_job_tenant("acme:old", None, None, names, exists=True) is None
    with pytest.raises(ValidationError, match="belongs to the operator"):
        tenancy.one_job_tenant("acme:old", "acme", None, names, exists=True)
    with pytest.raises(ValidationError, match="belongs to tenant 'acme'"):
        tenancy.one_job_tenant("acme:j1", "globex", "acme", names, exists=True)
    with pytest.raises(ValidationError, match="start with 'globex:'"):
        tenancy.one_job_tenant("acme:j1", "globex", None, names)


def test_list_scopes() -> None:
    assert tenancy.list_scope(ADMIN) == Scope(everything=True)
    assert tenancy.list_scope(SERVER_READ) == Scope(everything=True)
    acme = tenancy.list_scope(ACME_READ)
    assert acme.shows("acme") and not acme.shows("globex") and not acme.shows(None)
    for one_job in (ACME_WORKER, ACME_SHARE):
        with pytest.raises(Forbidden):
            tenancy.list_scope(one_job)


def test_sharing_needs_the_tenants_write_token() -> None:
    tenancy.refuse_unless_sharer(ADMIN, "acme", "acme:run-1")
    tenancy.refuse_unless_sharer(ACME_WRITE, "acme", "acme:run-1")
    with pytest.raises(Forbidden):
        tenancy.refuse_unless_sharer(ACME_READ, "acme", "acme:run-1")
    with pytest.raises(JobNotFound):  # another tenant's job is a missing one
        tenancy.refuse_unless_sharer(ACME_WRITE, "globex", "globex:run-1")


def test_admin_only() -> None:
    tenancy.refuse_unless_admin(ADMIN)
    for principal in (ACME_WRITE, SERVER_READ, ACME_SHARE):
        with pytest.raises(Forbidden):
            tenancy.refuse_unless_admin(principal)


@pytest.mark.parametrize("name", ["acme", "a", "team-7", "x" * 32])
def test_tenant_names(name: str) -> None:
    assert tenancy.check_tenant_name(name) == name


@pytest.mark.parametrize("name", ["", "-acme", "Acme", "ac:me", "x" * 33, "a b", "ac.me"])
def test_bad_tenant_names(name: str) -> None:
    with pytest.raises(ValidationError):
        tenancy.check_tenant_name(name)


def test_tenant_of_id() -> None:
    assert tenancy.tenant_of_id("acme:run-1") == "acme"
    assert tenancy.tenant_of_id("run-1") is None
    assert tenancy.tenant_of_id("Host:run") is None  # not a tenant name


def test_tenant_quotas() -> None:
    quotas = TenantQuotas(max_jobs=2, max_bytes=100, max_connections=1)
    quotas.check_new_job("acme", 1)
    with pytest.raises(QuotaExceeded, match="maxJobs 2"):
        quotas.check_new_job("acme", 2)
    quotas.check_bytes("acme", 60, 40)
    with pytest.raises(QuotaExceeded, match="maxBytes 100"):
        quotas.check_bytes("acme", 60, 41)
    with pytest.raises(QuotaExceeded, match="maxConnections 1"):
        quotas.check_connection("acme", 1)
    TenantQuotas(0, 0, 0).check_new_job("acme", 10**9)  # 0: no limit
    with pytest.raises(ValueError, match="max_jobs"):
        TenantQuotas(max_jobs=-1)


def test_stored_tokens_are_random_named_and_hashed() -> None:
    token_id = new_token_id()
    token = new_token(token_id)
    assert len(token_id) == 16 and stored_token_id(token) == token_id
    assert new_token(token_id) != token
    assert len(token) >= 3 + 16 + 1 + 43  # 256 random bits in base64url
    assert token_hash(token) != token and len(token_hash(token)) == 64
    assert hashes_equal(token_hash(token), token_hash(token))
    assert not hashes_equal(token_hash(token), token_hash(token + "x"))
    for other in ("jw_", "jw_short_x", "jw_" + "g" * 16 + "_x", "Bearer abc", "jws_x"):
        assert stored_token_id(other) is None


def test_share_links_are_signed() -> None:
    signer = ShareSigner("k" * 64)
    claim = ShareClaim("0123456789abcdef", "acme:run-1", 1_800_000_000.0)
    token = signer.sign(claim)
    assert token.startswith("jws_")
    assert signer.claim(token) == claim
    assert ShareSigner("other" * 13).claim(token) is None  # another server's key
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert signer.claim(tampered) is None
    assert signer.claim("jws_garbage") is None
    assert signer.claim("jw_0123456789abcdef_x") is None
