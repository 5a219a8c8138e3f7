"""Database and Redis URLs: which the server supports, and how to show them without secrets.

Each check returns ``None`` or one sentence saying what is wrong and what is
allowed; every URL in a sentence is :func:`redacted`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from jobwatch.server.core.redact import redacted
from jobwatch.server.storage.store import database_url


def is_postgres(database: str) -> bool:
    """Whether a ``--database-url`` / ``--db`` value names a PostgreSQL database."""
    return database_url(database).startswith("postgresql")


def libpq_url(database: str) -> str:
    """The PostgreSQL URL ``database`` as psycopg takes it (``postgresql://``, password kept)."""
    url = make_url(database_url(database)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$")
_ENCODE_HINT = (
    "special characters in the user name or password must be percent-encoded "
    "(@ as %40, : as %3A, / as %2F, # as %23, ? as %3F)"
)


def _url_problem(url: str, what: str, *, needs_path: str | None) -> str | None:
    """Why ``url`` cannot be a server's URL, or ``None``: a bad port, a host
    that is not one (an unescaped character in the password), a missing path."""
    parts = urlsplit(url)
    shown = redacted(url)
    if "@" in parts.netloc.rpartition("@")[0]:
        return f"invalid {what} URL {shown!r}: it holds more than one '@'; {_ENCODE_HINT}"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"invalid {what} URL {shown!r}: the port is not a number from 0 to 65535; {_ENCODE_HINT}"
    host = parts.hostname or ""
    via_socket = "host=" in parts.query
    if not host and not via_socket:
        return f"invalid {what} URL {shown!r}: it names no host"
    if host and not _HOST.match(host):
        return f"invalid {what} URL {shown!r}: {host!r} is not a host name; {_ENCODE_HINT}"
    if needs_path is not None and not parts.path.strip("/"):
        return f"invalid {what} URL {shown!r}: {needs_path}"
    return None


def database_url_problem(database: str) -> str | None:
    """Why ``database`` is neither a SQLite path nor a usable SQLite or PostgreSQL URL, or ``None``."""
    if is_postgres(database):
        return _url_problem(
            database,
            "database",
            needs_path="name the database: postgresql://user@host:5432/DBNAME",
        )
    if "://" not in database:
        return None  # a SQLite path or :memory:
    try:
        backend = make_url(database_url(database)).get_backend_name()
    except (ArgumentError, ValueError):
        backend = ""
    if backend == "sqlite":
        return None
    return (
        f"unsupported database URL {redacted(database)!r}: use a SQLite path, "
        "':memory:' or postgresql://user@host:port/dbname"
    )


def redis_url_problem(redis_url: str) -> str | None:
    """Why ``redis_url`` is not a usable ``redis://``, ``rediss://`` or ``unix://`` URL, or ``None``."""
    scheme = urlsplit(redis_url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        return (
            f"unsupported Redis URL {redacted(redis_url)!r}: use redis://host:port/db "
            "(rediss:// for TLS, unix:///path/to/socket)"
        )
    if scheme == "unix":
        return None
    db = urlsplit(redis_url).path.strip("/")
    if problem := _url_problem(redis_url, "Redis", needs_path=None):
        return problem
    if db and not (db.isascii() and db.isdigit()):
        return (
            f"invalid Redis URL {redacted(redis_url)!r}: the database {db!r} "
            "is not a number (redis://host:6379/0)"
        )
    return None
