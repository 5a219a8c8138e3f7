"""Checks of a deployment's settings before serving, shared by ``jobwatch serve``
and the gunicorn entry point (:mod:`jobwatch.server.wsgi`).

Each check returns ``None`` or one sentence saying what is wrong and what is
allowed, so the CLI can print it and exit instead of a worker dying in a
traceback.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from jobwatch.server.store import database_url

MAX_WORKERS = 64
"""Most server processes one ``jobwatch serve`` starts."""


def is_postgres(database: str) -> bool:
    """Whether a ``--database-url`` / ``--db`` value names a PostgreSQL database."""
    return database_url(database).startswith("postgresql")


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def settings_problem(database: str, redis_url: str | None, workers: int) -> str | None:
    """Why this combination cannot serve as one deployment, or ``None``.

    Rules: a database URL is SQLite or PostgreSQL; a Redis URL is ``redis://``,
    ``rediss://`` or ``unix://``; Redis only joins processes that share a
    PostgreSQL database; more than one worker needs both.
    """
    if "://" in database:
        try:
            backend = make_url(database_url(database)).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite", "postgresql"):
            return (
                f"unsupported database URL {redacted(database)!r}: use a SQLite path, "
                "':memory:' or postgresql://user@host:port/dbname"
            )
    if redis_url is not None and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        return (
            f"unsupported Redis URL {redacted(redis_url)!r}: use redis://host:port/db "
            "(rediss:// for TLS, unix:///path/to/socket)"
        )
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

        url = make_url(database_url(database)).set(drivername="postgresql")
        try:
            with psycopg.connect(
                url.render_as_string(hide_password=False), connect_timeout=max(1, int(timeout))
            ):
                pass
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"cannot reach the database at {redacted(database)}: {reason}"
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
