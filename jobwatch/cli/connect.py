"""The commands' one way to a server: a :class:`~jobwatch.client.rest.Client`, or a
usage error that names what is wrong with the URL or token (exit 2, no traceback)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobwatch.client.rest import Client

__all__ = ["UsageError", "connect"]


class UsageError(Exception):
    """A command was given a value it cannot use; the message says which and what is allowed."""


def connect(url: str | None, token: str | None = None) -> Client:
    """A client of the server at ``url`` (``None``: ``$JOBWATCH_URL`` or the default).

    Raises
    ------
    UsageError
        ``url`` is not an ``http://`` or ``https://`` URL, or ``token`` is unusable.
    """
    from jobwatch.client.rest import Client

    try:
        return Client(url, token=token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
