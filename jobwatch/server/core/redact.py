"""Secrets kept out of logs and messages: URLs and request targets shown without them.

Pure text functions, so every server layer can use them (the events layer logs
a webhook URL; deploy prints database URLs; the access logs show request
targets) without one layer importing another it must not.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["REDACTED", "origin", "redacted", "without_query"]

REDACTED = "<redacted>"
"""What replaces a query string in an access log line."""

_SECRET_KEYS = frozenset({"password", "passwd", "pass", "secret", "token", "sslpassword"})


def redacted(url: str) -> str:
    """``url`` with its password, and query values named like secrets
    (``password=``, ``token=``), replaced by ``***`` (for logs and messages).

    The user information runs to the last ``@``, so a password holding
    unescaped ``/``, ``#`` or ``?`` is hidden too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    if at != -1:
        user, colon, _ = rest[:at].partition(":")
        rest = (f"{user}:***" if colon else user) + rest[at:]
    base, question, query = rest.partition("?")
    if question:
        pairs = query.split("&")
        query = "&".join(
            f"{p.split('=', 1)[0]}=***" if p.split("=", 1)[0].lower() in _SECRET_KEYS else p
            for p in pairs
        )
        rest = f"{base}?{query}"
    return f"{scheme}://{rest}"


def origin(url: str) -> str:
    """Only the scheme and host (and port) of ``url``: ``https://hooks.slack.com``.

    For URLs whose path is itself the secret (a Slack or Discord webhook's
    ``/services/T.../B.../XXXX``); user information, path, query and fragment
    are dropped. Text that is not a URL with a host gives ``<redacted>``.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def without_query(target: str) -> str:
    """``target`` (a path or URL) with any query string replaced by ``?<redacted>``."""
    path, mark, _ = target.partition("?")
    return f"{path}?{REDACTED}" if mark else path


def line_without_queries(line: str) -> str:
    """A log line with the query string of every space-separated word replaced
    (:func:`without_query`): a request line ``GET /ws?token=... HTTP/1.1``
    becomes ``GET /ws?<redacted> HTTP/1.1``."""
    if "?" not in line:
        return line
    return " ".join(without_query(part) for part in line.split(" "))
