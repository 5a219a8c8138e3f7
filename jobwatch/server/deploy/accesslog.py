"""gunicorn's logger with secrets kept out of the access log.

A browser's WebSocket carries its token in ``?token=`` (it cannot send
headers), so every query string is left out of what the access log can
show (the request line, the query, the referer, any header or environ
value), and the ``Authorization`` header is blanked.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from jobwatch.server.core.redact import REDACTED, line_without_queries, without_query

__all__ = ["REDACTED", "RedactingLogger", "without_query"]


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's :class:`~gunicorn.glogging.Logger`, logging no query string and no token."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        """gunicorn's atoms for the access log format (``%(r)s``, ``%(q)s``,
        ``%({name}i)s`` headers, ``%({name}e)s`` environ), with every query
        string and ``Authorization`` header redacted."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if key in _SECRET_ATOMS:
                atoms[key] = REDACTED if value else value
            elif isinstance(value, str) and "?" in value:
                atoms[key] = line_without_queries(value)
        return atoms


_SECRET_ATOMS = frozenset({"q", "{query_string}e", "{authorization}i", "{http_authorization}e"})
