"""``jobwatch tenants``, ``jobwatch tokens`` and ``jobwatch share`` against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

import jobwatch.cli.commands as cli
from jobwatch.server import EmbeddedServer

ADMIN = "admin-token-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(config={"WRITE_TOKEN": ADMIN, "STALL_CHECK_INTERVAL": 0}) as srv:
        yield srv


def jobwatch(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def test_tenants_and_tokens_from_the_command_line(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.setenv("JOBWATCH_TOKEN", ADMIN)
    code, out = jobwatch(capsys, "tenants", "create", "acme", "--max-jobs", "5")
    assert code == 0 and out[0].startswith("acme  jobs 0/5")
    code, out = jobwatch(capsys, "tokens", "create", "--kind", "write", "--tenant", "acme")
    token = out[-1]
    assert code == 0 and token.startswith("jw_")
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.put(f"{server.url}/api/jobs/acme:r", json={}, headers=auth, timeout=10).ok

    code, out = jobwatch(capsys, "tokens", "list", "--tenant", "acme")
    token_id = out[0].split()[0]
    assert code == 0 and "in force" in out[0] and token not in "\n".join(out)

    code, out = jobwatch(capsys, "share", "acme:r", "--expires", "2h", "--token", token)
    assert code == 0 and "#share=jws_" in out[-1]

    code, out = jobwatch(capsys, "tokens", "revoke", token_id)
    assert code == 0 and "revoked" in out[0]
    assert requests.get(f"{server.url}/api/jobs", headers=auth, timeout=10).status_code == 401


def test_the_admin_commands_need_the_admin_token(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["tenants", "list", "--url", server.url, "--token", "not-the-admin-token"])
    assert code == cli.EXIT_API_ERROR
    assert "token" in capsys.readouterr().err


def test_a_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["share", "job", "--expires", "soon"])
    assert exit_.value.code == 2
    assert "90s, 15m, 12h or 7d" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["share", "acme:j1", "--expires", "400d"],
        ["tokens", "create", "--kind", "share", "--job", "acme:j1", "--expires", "400d"],
        ["tokens", "create", "--kind", "read", "--tenant", "acme", "--expires", "3651d"],
        ["tokens", "create", "--kind", "worker", "--job", "acme:j1", "--expires", "3651d"],
    ],
)
def test_an_expiry_past_its_limit_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # checked before any request: no server is needed
    code = cli.main([*argv, "--url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    assert len(err.strip().splitlines()) == 1 and "--expires" in err
    assert ("365d" if "share" in argv else "3650d") in err


def test_the_token_list_says_expired_and_revoked(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWATCH_URL", server.url)
    monkeypatch.setenv("JOBWATCH_TOKEN", ADMIN)
    assert jobwatch(capsys, "tenants", "create", "acme")[0] == 0
    argv = ("tokens", "create", "--kind", "read", "--tenant", "acme")
    assert jobwatch(capsys, *argv, "--expires", "1s", "--label", "short")[0] == 0
    code, out = jobwatch(capsys, *argv, "--label", "gone")
    assert jobwatch(capsys, "tokens", "revoke", out[0].split()[0])[0] == 0
    assert jobwatch(capsys, *argv, "--label", "kept")[0] == 0
    time.sleep(1.1)
    code, out = jobwatch(capsys, "tokens", "list", "--tenant", "acme")
    assert code == 0
    states = {line.split()[-1]: line for line in out}
    assert "  expired  " in states["short"] and "in force" not in states["short"]
    assert "  revoked  " in states["gone"]
    assert "  in force  " in states["kept"]


def test_an_unknown_tenant_is_named_once(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tokens", "create", "--kind", "read", "--tenant", "nosuchtenant"]
    code = cli.main([*argv, "--url", server.url, "--token", ADMIN])
    err = capsys.readouterr().err
    assert code == cli.EXIT_API_ERROR
    assert err.count("no tenant named 'nosuchtenant'") == 1, err
