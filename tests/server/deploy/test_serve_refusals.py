"""``jobwatch serve`` and ``jobwatch prune`` refusing what they cannot use: one clear
line and the exit code, never a traceback or a secret.

Each refusal comes before anything starts, so the command runs in this process
(its stderr read at the file descriptor); a port in use, which only gunicorn or
Werkzeug finds, is refused by the real command in a child process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobwatch.cli.commands import main
from tests.services import fresh_schema, scale_urls

Captured = pytest.CaptureFixture[str]


def jobwatch(capfd: Captured, *argv: str) -> tuple[int, str]:
    """Run ``jobwatch ARGV`` in this process: its exit code and what it wrote to stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capfd.readouterr().err


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
def test_bad_scale_out_settings_get_one_clear_line(
    args: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    capfd: Captured,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    returned, stderr = jobwatch(capfd, "serve", "--port", "0", *args)
    assert returned == code, stderr
    assert message in stderr
    assert "secret" not in stderr
    assert "Traceback" not in stderr


def test_serve_refuses_an_unreachable_redis(capfd: Captured) -> None:
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        code, stderr = jobwatch(
            capfd, "serve", "--port", "0", "--database-url", url,
            "--redis-url", "redis://127.0.0.1:1/0",
        )  # fmt: skip
    assert code == 3
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in stderr
    assert "Traceback" not in stderr


def test_bad_databases_get_one_clear_line(tmp_path: Path, capfd: Captured) -> None:
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("hello, not a database\n" * 100)
    for args in (
        ("prune", "--days", "1", "--db", str(tmp_path / "missing.db")),
        ("prune", "--days", "1", "--db", str(tmp_path)),
        ("prune", "--days", "1", "--db", str(not_sqlite)),
        ("serve", "--port", "0", "--db", str(not_sqlite)),
        ("serve", "--port", "0", "--db", str(tmp_path)),
    ):
        code, stderr = jobwatch(capfd, *args)
        assert code == 2, (args, stderr)
        assert "Traceback" not in stderr and "--db" in stderr
    assert not (tmp_path / "missing.db").exists()


WITHOUT_GUNICORN = (  # as tests/server/deploy/test_serve_single.py: Werkzeug's server
    "import sys; sys.modules['gunicorn'] = None; "
    "from jobwatch.cli.commands import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.slow  # child processes
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


def test_a_db_in_a_missing_folder_is_refused_not_made(
    tmp_path: Path, capfd: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --db (or $JOBWATCH_DATABASE_URL, or a sqlite:/// URL) whose folder does not
    exist is a typo as often as not: refused with one line, and no folder is made.
    A port in use refuses the serve too, after the database check, so nothing starts."""
    import socket

    missing = tmp_path / "no" / "such"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for given in (str(missing / "x.db"), f"sqlite:///{missing / 'x.db'}"):
            for args in (
                ("serve", "--port", port, "--db", given),
                ("prune", "--days", "1", "--db", given),
            ):
                code, stderr = jobwatch(capfd, *args)
                assert code == 2, (args, stderr)
                assert f"the folder {missing} does not exist (create it first)" in stderr, stderr
                assert stderr.count("\n") == 1 and "Traceback" not in stderr
        monkeypatch.setenv("JOBWATCH_DATABASE_URL", str(missing / "x.db"))
        code, stderr = jobwatch(capfd, "serve", "--port", port)
        assert code == 2 and "does not exist (create it first)" in stderr, stderr
    assert not (tmp_path / "no").exists()


def test_the_default_database_folder_is_still_made(
    tmp_path: Path, capfd: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --db the database goes to the user data folder, made when missing."""
    import socket

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("JOBWATCH_DATABASE_URL", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, stderr = jobwatch(capfd, "serve", "--port", str(taken.getsockname()[1]))
    assert code == 2 and "is in use" in stderr, stderr  # only the port refused it


def test_a_db_in_a_missing_folder_is_refused_on_every_start_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rule for :func:`jobwatch.serve` (naming ``db``) and the WSGI entry
    point gunicorn runs (naming ``JOBWATCH_DATABASE_URL``): a SettingsError, and no
    folder made (before: both made the folders)."""
    import jobwatch
    from jobwatch.errors import SettingsError
    from jobwatch.server.deploy.wsgi import app_from_env

    missing = tmp_path / "no" / "such"
    with pytest.raises(SettingsError, match=r"^db .*the folder .* does not exist"):
        jobwatch.serve(db=str(missing / "x.db"), port=0)
    monkeypatch.setenv("JOBWATCH_DATABASE_URL", str(missing / "x.db"))
    with pytest.raises(SettingsError, match=r"^JOBWATCH_DATABASE_URL .*does not exist"):
        app_from_env()
    assert not (tmp_path / "no").exists()
