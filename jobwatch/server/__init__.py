"""The jobwatch backend: Flask + flask-sock over a SQL store and a broker."""

from jobwatch.server.app import create_app
from jobwatch.server.embedded import EmbeddedServer

__all__ = ["EmbeddedServer", "create_app"]
