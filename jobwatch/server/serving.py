"""``jobwatch serve``: the server under gunicorn with a gevent worker.

Why gevent: every WebSocket subscriber holds its connection open for hours,
and gunicorn's own guidance is to serve long-lived connections with an async
worker. Under gevent each connection's reader and sender are greenlets, so
thousands of idle subscribers cost little memory, while the code stays
ordinary threading code (the same code runs threaded in a notebook). One
worker process: the embedded store has one writer and the in-process broker
reaches only its own process's subscribers.
"""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication

WORKER_CONNECTIONS = 10_000
"""Most simultaneous connections (HTTP and WebSocket) of the worker."""


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], app_config: dict[str, Any]) -> None:
        self._options = options
        self._app_config = app_config
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Built in the worker, after gevent has patched the standard library.
        from jobwatch.server.app import create_app

        return create_app(self._app_config)


def _announce(database: str) -> Any:
    def when_ready(server: Any) -> None:
        host, port = server.LISTENERS[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(
            f"jobwatch serving on http://{shown}:{port}  (WebSocket ws://{shown}:{port}/ws)\n"
            f"database: {database}",
            file=sys.stderr,
            flush=True,
        )

    return when_ready


def run(host: str, port: int, database: str, *, access_log: bool = False) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop gracefully).

    Parameters
    ----------
    host, port:
        Listen address; ``port=0`` picks a free port (printed at start).
    database:
        ``--db`` value: a SQLite path, ``:memory:`` or a SQLAlchemy URL.
    access_log:
        Log every request to stderr.
    """
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options: dict[str, Any] = {
        "bind": [bind],
        "workers": 1,
        "worker_class": "gevent",
        "worker_connections": WORKER_CONNECTIONS,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 75,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "warning",
        "when_ready": _announce(database),
        "proc_name": "jobwatch",
    }
    _Gunicorn(options, {"DATABASE": database}).run()
