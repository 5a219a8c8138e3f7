"""One settings table for every way the server starts: each row of
:data:`jobwatch.server.deploy.settings.SETTINGS` takes effect through ``jobwatch serve``'s
flags, the WSGI entry point's variables and :func:`jobwatch.serve`'s keywords, and
``docs/server.md`` shows the table as generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobwatch.cli.commands import build_parser
from jobwatch.errors import SettingsError
from jobwatch.server.deploy.settings import (
    CLI,
    DOCS_END,
    DOCS_START,
    PYTHON,
    SETTINGS,
    WSGI,
    ServerSettings,
    docs_table,
    env_values,
)
from tests.paths import REPO

ROOT = REPO
TOKEN = "w" * 16

# One value other than the default per row: (the text of a flag or variable, the
# Python value jobwatch.serve() takes, the value the settings then carry).
VALUES: dict[str, tuple[list[str], Any, Any]] = {
    "database": (["{db}"], "{db}", "{db}"),
    "redis_url": (["redis://cache:6379/0"], "redis://cache:6379/0", "redis://cache:6379/0"),
    "redis_channel": (["jobwatch:team-a"], "jobwatch:team-a", "jobwatch:team-a"),
    "database_timeout": (["2.5"], 2.5, 2.5),
    "redis_timeout": (["3"], 3, 3.0),
    "write_token": ([TOKEN], TOKEN, TOKEN),
    "read_token": (["r" * 16], "r" * 16, "r" * 16),
    "cors_origins": (
        ["https://a.example", "https://b.example"],
        ["https://a.example", "https://b.example"],
        ("https://a.example", "https://b.example"),
    ),
    "allowed_hosts": (
        ["jobs.example", "gpu-box"],
        ["jobs.example", "gpu-box"],
        ("jobs.example", "gpu-box"),
    ),
    "max_jobs": (["5000"], 5000, 5000),
    "max_job_log_bytes": (["12345"], 12345, 12345),
    "max_log_bytes": (["99999"], 99999, 99999),
    "rate_limit": (["20"], 20, 20.0),
    "pace_above": (["500"], 500, 500.0),
    "pace_interval": (["3"], 3, 3.0),
    "stall_after": (["300"], 300, 300.0),
    "hang_after": (["900"], 900, 900.0),
    "default_currency": (["usd"], "usd", "usd"),
    "alert_rules": (
        ["gpuTemperature>85 for 60s", "gpuUtilization<10 for 300s"],
        ["gpuTemperature>85 for 60s", "gpuUtilization<10 for 300s"],
        ("gpuTemperature>85 for 60s", "gpuUtilization<10 for 300s"),
    ),
    "webhook_url": (
        ["https://hooks.example/x"],
        "https://hooks.example/x",
        "https://hooks.example/x",
    ),
    "webhooks": (
        [
            "discord+https://discord.example/api/webhooks/1/t",
            "ntfy+https://ntfy.example/t level>=error",
        ],
        [
            "discord+https://discord.example/api/webhooks/1/t",
            "ntfy+https://ntfy.example/t level>=error",
        ],
        (
            "discord+https://discord.example/api/webhooks/1/t",
            "ntfy+https://ntfy.example/t level>=error",
        ),
    ),
    "nccl_hang_after": (["600"], 600, 600.0),
    "nccl_hang_utilization": (["90"], 90, 90.0),
    "nccl_hang_power": (["40"], 40, 40.0),
    "max_connections_per_address": (["7"], 7, 7),
    "max_connections": (["99"], 99, 99),
    "head_timeout": (["5"], 5, 5.0),
    "body_timeout": (["9"], 9, 9.0),
}
NEEDS_SERVICES = {"redis_url"}
"""Rows whose value cannot serve without PostgreSQL and Redis: their settings are
checked, no app is built."""

CASES = [(setting, path) for setting in SETTINGS for path in setting.paths]


def _filled(value: Any, db: str) -> Any:
    if isinstance(value, str):
        return value.replace("{db}", db)
    if isinstance(value, list):
        return [_filled(item, db) for item in value]
    if isinstance(value, tuple):
        return tuple(_filled(item, db) for item in value)
    return value


def test_every_row_has_a_test_value_and_a_settings_field() -> None:
    fields = {field.name: field for field in ServerSettings.__dataclass_fields__.values()}
    assert set(VALUES) == {s.name for s in SETTINGS} == set(fields)
    for setting in SETTINGS:
        if setting.name != "database":
            assert fields[setting.name].default == setting.default, setting.name


@pytest.mark.parametrize(("setting", "path"), CASES, ids=[f"{s.name}-{path}" for s, path in CASES])
def test_every_setting_takes_effect_on_every_start_path(
    setting: Any, path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "jobs.db")
    texts, python_value, expected = (_filled(v, db) for v in VALUES[setting.name])
    companion = {"read_token": "write_token"}.get(setting.name)  # a read token needs one
    if path == CLI:
        argv = ["serve"]
        for text in texts:
            argv += [setting.flag, text]
        if companion:
            argv += ["--token", TOKEN]
        settings = ServerSettings.from_args(build_parser().parse_args(argv), env={})
        assert getattr(settings, setting.name) == expected
        if setting.config_key is None:  # handed to the gunicorn workers as variables
            assert env_values(settings.worker_env(), [setting.name])[setting.name] == expected
        else:
            assert settings.config()[setting.config_key] == expected
        return
    if path == WSGI:
        env = {setting.env: ",".join(texts), "JOBWATCH_DATABASE_URL": db}
        if companion:
            env["JOBWATCH_TOKEN"] = TOKEN
        if setting.config_key is None:  # what jobwatch.server.deploy.gunicorn_worker reads
            from jobwatch.server.deploy.gunicorn_worker import WORKER_SETTINGS

            assert env_values(env, WORKER_SETTINGS)[setting.name] == expected
            return
        if setting.name in NEEDS_SERVICES:
            assert getattr(ServerSettings.from_env(env), setting.name) == expected
            return
        for name in [s.env for s in SETTINGS]:
            monkeypatch.delenv(name, raising=False)
        for name, text in env.items():
            monkeypatch.setenv(name, text)
        from jobwatch.server.deploy.wsgi import app_from_env

        app = app_from_env()
        try:
            assert app.config[setting.config_key] == expected
        finally:
            app.extensions["jobwatch"].close()
        return
    assert path == PYTHON
    import jobwatch

    arguments = {setting.keyword: python_value}
    if companion:
        arguments["token"] = TOKEN
    if setting.name in NEEDS_SERVICES:
        settings = ServerSettings.from_arguments(":memory:", **arguments)
        assert getattr(settings, setting.name) == expected
        return
    arguments.setdefault("db", db)
    server = jobwatch.serve(**arguments)
    try:
        assert server.app.config[setting.config_key] == expected
    finally:
        server.stop()


NUMBERS = [(s, path) for s in SETTINGS if s.kind is not str for path in s.paths]


@pytest.mark.parametrize(
    ("setting", "path"), NUMBERS, ids=[f"{s.name}-{path}" for s, path in NUMBERS]
)
def test_an_out_of_range_number_is_refused_naming_what_the_user_wrote(
    setting: Any, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "-1" if setting.name not in ("stall_after", "hang_after") else "0.5"
    if path == CLI:
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["serve", setting.flag, bad])
        assert exited.value.code == 2
        assert f"{setting.flag} must be" in capsys.readouterr().err
    elif path == WSGI:
        with pytest.raises(SettingsError, match=f"{setting.env} must be .*got '{bad}'"):
            ServerSettings.from_env({setting.env: bad})
    else:
        with pytest.raises(SettingsError, match=f"{setting.keyword}= must be"):
            ServerSettings.from_arguments(":memory:", **{setting.keyword: float(bad)})
        with pytest.raises(SettingsError, match=f"{setting.keyword}= must be"):
            ServerSettings.from_arguments(":memory:", **{setting.keyword: "20"})


def test_serve_refuses_a_keyword_that_is_no_setting() -> None:
    with pytest.raises(TypeError, match="'max_job'"):
        ServerSettings.from_arguments(":memory:", max_job=3)


def test_the_docs_show_the_generated_settings_table() -> None:
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    shown = text[text.index(DOCS_START) + len(DOCS_START) : text.index(DOCS_END)]
    assert shown == docs_table(), "run: python -m jobwatch.server.deploy.settings"


def test_compose_passes_every_variable_to_the_server() -> None:
    compose = yaml.safe_load((ROOT / "server" / "compose.yaml").read_text())
    env = compose["services"]["jobwatch"]["environment"]
    assert {s.env for s in SETTINGS if WSGI in s.paths} <= set(env)
