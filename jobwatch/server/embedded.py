"""The server in a background thread of this process (tests, notebooks).

It uses Werkzeug's threaded WSGI server, which flask-sock supports; a
standalone deployment uses ``jobwatch serve`` (gunicorn) instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from jobwatch.server.app import create_app
from jobwatch.server.security import is_loopback_host
from jobwatch.server.services import Services


class _QuietHandler(WSGIRequestHandler):
    """No access log: in a notebook it would bury the cell's output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class EmbeddedServer:
    """A running jobwatch server inside this process.

    Parameters
    ----------
    host, port:
        Where to listen; ``port=0`` picks a free port.
    config:
        Settings for :func:`~jobwatch.server.app.create_app` (``DATABASE``
        defaults to ``":memory:"``).

    Attributes
    ----------
    url:
        ``http://host:port`` of the REST API.
    ws_url:
        ``ws://host:port/ws`` of the WebSocket.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, config: Mapping[str, Any] | None = None
    ) -> None:
        self.app = create_app(config)
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self.ws_url = f"ws://{host}:{self.port}/ws"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="jobwatch-server", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def services(self) -> Services:
        """The app's store, broker and clock."""
        services: Services = self.app.extensions["jobwatch"]
        return services

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    def stop(self) -> None:
        """Stop listening, close every WebSocket and the database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.services.close()

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedServer(url={self.url!r}, ws_url={self.ws_url!r})"


_running: EmbeddedServer | None = None
_running_lock = threading.Lock()


def serve(
    port: int = 0, db: str = ":memory:", host: str = "127.0.0.1", token: str | None = None
) -> EmbeddedServer:
    """Start the jobwatch server in a background thread of this process (a notebook kernel).

    A second call returns the server already running (whatever its arguments),
    until it is stopped.

    Parameters
    ----------
    port:
        Port to listen on; 0 picks a free one.
    db:
        ``":memory:"`` (default: gone when the kernel stops), a SQLite path or a SQLAlchemy URL.
    host:
        Address to listen on (default loopback only). Any other address needs
        ``token``: anyone who can reach it could otherwise write to your jobs.
    token:
        Bearer token every request but ``/api/health`` then needs (at least 16
        characters; ``Client``, ``Reporter`` and ``JobMonitor`` take it as
        ``token=`` or from ``$JOBWATCH_TOKEN``).

    Returns
    -------
    EmbeddedServer
        With ``.url``, ``.ws_url`` and ``.stop()``.

    Raises
    ------
    ValueError
        A non-loopback ``host`` without ``token``, or a token that is too
        short or has whitespace at either end.
    """
    global _running
    if token is None and not is_loopback_host(host):
        raise ValueError(
            f"refusing to listen on {host} without a token: anyone who can reach it could "
            "write to your jobs; pass token=... (at least 16 characters)"
        )
    with _running_lock:
        if _running is None or _running.stopped:
            _running = EmbeddedServer(host, port, config={"DATABASE": db, "WRITE_TOKEN": token})
        return _running
