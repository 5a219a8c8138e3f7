"""How the server runs: under gunicorn, in one foreground process, or in a
background thread of this process.

- :func:`run_gunicorn` is ``jobwatch serve``: gunicorn with gevent workers.
  Why gevent: every WebSocket subscriber holds its connection open for hours,
  and gunicorn's own guidance is to serve long-lived connections with an async
  worker. Under gevent each connection's reader and sender are greenlets, so
  thousands of idle subscribers cost little memory, while the code stays
  ordinary threading code (the same code runs threaded in a notebook). One
  worker process by default: the embedded store has one writer and the
  in-process broker reaches only its own process's subscribers. Several worker
  processes (``--workers N``) share a PostgreSQL database and a Redis broker
  instead.
- :func:`run_single` is ``jobwatch serve`` where gunicorn cannot run
  (:func:`gunicorn_unavailable`: it needs ``fork`` and ``fcntl``, so not on
  Windows, and an install may lack it): the same app on Werkzeug's threaded
  WSGI server, which flask-sock supports. Every endpoint, the WebSocket,
  tokens, rate limits, alerts and ``/api/prometheus`` behave alike, and so do
  the app's limits (1 MiB bodies, 64 KiB WebSocket messages, per-subscriber
  queues). What differs is the transport: a thread per connection instead of
  gevent's greenlets (fine for tens of watchers, not thousands), one process
  only, and Python's request-line limit (64 KiB) instead of gunicorn's 4 KiB.
- :class:`EmbeddedServer` and :func:`serve` (``jobwatch.serve()``) run that
  Werkzeug server in a background thread of this process (notebooks, tests).

Each takes ``create_app`` settings, built by :mod:`jobwatch.server.deploy.settings`.
"""

from __future__ import annotations

import errno
import importlib
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from jobwatch.server.core.redact import line_without_queries, redacted
from jobwatch.server.deploy.settings import ARGUMENT_NAMES, ServerSettings, exposure_problem
from jobwatch.server.events.broker import DEFAULT_CHANNEL
from jobwatch.server.web.app import create_app
from jobwatch.server.web.services import Services

WORKER_CLASS = "jobwatch.server.deploy.gunicorn_worker.GuardedGeventWorker"
"""gunicorn's gevent worker with connection caps and request deadlines."""
WORKER_CONNECTIONS = 10_000
"""Most simultaneous connections (HTTP and WebSocket) of a worker; fewer when its
open-files limit allows fewer (see :mod:`jobwatch.server.deploy.gunicorn_worker`)."""
HEAD_TIMEOUT = 15
"""Seconds a connection may take to deliver a complete request head, whether it
is idle between requests or trickling one in (gunicorn's ``keepalive``)."""
STOP_POLL = 0.5
"""Seconds between checks for a stop request (Ctrl-C on Windows interrupts no wait)."""


# -- gunicorn ----------------------------------------------------------------


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


def listen_problem(host: str, port: int) -> str | None:
    """Why ``jobwatch serve`` could not listen on ``host``:``port``, in one line, or ``None``.

    Binds and closes a socket with ``SO_REUSEADDR`` on each address ``host``
    resolves to, as gunicorn and Werkzeug bind theirs, so a port held by another
    listener or a host that is not this machine's is refused before any file or
    process is made (gunicorn itself retries for five seconds and prints its
    errors). ``port=0`` is never a problem.
    """
    if port == 0:
        return None
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on --host {host!r}: {exc.strerror}"
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return (
                        f"{where} is in use by another program: stop it, or pick another"
                        " port with --port (0 picks a free one)"
                    )
                if exc.errno == errno.EACCES:
                    return f"no permission to listen on {where} (ports below 1024 need root)"
                return f"cannot listen on {where}: {exc.strerror}"
    return None


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
        "logger_class": "jobwatch.server.deploy.accesslog.RedactingLogger",
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "jobwatch",
    }


def gunicorn_server(options: dict[str, Any], factory: Callable[[], Any]) -> Any:
    """A gunicorn application with ``options``, loading its WSGI app by calling ``factory()``;
    ``.run()`` serves until a signal stops it.

    The factory runs in the worker process, after gevent has patched the
    standard library, so the app's threads and queues are gevent's. (gunicorn
    is imported here, not with this module: where it is missing the other
    ways to run still load.)
    """
    from gunicorn.app.base import BaseApplication

    class GunicornServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return factory()

    return GunicornServer()


def announce(what: str) -> Callable[[Any], None]:
    """A ``when_ready`` hook printing the bound HTTP and WebSocket URLs, then ``what``."""

    def when_ready(server: Any) -> None:
        host, port = server.LISTENERS[0].getsockname()[:2]
        _print_serving(host, port, what)

    return when_ready


def run_gunicorn(
    host: str,
    port: int,
    config: Mapping[str, Any],
    *,
    access_log: bool = False,
    workers: int = 1,
) -> None:
    """Serve under gunicorn until interrupted (Ctrl-C or SIGTERM stop gracefully).

    Parameters
    ----------
    host, port:
        Listen address; ``port=0`` picks a free port (printed at start).
    config:
        Settings for :func:`~jobwatch.server.web.app.create_app` (``DATABASE``: a
        SQLite path, ``:memory:`` or a SQLAlchemy URL; tokens; origins).
    access_log:
        Log every request to stderr.
    workers:
        Worker processes; above 1 ``config`` must name PostgreSQL and Redis.
    """
    settings = dict(config)

    def factory() -> Any:
        return create_app(settings)

    # The master imported ssl (through requests) before the gevent worker
    # patches the standard library; the server makes no TLS calls, so gevent's
    # warning about it is noise for an operator.
    warnings.filterwarnings("ignore", message=".*[Mm]onkey-patching ssl.*", category=Warning)
    options = gunicorn_options(host, port, access_log=access_log, workers=workers)
    where = f"database: {redacted(settings['DATABASE'])}"
    if settings.get("REDIS_URL"):
        channel = settings.get("REDIS_CHANNEL", DEFAULT_CHANNEL)
        where += f"; broker: {redacted(settings['REDIS_URL'])} channel {channel}"
    options["when_ready"] = announce(f"{where}; {workers} worker(s); {_auth(settings)}")
    gunicorn_server(options, factory).run()


# -- Werkzeug's threaded server ----------------------------------------------


class _RedactingHandler(WSGIRequestHandler):
    """Werkzeug's handler whose log lines (the access log's request line, and an
    error's message quoting a bad request line) never show a query string: a
    browser's WebSocket carries its token in ``?token=``."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Log ``message % args`` with every query string replaced by ``?<redacted>``."""
        super().log(type, "%s", line_without_queries(message % args if args else message))


class _QuietHandler(_RedactingHandler):
    """No access log: in a notebook it would bury the cell's output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _werkzeug_server(app: Any, host: str, port: int, *, access_log: bool) -> BaseWSGIServer:
    handler = _RedactingHandler if access_log else _QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    server.daemon_threads = True  # type: ignore[attr-defined]
    return server


def run_single(
    host: str, port: int, config: Mapping[str, Any], *, access_log: bool, reason: str
) -> None:
    """Serve in this process on Werkzeug's server until Ctrl-C or SIGTERM, then close
    every connection.

    Parameters
    ----------
    host, port:
        Listen address; ``port=0`` picks a free port (printed at start).
    config:
        Settings for :func:`~jobwatch.server.web.app.create_app`.
    access_log:
        Log every request to stderr.
    reason:
        Why gunicorn is not used (printed once).
    """
    app = create_app(config)
    server = _werkzeug_server(app, host, port, access_log=access_log)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="jobwatch-serve", daemon=True)
    thread.start()
    print(
        f"jobwatch: gunicorn unavailable ({reason}); serving in one process on Werkzeug's"
        " threaded server",
        file=sys.stderr,
    )
    _print_serving(
        host,
        server.server_port,
        f"database: {redacted(config['DATABASE'])}; 1 process; {_auth(config)}",
    )
    try:
        while not stop.wait(STOP_POLL):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        app.extensions["jobwatch"].close()


def _print_serving(host: str, port: int, what: str) -> None:
    """The start line ``ServerProcess`` and operators look for, then ``what``."""
    shown = f"[{host}]" if ":" in host else host
    print(
        f"jobwatch serving on http://{shown}:{port}  (WebSocket ws://{shown}:{port}/ws)\n{what}",
        file=sys.stderr,
        flush=True,
    )


def _auth(config: Mapping[str, Any]) -> str:
    return "tokens required" if config.get("WRITE_TOKEN") else "no token (open)"


# -- in a background thread ----------------------------------------------------


class EmbeddedServer:
    """A running jobwatch server inside this process.

    Parameters
    ----------
    host, port:
        Where to listen; ``port=0`` picks a free port.
    config:
        Settings for :func:`~jobwatch.server.web.app.create_app` (``DATABASE``
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
        self._server = _werkzeug_server(self.app, host, port, access_log=False)
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
    port: int = 0,
    db: str = ":memory:",
    host: str = "127.0.0.1",
    token: str | None = None,
    **settings: Any,
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
    settings:
        Any other setting of ``jobwatch serve`` by its field name, as in
        :data:`jobwatch.server.deploy.settings.SETTINGS` (``read_token``,
        ``cors_origins``, ``max_jobs``, ``rate_limit``, ``stall_after``,
        ``alert_rules``, ``webhook_url``...); lists as lists of text. The
        connection caps and deadlines of ``jobwatch serve``'s gunicorn worker
        do not apply here.

    Returns
    -------
    EmbeddedServer
        With ``.url``, ``.ws_url`` and ``.stop()``.

    Raises
    ------
    ValueError
        A non-loopback ``host`` without ``token``, a token that is too short or
        has whitespace at either end, an unsupported ``db`` URL, or a setting
        of the wrong type or out of range (:class:`~jobwatch.errors.SettingsError`,
        a ``ValueError``).
    TypeError
        A keyword that is not a setting.
    """
    global _running
    exposed = exposure_problem(host, token, "; pass token=... (at least 16 characters)")
    if exposed:
        raise ValueError(exposed)
    checked = ServerSettings.from_arguments(db, token=token, **settings).check(names=ARGUMENT_NAMES)
    with _running_lock:
        if _running is None or _running.stopped:
            _running = EmbeddedServer(host, port, config=checked.config())
        return _running
