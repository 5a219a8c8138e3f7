"""``jobwatch serve`` where gunicorn cannot run: one process on Werkzeug's threaded server.

gunicorn needs ``fork`` and ``fcntl``, so it does not run on Windows, and an
install may lack it. Then ``jobwatch serve`` runs the same app on Werkzeug's
threaded WSGI server, which flask-sock supports (the notebook's embedded server
is the same): every endpoint, the WebSocket, tokens, rate limits, alerts and
``/api/prometheus`` behave alike, and so do the app's limits (1 MiB bodies,
64 KiB WebSocket messages, per-subscriber queues). What differs is the
transport: a thread per connection instead of gevent's greenlets (fine for
tens of watchers, not thousands), one process only, and Python's request-line
limit (64 KiB) instead of gunicorn's 4 KiB.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from jobwatch.server.deployment import redacted

STOP_POLL = 0.5
"""Seconds between checks for a stop request (Ctrl-C on Windows interrupts no wait)."""


class _QuietHandler(WSGIRequestHandler):
    """No access log unless ``--access-log``."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def gunicorn_unavailable() -> str | None:
    """Why gunicorn cannot serve here (``"Windows"``, ``"gunicorn is not installed"``),
    or ``None`` when it can."""
    if sys.platform == "win32":
        return "Windows"
    for module in ("gunicorn.app.base", "gevent"):
        try:
            importlib.import_module(module)
        except ImportError:
            return f"{module.split('.')[0]} is not installed"
    return None


def run(host: str, port: int, config: dict[str, Any], *, access_log: bool, reason: str) -> None:
    """Serve in this process until Ctrl-C or SIGTERM, then close every connection.

    Parameters
    ----------
    host, port:
        Listen address; ``port=0`` picks a free port (printed at start).
    config:
        Settings for :func:`~jobwatch.server.app.create_app`.
    access_log:
        Log every request to stderr.
    reason:
        Why gunicorn is not used (printed once).
    """
    from jobwatch.server.app import create_app

    app = create_app(config)
    handler = WSGIRequestHandler if access_log else _QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="jobwatch-serve", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_port}"
    auth = "tokens required" if config.get("WRITE_TOKEN") else "no token (open)"
    print(
        f"jobwatch: gunicorn unavailable ({reason}); serving in one process on Werkzeug's"
        " threaded server\n"
        f"jobwatch serving on {url}  (WebSocket ws://{shown}:{server.server_port}/ws)\n"
        f"database: {redacted(config['DATABASE'])}; 1 process; {auth}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(STOP_POLL):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        app.extensions["jobwatch"].close()
