"""gunicorn's logger with secrets kept out of the access log.

A browser's WebSocket carries its token in ``?token=`` (it cannot send
headers), so every query string is left out of the logged request line,
query atom and referer, and the ``Authorization`` header atom is blanked.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

REDACTED = "<redacted>"


def without_query(target: str) -> str:
    """``target`` (a path or URL) with any query string replaced by ``?<redacted>``."""
    path, mark, _ = target.partition("?")
    return f"{path}?{REDACTED}" if mark else path


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's :class:`~gunicorn.glogging.Logger`, logging no query string and no token."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        """gunicorn's atoms for the access log format, with every place a token can be redacted."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["r"] = (
            f"{environ['REQUEST_METHOD']} {without_query(environ['RAW_URI'])} "
            f"{environ['SERVER_PROTOCOL']}"
        )
        if atoms.get("q"):
            atoms["q"] = REDACTED
        atoms["f"] = without_query(str(atoms.get("f", "-")))
        for key in ("{authorization}i", "{referer}i"):
            if key in atoms:
                atoms[key] = REDACTED
        return atoms
