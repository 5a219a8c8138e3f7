"""``jobwatch serve``: the server under gunicorn with a gevent worker.

Why gevent: every WebSocket subscriber holds its connection open for hours,
and gunicorn's own guidance is to serve long-lived connections with an async
worker. Under gevent each connection's reader and sender are greenlets, so
thousands of idle subscribers cost little memory, while the code stays
ordinary threading code (the same code runs threaded in a notebook). One
worker process: the embedded store has one writer and the in-process broker
reaches only its own process's subscribers. Several worker processes
(``--workers N``) share a PostgreSQL database and a Redis broker instead.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from jobwatch.server.broker import DEFAULT_CHANNEL
from jobwatch.server.deployment import redacted

WORKER_CLASS = "jobwatch.server.worker.GuardedGeventWorker"
"""gunicorn's gevent worker with connection caps and request deadlines."""
WORKER_CONNECTIONS = 10_000
"""Most simultaneous connections (HTTP and WebSocket) of a worker; fewer when its
open-files limit allows fewer (see :mod:`jobwatch.server.worker`)."""
HEAD_TIMEOUT = 15
"""Seconds a connection may take to deliver a complete request head, whether it
is idle between requests or trickling one in (gunicorn's ``keepalive``)."""


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn with the given options, loading its WSGI app by calling ``factory()``.

    The factory runs in the worker process, after gevent has patched the
    standard library, so the app's threads and queues are gevent's.
    """

    def __init__(self, options: dict[str, Any], factory: Callable[[], Any]) -> None:
        self._options = options
        self._factory = factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._factory()


def gunicorn_options(
    host: str, port: int, *, access_log: bool = False, workers: int = 1
) -> dict[str, Any]:
    """The gunicorn settings of ``jobwatch serve``: ``workers`` gevent worker processes."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": WORKER_CLASS,
        "worker_connections": WORKER_CONNECTIONS,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": HEAD_TIMEOUT,
        "accesslog": "-" if access_log else None,
        "logger_class": "jobwatch.server.accesslog.RedactingLogger",
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "jobwatch",
    }


def announce(what: str) -> Callable[[Any], None]:
    """A ``when_ready`` hook printing the bound HTTP and WebSocket URLs, then ``what``."""

    def when_ready(server: Any) -> None:
        host, port = server.LISTENERS[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(
            f"jobwatch serving on http://{shown}:{port}  (WebSocket ws://{shown}:{port}/ws)\n"
            f"{what}",
            file=sys.stderr,
            flush=True,
        )

    return when_ready


def run(
    host: str,
    port: int,
    config: dict[str, Any],
    *,
    access_log: bool = False,
    workers: int = 1,
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM stop gracefully).

    Parameters
    ----------
    host, port:
        Listen address; ``port=0`` picks a free port (printed at start).
    config:
        Settings for :func:`~jobwatch.server.app.create_app` (``DATABASE``: a
        SQLite path, ``:memory:`` or a SQLAlchemy URL; tokens; origins).
    access_log:
        Log every request to stderr.
    workers:
        Worker processes; above 1 ``config`` must name PostgreSQL and Redis.
    """

    def factory() -> Any:
        from jobwatch.server.app import create_app

        return create_app(config)

    # The master imported ssl (through requests) before the gevent worker
    # patches the standard library; the server makes no TLS calls, so gevent's
    # warning about it is noise for an operator.
    warnings.filterwarnings("ignore", message=".*[Mm]onkey-patching ssl.*", category=Warning)
    options = gunicorn_options(host, port, access_log=access_log, workers=workers)
    auth = "tokens required" if config.get("WRITE_TOKEN") else "no token (open)"
    where = f"database: {redacted(config['DATABASE'])}"
    if config.get("REDIS_URL"):
        channel = config.get("REDIS_CHANNEL", DEFAULT_CHANNEL)
        where += f"; broker: {redacted(config['REDIS_URL'])} channel {channel}"
    options["when_ready"] = announce(f"{where}; {workers} worker(s); {auth}")
    GunicornServer(options, factory).run()
