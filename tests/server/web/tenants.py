"""Two tenants (acme, globex) on one embedded server (SQLite, fake clock), with
requests bound to each token: what the tenancy tests share (the ``setup``
fixture is in this folder's conftest)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock, WsClient

ADMIN = "admin-token-0123456789abcdef"


@dataclass
class Tenant:
    name: str
    write: str
    read: str


class Http:
    """requests bound to one server and one token."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base = base
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method: str) -> Callable[..., requests.Response]:
        def call(path: str, **kwargs: Any) -> requests.Response:
            return self.session.request(method.upper(), self.base + path, timeout=10, **kwargs)

        return call


@dataclass
class Setup:
    server: EmbeddedServer
    clock: FakeClock
    admin: Http
    acme: Tenant
    globex: Tenant

    def http(self, token: str | None) -> Http:
        return Http(self.server.url, token)

    def ws(self, token: str) -> WsClient:
        return WsClient(f"{self.server.ws_url}?token={token}")

    def tenant(self, name: str, **quotas: int) -> Tenant:
        assert self.admin.put(f"/api/admin/tenants/{name}", json=quotas).status_code in (200, 201)
        return Tenant(name, self.token("write", name), self.token("read", name))

    def token(self, kind: str, tenant: str | None, **fields: Any) -> str:
        body = {"kind": kind, "tenant": tenant, **fields}
        answer = self.admin.post("/api/admin/tokens", json=body)
        assert answer.status_code == 201, answer.text
        secret: str = answer.json()["secret"]
        return secret


@contextmanager
def tenancy_setup(clock: FakeClock, tmp_path: Path) -> Iterator[Setup]:
    """A server with the admin token and tenants acme and globex (each a write and a read token)."""
    server = EmbeddedServer(
        config={
            "DATABASE": str(tmp_path / "jobs.db"),
            "CLOCK": clock,
            "STALL_CHECK_INTERVAL": 0,
            "WRITE_TOKEN": ADMIN,
        }
    )
    admin = Http(server.url, ADMIN)
    s = Setup(server, clock, admin, None, None)  # type: ignore[arg-type]
    try:
        s.acme, s.globex = s.tenant("acme"), s.tenant("globex")
        yield s
    finally:
        server.stop()


def progress(http: Http, job_id: str, value: float = 10.0, **extra: Any) -> requests.Response:
    body = {"workerId": "w1", "progress": value, **extra}
    return http.post(f"/api/jobs/{job_id}/progress", json=body)
