"""The jobwatch backend: Flask + flask-sock over a SQL store and a broker.

Where things live: each folder is a layer, and a layer imports only those below it
(import-linter checks the order, ``pyproject.toml``):

``deploy/``
    how a server starts: its settings (one table, from flags, ``JOBWATCH_*``
    variables or ``jobwatch.serve()``), gunicorn / one process / a notebook
    thread, the WSGI entry point, the gunicorn worker, its redacting access log.
``web/``
    what a request does: ``create_app``, the REST blueprint, ``/ws``, the pages,
    OpenAPI, Prometheus, tokens and rate limits, what one app instance holds.
``events/``
    what happens after a commit: the brokers (in-process, Redis), the fleet
    feed, the stall watchdog, webhooks.
``storage/``
    the SQL store (SQLite or PostgreSQL): schema, group commit, batches,
    roll-ups, reads, replay of what a subscriber missed.
``core/``
    what one write does to a job, without I/O: binding, late updates, time
    remaining and cost, alerts, quotas, the wire encoding of stored rows.

``create_app`` and ``EmbeddedServer`` are imported on first use, so that the
I/O-free parts (:mod:`jobwatch.server.core.rules`) load without Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobwatch.server.deploy.run import EmbeddedServer
    from jobwatch.server.web.app import create_app

__all__ = ["EmbeddedServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from jobwatch.server.web.app import create_app

        return create_app
    if name == "EmbeddedServer":
        from jobwatch.server.deploy.run import EmbeddedServer

        return EmbeddedServer
    raise AttributeError(f"module 'jobwatch.server' has no attribute {name!r}")
