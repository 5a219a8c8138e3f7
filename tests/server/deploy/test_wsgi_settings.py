"""The gunicorn entry point's settings from ``JOBWATCH_*`` variables: good values
become ``create_app`` settings, bad ones one clear error naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobwatch.errors import SettingsError
from jobwatch.server.core.redact import redacted
from jobwatch.server.deploy.settings import (
    ARGUMENT_NAMES,
    ENV_NAMES,
    FLAG_NAMES,
    ServerSettings,
    config_from_env,
    settings_problem,
)

PG = "postgresql://jobwatch:pw@db:5432/jobwatch"


def test_a_full_environment_becomes_the_app_settings() -> None:
    config = config_from_env(
        {
            "JOBWATCH_DATABASE_URL": PG,
            "JOBWATCH_REDIS_URL": "redis://cache:6379/0",
            "JOBWATCH_REDIS_CHANNEL": "jobwatch:team-a",
            "JOBWATCH_TOKEN": "w" * 16,
            "JOBWATCH_READ_TOKEN": "r" * 16,
            "JOBWATCH_CORS_ORIGINS": "https://a.example,https://b.example",
            "JOBWATCH_ALLOWED_HOSTS": "jobs.example,gpu-box",
            "JOBWATCH_MAX_JOBS": "5000",
            "JOBWATCH_MAX_LOG_BYTES": "1000000000",
            "JOBWATCH_RATE_LIMIT": "20",
            "JOBWATCH_WEBHOOKS": "discord+https://d.example/h level>=error",
            "JOBWATCH_NCCL_HANG_AFTER": "600",
        }
    )
    assert config == {
        "DATABASE": PG,
        "REDIS_URL": "redis://cache:6379/0",
        "REDIS_CHANNEL": "jobwatch:team-a",
        "DATABASE_TIMEOUT": 5.0,
        "REDIS_TIMEOUT": 5.0,
        "WRITE_TOKEN": "w" * 16,
        "READ_TOKEN": "r" * 16,
        "CORS_ORIGINS": ("https://a.example", "https://b.example"),
        "ALLOWED_HOSTS": ("jobs.example", "gpu-box"),
        "MAX_JOBS": 5000,
        "MAX_JOB_LOG_BYTES": 1024**3,
        "MAX_LOG_BYTES": 1_000_000_000,
        "RATE_LIMIT": 20.0,
        "PACE_ABOVE": 1000.0,
        "PACE_INTERVAL": 5.0,
        "ALERT_RULES": (),
        "WEBHOOKS": ("discord+https://d.example/h level>=error",),
        "NCCL_HANG_AFTER": 600.0,
        "NCCL_HANG_UTILIZATION": 95.0,
        "NCCL_HANG_POWER": 50.0,
    }


def test_an_empty_environment_serves_the_default_sqlite_file() -> None:
    config = config_from_env({})
    assert config["DATABASE"].endswith("jobwatch.db")
    assert config.get("REDIS_URL") is None
    assert config.get("WRITE_TOKEN") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBWATCH_RATE_LIMIT": "fast"}, "JOBWATCH_RATE_LIMIT must be a number"),
        ({"JOBWATCH_RATE_LIMIT": "-1"}, "got '-1'"),
        ({"JOBWATCH_RATE_LIMIT": "nan"}, "got 'nan'"),
        ({"JOBWATCH_REDIS_URL": "redis://cache/0"}, "give --database-url postgresql://"),
        ({"JOBWATCH_DATABASE_URL": "mysql://x/y"}, "unsupported database URL"),
        ({"JOBWATCH_READ_TOKEN": "r"}, "JOBWATCH_READ_TOKEN needs JOBWATCH_TOKEN"),
        ({"JOBWATCH_TOKEN": "short"}, "JOBWATCH_TOKEN must be at least 16 characters"),
        ({"JOBWATCH_MAX_JOBS": "-1"}, "JOBWATCH_MAX_JOBS must be a whole number"),
        ({"JOBWATCH_TOKEN": "0123456789abcdef\n"}, "JOBWATCH_TOKEN has whitespace"),
        (
            {"JOBWATCH_TOKEN": "0123456789abcdef", "JOBWATCH_READ_TOKEN": " 0123456789abcdef"},
            "JOBWATCH_READ_TOKEN has whitespace",
        ),
        (
            {"JOBWATCH_DATABASE_URL": PG, "JOBWATCH_REDIS_URL": "http://cache"},
            "unsupported Redis URL",
        ),
    ],
)
def test_bad_values_name_the_variable_and_what_is_allowed(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        config_from_env(env)


def test_messages_never_show_passwords() -> None:
    assert redacted("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert redacted("redis://:secret@h:6379/0") == "redis://:***@h:6379/0"
    assert redacted("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redacted("postgresql://u:se/cr#et@h/db") == "postgresql://u:***@h/db"
    assert redacted("postgresql://u@h/db?sslmode=require&password=secret") == (
        "postgresql://u@h/db?sslmode=require&password=***"
    )
    problem = settings_problem("mysql://u:secret@h/db", None, 1)
    assert problem is not None
    assert "secret" not in problem


def test_several_workers_need_postgres_and_redis() -> None:
    assert settings_problem(PG, "redis://h/0", 4) is None
    assert settings_problem(PG, None, 1) is None
    problem = settings_problem(PG, None, 2)
    assert problem is not None and "--redis-url" in problem
    problem = settings_problem("/var/lib/jobwatch.db", "redis://h/0", 2)
    assert problem is not None and "postgresql" in problem


def test_given_fields_win_over_their_variables_which_are_then_not_read() -> None:
    env = {"JOBWATCH_TOKEN": "e" * 16, "JOBWATCH_MAX_JOBS": "not a number"}
    settings = ServerSettings.from_env(env, write_token="f" * 16, max_jobs=7)
    assert settings.write_token == "f" * 16
    assert settings.max_jobs == 7


def test_the_messages_name_what_the_user_wrote() -> None:
    short = ServerSettings(database=":memory:", write_token="short")
    assert (short.problem(names=FLAG_NAMES) or "").startswith("--token must be")
    assert (short.problem(names=ENV_NAMES) or "").startswith("JOBWATCH_TOKEN must be")
    assert (short.problem(names=ARGUMENT_NAMES) or "").startswith("token must be")


def test_jobwatch_serve_refuses_an_unsupported_database_in_one_line() -> None:
    import jobwatch

    with pytest.raises(SettingsError, match="unsupported database URL 'mysql://u:\\*\\*\\*@h/db'"):
        jobwatch.serve(db="mysql://u:secret@h/db")


def test_jobwatch_serve_names_a_malformed_variable(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobwatch", "serve", "--port", "0", "--db", ":memory:"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "JOBWATCH_MAX_JOBS": "lots", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "JOBWATCH_MAX_JOBS must be a whole number" in done.stderr
    assert "Traceback" not in done.stderr
