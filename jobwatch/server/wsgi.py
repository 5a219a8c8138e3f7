"""The WSGI entry point for running the server under your own gunicorn.

``gunicorn -c server/gunicorn.conf.py 'jobwatch.server.wsgi:app_from_env()'``
builds the app in each worker from environment variables, the same settings
``jobwatch serve`` takes as flags:

=============================  =================================================
``JOBWATCH_DATABASE_URL``      SQLite path or ``postgresql://user@host/db``
                               (default: the user data directory's SQLite file)
``JOBWATCH_REDIS_URL``         ``redis://host:6379/0``: share events between
                               processes (needs PostgreSQL)
``JOBWATCH_REDIS_CHANNEL``     pub/sub channel, one per deployment
                               (default ``jobwatch:events``)
``JOBWATCH_TOKEN``             bearer token for writes (and reads), at least
                               16 characters
``JOBWATCH_READ_TOKEN``        read-only bearer token for viewers
``JOBWATCH_CORS_ORIGINS``      comma-separated browser origins
``JOBWATCH_ALLOWED_HOSTS``     comma-separated host names a server without a
                               token answers besides loopback ones
``JOBWATCH_RATE_LIMIT``        most progress updates per second per worker
                               and client address
``JOBWATCH_MAX_JOBS``          quota: jobs stored (default 100,000; 0: none)
``JOBWATCH_MAX_JOB_LOG_BYTES`` quota: log bytes one job may store (1 GiB)
``JOBWATCH_MAX_LOG_BYTES``     quota: log bytes all jobs may store (0: none)
=============================  =================================================

The worker class (:mod:`jobwatch.server.worker`) reads two more:
``JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS`` and ``JOBWATCH_MAX_CONNECTIONS``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from jobwatch.server.deployment import missing_packages, settings_problem
from jobwatch.server.quotas import DEFAULT_MAX_JOB_LOG_BYTES, DEFAULT_MAX_JOBS
from jobwatch.server.security import token_problem


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use; the message says which."""


def config_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``create_app`` settings from ``JOBWATCH_*`` variables (see the module doc).

    Raises
    ------
    SettingsError
        A value is malformed or the combination cannot work (for example a
        Redis URL with a SQLite database).
    """
    env = os.environ if env is None else env
    database = env.get("JOBWATCH_DATABASE_URL") or _default_database()
    redis_url = env.get("JOBWATCH_REDIS_URL") or None
    rate_text = env.get("JOBWATCH_RATE_LIMIT", "0") or "0"
    try:
        rate = float(rate_text)
    except ValueError:
        rate = math.nan
    if not 0 <= rate <= 1e6:
        raise SettingsError(
            f"JOBWATCH_RATE_LIMIT must be a number of updates per second from 0 to 1e6, "
            f"got {rate_text!r}"
        )
    problem = settings_problem(database, redis_url, 1) or missing_packages(database, redis_url)
    if problem:
        raise SettingsError(problem)
    token = env.get("JOBWATCH_TOKEN") or None
    read_token = env.get("JOBWATCH_READ_TOKEN") or None
    if read_token and not token:
        raise SettingsError("JOBWATCH_READ_TOKEN needs JOBWATCH_TOKEN too (else writes are open)")
    problem = token_problem("JOBWATCH_TOKEN", token) or token_problem(
        "JOBWATCH_READ_TOKEN", read_token
    )
    if problem:
        raise SettingsError(problem)
    config: dict[str, Any] = {
        "DATABASE": database,
        "REDIS_URL": redis_url,
        "WRITE_TOKEN": token,
        "READ_TOKEN": read_token,
        "CORS_ORIGINS": tuple(o for o in env.get("JOBWATCH_CORS_ORIGINS", "").split(",") if o),
        "ALLOWED_HOSTS": tuple(h for h in env.get("JOBWATCH_ALLOWED_HOSTS", "").split(",") if h),
        "MAX_JOBS": _quota(env, "JOBWATCH_MAX_JOBS", DEFAULT_MAX_JOBS),
        "MAX_JOB_LOG_BYTES": _quota(env, "JOBWATCH_MAX_JOB_LOG_BYTES", DEFAULT_MAX_JOB_LOG_BYTES),
        "MAX_LOG_BYTES": _quota(env, "JOBWATCH_MAX_LOG_BYTES", 0),
        "RATE_LIMIT": rate,
    }
    if env.get("JOBWATCH_REDIS_CHANNEL"):
        config["REDIS_CHANNEL"] = env["JOBWATCH_REDIS_CHANNEL"]
    return config


def _quota(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise SettingsError(f"{name} must be a whole number >= 0 (0: no limit), got {text!r}")
    return int(text)


def app_from_env() -> Any:
    """The Flask app configured by :func:`config_from_env` (a gunicorn ``module:callable()``)."""
    from jobwatch.server.app import create_app

    return create_app(config_from_env())


def _default_database() -> str:
    from jobwatch.cli import default_db_path

    return str(default_db_path())
