"""The public API, pinned: ``jobwatch.__all__``, the exception tree and what the
docs tell people to import or run. Renaming, removing or adding one of these
names fails here, so a change to the public face is a decision (update this
file, the docs and the changelog together), never a side effect of a refactor.
"""

from __future__ import annotations

import importlib
import inspect
import re
from importlib.metadata import entry_points
from pathlib import Path

import flask
import pytest

import jobwatch
import jobwatch.errors
import jobwatch.gpu

TOP_LEVEL = [
    "APIError",
    "Client",
    "ConnectionError",
    "JobFinished",
    "JobMonitor",
    "JobNotFound",
    "JobsTable",
    "JobwatchError",
    "MissingExtra",
    "Reporter",
    "ValidationError",
    "WorkerMismatch",
    "__version__",
    "compare",
    "serve",
    "track",
]
"""``from jobwatch import ...`` (README, docs/python.md, docs/notebook.md)."""

ERROR_TREE = {
    "JobwatchError": Exception,
    "APIError": "JobwatchError",
    "ValidationError": "APIError",
    "UnsupportedMediaType": "ValidationError",
    "AuthenticationError": "APIError",
    "HostNotAllowed": "AuthenticationError",
    "OriginNotAllowed": "AuthenticationError",
    "WorkerMismatch": "APIError",
    "Forbidden": "APIError",
    "JobNotFound": "APIError",
    "NotFound": "APIError",
    "MethodNotAllowed": "APIError",
    "Conflict": "APIError",
    "JobFinished": "Conflict",
    "PayloadTooLarge": "APIError",
    "UpgradeRequired": "APIError",
    "TooManySubscriptions": "APIError",
    "QuotaExceeded": "APIError",
    "RetryLater": "APIError",
    "RequestTimeout": "RetryLater",
    "RateLimited": "RetryLater",
    "TooManyConnections": "RetryLater",
    "ServerBusy": "RetryLater",
    "StoreUnavailable": "RetryLater",
    "BrokerUnavailable": ("RetryLater", RuntimeError),
    "ConnectionError": "JobwatchError",
    "MissingExtra": ("JobwatchError", ImportError),  # also an ImportError, as Python's own
    # The server's own: settings it cannot use, a closed store.
    "SettingsError": ("JobwatchError", ValueError),
    "UnsafeDatabasePath": "SettingsError",
    "StoreClosed": "JobwatchError",
}
"""Every exception of ``jobwatch.errors`` and its parent (the tree drawn in its module doc)."""

DOCUMENTED = [
    ("jobwatch.gpu", "sample"),  # docs/python.md "GPU metrics", docs/troubleshooting.md
    ("jobwatch.server.wsgi", "app_from_env"),  # gunicorn's 'jobwatch.server.wsgi:app_from_env()'
    ("jobwatch.server", "EmbeddedServer"),  # docs/server.md
    ("jobwatch.server", "create_app"),
    ("jobwatch.server.process", "ServerProcess"),  # notebooks/remote_worker.ipynb
    ("jobwatch.server.process", "serve_command"),
    ("jobwatch.demo", "train_digits"),  # notebooks/quickstart.ipynb, examples/
]
"""Names outside ``jobwatch.__all__`` that the docs, notebooks or deployment files use."""

CLIENT_METHODS = [
    "create_job",
    "ensure_job",
    "get_job",
    "list_jobs",
    "report_progress",
    "complete_job",
    "monitor",
    "metrics",
    "logs",
    "scalars",
    "alerts",
    "subscribe",
    "close",
]
"""``Client``'s methods in docs/python.md's table."""

REPORTER_METHODS = [
    "update",
    "log",
    "track",
    "log_metrics",
    "alert",
    "logging_handler",
    "complete",
    "fail",
    "flush",
    "close",
]
"""``Reporter``'s methods in docs/python.md."""


def test_all_is_exactly_the_documented_names() -> None:
    assert sorted(jobwatch.__all__) == sorted(TOP_LEVEL)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_top_level_name_resolves(name: str) -> None:
    """Also the lazy ones (``JobMonitor``, ``serve``) that ``__getattr__`` loads on first use."""
    assert getattr(jobwatch, name) is not None


def test_a_name_that_is_not_public_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Monitor'"):
        _ = jobwatch.Monitor  # type: ignore[attr-defined]


def test_the_error_tree_is_exactly_the_documented_one() -> None:
    exported = {
        name for name in jobwatch.errors.__all__ if inspect.isclass(getattr(jobwatch.errors, name))
    }
    assert exported == set(ERROR_TREE)
    for name, parents in ERROR_TREE.items():
        cls = getattr(jobwatch.errors, name)
        expected = tuple(
            p if isinstance(p, type) else getattr(jobwatch.errors, p)
            for p in (parents if isinstance(parents, tuple) else (parents,))
        )
        assert cls.__bases__ == expected, name
    assert set(jobwatch.errors.__all__) - exported == {"error_from_envelope"}


def _documented_error_codes() -> dict[str, int]:
    """``{code: status}`` from the table in docs/api.md "Errors"."""
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    codes: dict[str, int] = {}
    for status, cell in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", section, re.MULTILINE):
        for code in re.findall(r"`([a-z_]+)`", cell):
            codes[code] = int(status)
    return codes


def test_every_documented_error_code_has_its_class_and_back() -> None:
    """docs/api.md's error table and the classes' declared codes are the same
    set, each code with its class's HTTP status; an envelope comes back as that class."""
    documented = _documented_error_codes()
    by_code = jobwatch.errors._BY_CODE
    assert len(documented) >= 19
    assert set(by_code) == set(documented)
    for code, status in documented.items():
        cls = by_code[code]
        assert cls.status == status, code
        assert code == cls.code or code in cls.other_codes, code
        envelope = {"error": {"code": code, "message": "m", "details": []}}
        error = jobwatch.errors.error_from_envelope(status, envelope)
        assert type(error) is cls and error.code == code and error.status == status


def test_an_unknown_code_is_a_plain_api_error() -> None:
    envelope = {"error": {"code": "internal_error", "message": "bug", "details": []}}
    error = jobwatch.errors.error_from_envelope(500, envelope)
    assert type(error) is jobwatch.errors.APIError and error.status == 500


@pytest.mark.parametrize(
    "name", [n for n in TOP_LEVEL if n in ERROR_TREE], ids=lambda n: f"jobwatch.{n}"
)
def test_top_level_errors_are_the_errors_module_classes(name: str) -> None:
    assert getattr(jobwatch, name) is getattr(jobwatch.errors, name)


@pytest.mark.parametrize(("module", "name"), DOCUMENTED, ids=lambda x: x)
def test_documented_name_resolves(module: str, name: str) -> None:
    assert callable(getattr(importlib.import_module(module), name))


def test_gpu_sample_is_exported_and_takes_no_arguments() -> None:
    assert "sample" in jobwatch.gpu.__all__
    assert list(inspect.signature(jobwatch.gpu.sample).parameters) == []


def test_the_wsgi_entry_point_builds_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """``gunicorn 'jobwatch.server.wsgi:app_from_env()'`` (server/, docs/deployment.md)."""
    monkeypatch.setenv("JOBWATCH_DATABASE_URL", ":memory:")
    for name in ("JOBWATCH_REDIS_URL", "JOBWATCH_TOKEN", "JOBWATCH_READ_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    from jobwatch.server.wsgi import app_from_env

    app = app_from_env()
    try:
        assert isinstance(app, flask.Flask)
    finally:
        app.extensions["jobwatch"].close()


def test_the_command_line_entry_point() -> None:
    (script,) = entry_points(group="console_scripts", name="jobwatch")
    assert script.value == "jobwatch.cli:main"
    assert callable(script.load())


@pytest.mark.parametrize(
    ("cls", "methods"),
    [(jobwatch.Client, CLIENT_METHODS), (jobwatch.Reporter, REPORTER_METHODS)],
    ids=["Client", "Reporter"],
)
def test_documented_methods_exist(cls: type, methods: list[str]) -> None:
    missing = [m for m in methods if not callable(getattr(cls, m, None))]
    assert missing == []
