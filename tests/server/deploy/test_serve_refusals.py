"""``jobwatch serve`` and ``jobwatch prune`` refusing what they cannot use: one clear
line and the exit code, never a traceback or a secret (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import fresh_schema, scale_urls

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--workers", "2"], 2, "--workers 2 needs a shared database and broker"),
        (["--redis-url", "redis://127.0.0.1:6379/0"], 2, "give --database-url postgresql://"),
        (["--database-url", "mysql://u@h/db"], 2, "unsupported database URL 'mysql://u@h/db'"),
        (
            ["--database-url", "postgresql://u@h/d", "--redis-url", "http://h"],
            2,
            "unsupported Redis URL 'http://h': use redis://host:port/db",
        ),
        (["--workers", "65"], 2, "workers must be an integer from 1 to 64, got '65'"),
        (
            ["--database-url", "postgresql://"],
            2,
            "invalid database URL 'postgresql://': it names no host",
        ),
        (
            ["--database-url", "postgresql://u@h"],
            2,
            "name the database: postgresql://user@host:5432/DBNAME",
        ),
        (
            ["--database-url", "postgresql://u:secret@h:nope/db"],
            2,
            "the port is not a number from 0 to 65535; special characters",
        ),
        (["--database-url", "postgresql://u:p@secret@h/db"], 2, "it holds more than one '@'"),
        (
            ["--database-url", "postgresql://u:secret/x@h/db"],
            2,
            "password must be percent-encoded",
        ),
        (
            ["--database-url", "postgresql://u@127.0.0.1:1/x?password=secret"],
            3,
            "cannot reach the database at postgresql://u@127.0.0.1:1/x?password=***",
        ),
        (
            ["--database-url", "postgresql://u@h/d", "--redis-url", "redis://h:6379/abc"],
            2,
            "the database 'abc' is not a number",
        ),
        (
            ["--database-url", "postgresql://u@h/d", "--redis-url", "redis://:secret#x@h:6379/0"],
            2,
            "invalid Redis URL 'redis://:***@h:6379/0'",
        ),
        (
            ["--database-url", "postgresql://postgres:secret@127.0.0.1:1/x"],
            3,
            "cannot reach the database at postgresql://postgres:***@127.0.0.1:1/x",
        ),
    ],
)
def test_bad_scale_out_settings_get_one_clear_line(args, code, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "jobwatch", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unreachable_redis(tmp_path):
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        result = subprocess.run(
            [sys.executable, "-m", "jobwatch", "serve", "--port", "0",
             "--database-url", url, "--redis-url", "redis://127.0.0.1:1/0"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 3
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_databases_get_one_clear_line(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobwatch", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, not a database\n" * 100)
    for args in (
        ("prune", "--days", "1", "--db", str(tmp_path / "missing.db")),
        ("prune", "--days", "1", "--db", str(tmp_path)),
        ("prune", "--days", "1", "--db", str(not_sqlite)),
        ("serve", "--port", "0", "--db", str(not_sqlite)),
        ("serve", "--port", "0", "--db", str(tmp_path)),
    ):
        done = run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "--db" in done.stderr
    assert not (tmp_path / "missing.db").exists()


WITHOUT_GUNICORN = (  # as tests/server/deploy/test_serve_single.py: Werkzeug's server
    "import sys; sys.modules['gunicorn'] = None; "
    "from jobwatch.cli.commands import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("single", [False, True], ids=["gunicorn", "werkzeug"])
def test_a_port_in_use_gets_one_clear_line(single, tmp_path):
    import socket

    start = ["-c", WITHOUT_GUNICORN] if single else ["-m", "jobwatch"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, *start, "serve", "--port", port, "--db", str(tmp_path / "db")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr and "[ERROR]" not in result.stderr
    assert not (tmp_path / "db").exists()  # refused before anything was made
