"""Gunicorn settings for serving jobwatch from your own gunicorn (and the container image).

    gunicorn -c server/gunicorn.conf.py 'jobwatch.server.wsgi:app_from_env()'

The app reads its settings from ``JOBWATCH_*`` variables (see
``jobwatch/server/deploy/settings.py``); this file reads two more:

``JOBWATCH_BIND``
    Listen address, ``host:port`` or ``unix:/path`` (default ``0.0.0.0:8765``).
``JOBWATCH_INSECURE``
    ``1`` to serve beyond loopback without ``JOBWATCH_TOKEN`` (a trusted
    network); without it such a bind is refused, as ``jobwatch serve`` does.
``JOBWATCH_WORKERS``
    Worker processes, 1-64. Default: one per CPU this process may run on when
    ``JOBWATCH_REDIS_URL`` is set, else 1. A gevent worker is one thread, so
    one process per core uses the machine; without Redis, processes would not
    see each other's events, so only one may serve.

Gunicorn reads this file in the master before any worker patches the standard
library for gevent, so it imports nothing from jobwatch itself; the values
below therefore mirror ``jobwatch.server.deploy.run.gunicorn_options``;
``tests/server/deploy/test_deployment.py`` checks they stay equal. (Gunicorn loads the worker
and logger classes named below in the master, as ``jobwatch serve`` does.)

The worker caps connections per client address and in total
(``JOBWATCH_MAX_CONNECTIONS_PER_ADDRESS``, default 256, 0 for none: behind
nginx, which limits clients itself, every connection comes from nginx;
``JOBWATCH_MAX_CONNECTIONS``, default what the open-files limit allows).
"""

import os
import sys
import warnings

MAX_WORKERS = 64  # jobwatch.server.deploy.settings.MAX_WORKERS


def _workers() -> int:
    text = os.environ.get("JOBWATCH_WORKERS", "").strip()
    redis_url = os.environ.get("JOBWATCH_REDIS_URL")
    if not text:
        if not redis_url:
            return 1
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return min(cpus, MAX_WORKERS)
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        _refuse(f"JOBWATCH_WORKERS must be a number from 1 to {MAX_WORKERS}, got {text!r}")
    if int(text) > 1 and not redis_url:
        _refuse(
            f"JOBWATCH_WORKERS={text} needs a shared database and broker: set "
            "JOBWATCH_DATABASE_URL=postgresql://... and JOBWATCH_REDIS_URL=redis://..."
        )
    return int(text)


def _refuse(reason: str) -> None:
    # Exit 2 like `jobwatch serve` with bad settings; SystemExit passes through
    # gunicorn's config loader, which would print a traceback for an exception.
    print(f"gunicorn.conf.py: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def when_ready(server):
    """Print where the server listens, in the words of ``jobwatch serve``."""
    where = server.LISTENERS[0].getsockname()
    if isinstance(where, tuple):
        host, port = where[:2]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}"
        print(f"jobwatch serving on {url}  (WebSocket ws{url[4:]}/ws)", file=sys.stderr)
    else:
        print(f"jobwatch serving on unix:{where}", file=sys.stderr)
    auth = "tokens required" if os.environ.get("JOBWATCH_TOKEN") else "no token (open)"
    print(f"{server.cfg.workers} worker(s); {auth}", file=sys.stderr, flush=True)


# The master imports ssl (gunicorn does, for its own TLS support) before the
# gevent worker patches the standard library; the server makes no TLS calls,
# so gevent's warning about it is noise for an operator. Workers inherit the
# filter when they fork.
warnings.filterwarnings("ignore", message=".*[Mm]onkey-patching ssl.*", category=Warning)


def _check_open_bind(address: str) -> None:
    """Refuse a non-loopback bind without a token, like ``jobwatch serve``."""
    if os.environ.get("JOBWATCH_TOKEN") or os.environ.get("JOBWATCH_INSECURE") in ("1", "true"):
        return
    if address.startswith(("unix:", "127.", "localhost:", "[::1]:")):
        return
    _refuse(
        f"refusing to listen on {address} without a token: anyone who can reach it could "
        "write to your jobs. Set JOBWATCH_TOKEN, or JOBWATCH_INSECURE=1 on a trusted network."
    )


bind = [os.environ.get("JOBWATCH_BIND") or "0.0.0.0:8765"]
_check_open_bind(bind[0])
workers = _workers()
# Each worker builds the app after gevent has patched it, so the app's threads
# and queues are gevent's: never preload it in the master.
preload_app = False

# Mirrors jobwatch.server.deploy.run.gunicorn_options (see the module doc).
worker_class = (
    "jobwatch.server.deploy.gunicorn_worker.GuardedGeventWorker"  # gevent, with connection caps
)
worker_connections = 10_000  # most simultaneous HTTP and WebSocket connections per worker
timeout = 60  # seconds a worker may stay silent before the master restarts it
graceful_timeout = 10  # seconds open connections get to finish on SIGTERM
# Seconds a connection may take to send a complete request head, idle or not
# (slow clients); longer than nginx's upstream keepalive_timeout (10 s).
keepalive = 15
accesslog = None  # nginx logs requests; set "-" to log them here too
logger_class = "jobwatch.server.deploy.accesslog.RedactingLogger"  # no query string, no token
errorlog = "-"
loglevel = "warning"
proc_name = "jobwatch"
