"""The server's settings: one typed object, built from ``jobwatch serve``'s flags,
from ``JOBWATCH_*`` environment variables or from :func:`jobwatch.serve`'s
arguments, checked in one place and turned into
:func:`~jobwatch.server.web.app.create_app`'s config.

Every way of starting the server goes through :class:`ServerSettings`:
``jobwatch serve`` (:mod:`jobwatch.cli.commands`), the WSGI entry point
(:mod:`jobwatch.server.deploy.wsgi`) and the embedded server (:mod:`jobwatch.server.deploy.run`).
Each check returns ``None`` or one sentence saying what is wrong and what is
allowed, so the CLI can print it and exit instead of a worker dying in a
traceback; :class:`SettingsError` carries it elsewhere.

The variables, read by :meth:`ServerSettings.from_env` (``jobwatch serve``'s
flags default to them, but for ``--rate-limit``):

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
``JOBWATCH_MAX_LOG_BYTES``     quota: bytes all jobs may store: logs, per-GPU samples, metrics (0: none)
=============================  =================================================

The worker class (:mod:`jobwatch.server.deploy.gunicorn_worker`) reads two more:
``JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS`` and ``JOBWATCH_MAX_CONNECTIONS``.

Why a dataclass and not pydantic-settings: every message must name the flag,
variable or argument the user wrote (``--token``, ``JOBWATCH_TOKEN``,
``token=``) and say what is allowed, and the comma-separated lists are plain
text, not JSON; the parsing is a few lines per variable.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jobwatch.errors import SettingsError, ValidationError, first_line
from jobwatch.server.core.alert_rules import parse_rule
from jobwatch.server.core.quotas import DEFAULT_MAX_JOB_LOG_BYTES, DEFAULT_MAX_JOBS
from jobwatch.server.deploy.urls import (
    database_url_problem,
    is_postgres,
    libpq_url,
    redacted,
    redis_url_problem,
)
from jobwatch.server.storage.files import default_db_path
from jobwatch.server.web.security import is_loopback_host, token_problem

ENV_NAMES = {"write_token": "JOBWATCH_TOKEN", "read_token": "JOBWATCH_READ_TOKEN"}
"""How messages name the tokens when they come from the environment."""
FLAG_NAMES = {"write_token": "--token", "read_token": "--read-token"}
"""How messages name the tokens when they come from ``jobwatch serve``'s flags."""
ARGUMENT_NAMES = {"write_token": "token", "read_token": "read_token"}
"""How messages name the tokens when they come from :func:`jobwatch.serve`."""


@dataclass(frozen=True)
class ServerSettings:
    """What one server (all its worker processes) is configured with.

    ``None`` (and an empty tuple) leaves ``create_app``'s default
    (:data:`jobwatch.server.web.app.DEFAULTS`, where each setting is described).

    Attributes
    ----------
    database:
        A SQLite path, ``:memory:`` or a URL (``postgresql://user@host/db``).
    redis_url, redis_channel:
        The Redis broker shared by every process, and its pub/sub channel.
    write_token, read_token:
        Bearer tokens (at least 16 characters); ``None``: open.
    cors_origins, allowed_hosts:
        Browser origins allowed to call the API; host names a server without
        a token answers besides loopback ones.
    max_jobs, max_job_log_bytes, max_log_bytes:
        Quotas: jobs, log bytes of one job, log bytes of all jobs (0: none).
    rate_limit:
        Most progress updates per second per worker and client address (0: none).
    stall_after:
        Seconds without an update after which a running job is stalled.
    alert_rules:
        ``--alert`` rules such as ``"gpuTemperature>85 for 60s"``.
    webhook_url:
        Where alerts are posted.
    """

    database: str
    redis_url: str | None = None
    redis_channel: str | None = None
    write_token: str | None = None
    read_token: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_jobs: int = DEFAULT_MAX_JOBS
    max_job_log_bytes: int = DEFAULT_MAX_JOB_LOG_BYTES
    max_log_bytes: int = 0
    rate_limit: float = 0.0
    stall_after: float | None = None
    alert_rules: tuple[str, ...] = ()
    webhook_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> ServerSettings:
        """Settings from ``JOBWATCH_*`` variables (see the module doc), unchecked.

        Parameters
        ----------
        env:
            The variables (default ``os.environ``).
        given:
            Fields already decided (``jobwatch serve``'s flags); their
            variables are not read.

        Raises
        ------
        SettingsError
            A number or list variable is malformed; the message names it.
        """
        env = os.environ if env is None else env
        read: dict[str, Callable[[], Any]] = {
            "database": lambda: env.get("JOBWATCH_DATABASE_URL") or str(default_db_path()),
            "redis_url": lambda: env.get("JOBWATCH_REDIS_URL") or None,
            "redis_channel": lambda: env.get("JOBWATCH_REDIS_CHANNEL") or None,
            "write_token": lambda: env.get("JOBWATCH_TOKEN") or None,
            "read_token": lambda: env.get("JOBWATCH_READ_TOKEN") or None,
            "cors_origins": lambda: split_list(env.get("JOBWATCH_CORS_ORIGINS")),
            "allowed_hosts": lambda: split_list(env.get("JOBWATCH_ALLOWED_HOSTS")),
            "max_jobs": lambda: _quota(env, "JOBWATCH_MAX_JOBS", DEFAULT_MAX_JOBS),
            "max_job_log_bytes": lambda: _quota(
                env, "JOBWATCH_MAX_JOB_LOG_BYTES", DEFAULT_MAX_JOB_LOG_BYTES
            ),
            "max_log_bytes": lambda: _quota(env, "JOBWATCH_MAX_LOG_BYTES", 0),
            "rate_limit": lambda: _rate(env.get("JOBWATCH_RATE_LIMIT", "0") or "0"),
        }
        values = {name: given[name] if name in given else get() for name, get in read.items()}
        return cls(**{**given, **values})

    def replace(self, **changes: Any) -> ServerSettings:
        """A copy with ``changes`` (field names as above)."""
        return dataclasses.replace(self, **changes)

    def problem(self, *, workers: int = 1, names: Mapping[str, str] = FLAG_NAMES) -> str | None:
        """Why these settings cannot serve, or ``None``.

        Checks the tokens (a read token needs a write token; length and
        whitespace), the database and Redis URLs and their combination with
        ``workers`` (:func:`settings_problem`), the drivers they need
        (:func:`missing_packages`), the alert rules and the webhook URL.
        ``names`` says how to name the tokens (:data:`FLAG_NAMES`,
        :data:`ENV_NAMES`, :data:`ARGUMENT_NAMES`).
        """
        write, read = names["write_token"], names["read_token"]
        if self.read_token and not self.write_token:
            return f"{read} needs {write} too (else writes would be open)"
        return (
            token_problem(write, self.write_token)
            or token_problem(read, self.read_token)
            or alert_problem(self.alert_rules, self.webhook_url)
            or settings_problem(self.database, self.redis_url, workers)
            or missing_packages(self.database, self.redis_url)
        )

    def check(self, *, workers: int = 1, names: Mapping[str, str] = ENV_NAMES) -> ServerSettings:
        """These settings, when :meth:`problem` finds nothing.

        Raises
        ------
        SettingsError
            With :meth:`problem`'s sentence.
        """
        problem = self.problem(workers=workers, names=names)
        if problem:
            raise SettingsError(problem)
        return self

    def config(self) -> dict[str, Any]:
        """The settings as :func:`~jobwatch.server.web.app.create_app` takes them."""
        config: dict[str, Any] = {
            "DATABASE": self.database,
            "REDIS_URL": self.redis_url,
            "WRITE_TOKEN": self.write_token,
            "READ_TOKEN": self.read_token,
            "CORS_ORIGINS": self.cors_origins,
            "ALLOWED_HOSTS": self.allowed_hosts,
            "MAX_JOBS": self.max_jobs,
            "MAX_JOB_LOG_BYTES": self.max_job_log_bytes,
            "MAX_LOG_BYTES": self.max_log_bytes,
            "RATE_LIMIT": self.rate_limit,
        }
        optional = {
            "REDIS_CHANNEL": self.redis_channel,
            "STALL_AFTER": self.stall_after,
            "ALERT_RULES": self.alert_rules,
            "WEBHOOK_URL": self.webhook_url,
        }
        config.update({key: value for key, value in optional.items() if value})
        return config


def config_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``create_app`` settings from ``JOBWATCH_*`` variables (see the module doc).

    Raises
    ------
    SettingsError
        A value is malformed or the combination cannot work (for example a
        Redis URL with a SQLite database); the message names the variable.
    """
    return ServerSettings.from_env(env).check(names=ENV_NAMES).config()


def split_list(text: str | None) -> tuple[str, ...]:
    """``"a,b"`` as ``("a", "b")``; empty items are dropped, ``None`` is ``()``."""
    return tuple(item for item in (text or "").split(",") if item)


def _quota(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise SettingsError(f"{name} must be a whole number >= 0 (0: no limit), got {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 <= rate <= 1e6:  # NaN fails too
        raise SettingsError(
            f"JOBWATCH_RATE_LIMIT must be a number of updates per second from 0 to 1e6, "
            f"got {text!r}"
        )
    return rate


def exposure_problem(host: str, token: str | None, remedy: str) -> str | None:
    """Why listening on ``host`` without ``token`` is refused, or ``None`` (loopback,
    or a token); ``remedy`` ends the sentence (how to pass a token)."""
    if token or is_loopback_host(host):
        return None
    return (
        f"refusing to listen on {host} without a token: anyone who can reach it could "
        f"write to your jobs{remedy}"
    )


def alert_problem(rules: tuple[str, ...] | list[str], webhook_url: str | None) -> str | None:
    """Why the ``--alert`` rules or ``--webhook-url`` cannot be used, or ``None``."""
    for rule in rules:
        try:
            parse_rule(rule)
        except ValidationError as exc:
            return str(exc)
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        return f"--webhook-url must start with http:// or https://, got {webhook_url!r}"
    return None


MAX_WORKERS = 64
"""Most server processes one ``jobwatch serve`` starts."""


def settings_problem(database: str, redis_url: str | None, workers: int) -> str | None:
    """Why this combination cannot serve as one deployment, or ``None``.

    Rules: a database URL is SQLite or PostgreSQL; a Redis URL is ``redis://``,
    ``rediss://`` or ``unix://``; Redis only joins processes that share a
    PostgreSQL database; more than one worker needs both.
    """
    problem = database_url_problem(database) or (
        redis_url_problem(redis_url) if redis_url is not None else None
    )
    if problem:
        return problem
    if not 1 <= workers <= MAX_WORKERS:
        return f"workers must be from 1 to {MAX_WORKERS}, got {workers}"
    if redis_url and not is_postgres(database):
        return (
            "--redis-url joins server processes that share one database: "
            "give --database-url postgresql://... as well"
        )
    if workers > 1 and not (redis_url and is_postgres(database)):
        return (
            f"--workers {workers} needs a shared database and broker: give "
            "--database-url postgresql://... and --redis-url redis://... "
            "(with SQLite, serve from one process)"
        )
    return None


def missing_packages(database: str, redis_url: str | None) -> str | None:
    """The install hint when the drivers these URLs need are not installed, or ``None``."""
    needed = []
    if is_postgres(database):
        needed.append("psycopg")
    if redis_url:
        needed.append("redis")
    import importlib.util

    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f'{" and ".join(missing)} not installed: pip install "jobwatch[scale]"'


def reachability_problem(database: str, redis_url: str | None, timeout: float = 5.0) -> str | None:
    """Connect once to PostgreSQL and Redis (when given); say which cannot be reached, or ``None``."""
    if is_postgres(database):
        import psycopg

        try:
            with psycopg.connect(libpq_url(database), connect_timeout=max(1, int(timeout))):
                pass
        except psycopg.Error as exc:
            return f"cannot reach the database at {redacted(database)}: {first_line(exc)}"
    if redis_url:
        import redis

        client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"cannot reach Redis at {redacted(redis_url)}: {exc}"
        finally:
            client.close()
    return None
