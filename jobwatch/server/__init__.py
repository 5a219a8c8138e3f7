"""The jobwatch backend: Flask + flask-sock over a SQL store and a broker.

Where things live (flask's ``app.py`` / ``cli.py`` / ``testing.py`` split is the model):

How the server starts
    ``settings.py``  its settings, from ``jobwatch serve``'s flags, ``JOBWATCH_*``
    variables or ``jobwatch.serve()``'s arguments, checked once; ``urls.py`` the
    database and Redis URLs it accepts (and how to print them without secrets);
    ``app.py`` ``create_app``, the Flask app; ``run.py`` serving it (gunicorn with
    gevent workers, one Werkzeug process, or a thread of this process:
    ``EmbeddedServer``, ``jobwatch.serve()``); ``wsgi.py`` the entry point for your
    own gunicorn; ``worker.py`` the gunicorn worker (connection caps, deadlines);
    ``accesslog.py`` its redacting access log; ``process.py`` ``jobwatch serve`` in
    a child process (tests, benchmarks, notebooks).
What a request does
    ``api.py`` the REST blueprint; ``ws.py`` and ``wslock.py`` the WebSocket; ``pages.py`` and
    ``static/`` the web pages; ``openapi.py``, ``prometheus.py``; ``security.py``
    tokens, origins and rate limits; ``quotas.py``.
What a write does
    ``rules.py`` and ``alert_rules.py`` (no I/O); ``store.py``, ``queries.py``,
    ``schema.py``, ``batch.py``, ``sqlexec.py``, ``writer.py`` (group commit);
    ``answers.py`` the answers' shapes; ``wire.py``, ``broker.py`` and
    ``redis_broker.py`` the events to subscribers; ``fleet.py`` the fleet feed;
    ``replay.py`` what a subscriber missed; ``watchdog.py`` stalls; ``webhook.py``
    alerts posted out; ``files.py`` the SQLite file; ``services.py`` what one app
    instance holds.

``create_app`` and ``EmbeddedServer`` are imported on first use, so that the
I/O-free parts (:mod:`jobwatch.server.core.rules`) load without Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobwatch.server.web.app import create_app
    from jobwatch.server.deploy.run import EmbeddedServer

__all__ = ["EmbeddedServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from jobwatch.server.web.app import create_app

        return create_app
    if name == "EmbeddedServer":
        from jobwatch.server.deploy.run import EmbeddedServer

        return EmbeddedServer
    raise AttributeError(f"module 'jobwatch.server' has no attribute {name!r}")
