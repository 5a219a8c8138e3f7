"""The jobwatch backend: Flask + flask-sock over a SQL store and a broker.

``create_app`` and ``EmbeddedServer`` are imported on first use, so that the
I/O-free parts (:mod:`jobwatch.server.rules`) load without Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobwatch.server.app import create_app
    from jobwatch.server.run import EmbeddedServer

__all__ = ["EmbeddedServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from jobwatch.server.app import create_app

        return create_app
    if name == "EmbeddedServer":
        from jobwatch.server.run import EmbeddedServer

        return EmbeddedServer
    raise AttributeError(f"module 'jobwatch.server' has no attribute {name!r}")
