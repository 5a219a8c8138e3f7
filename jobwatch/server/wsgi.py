"""The wsgi entry point: a documented import path, kept; the code lives in :mod:`jobwatch.server.deploy.wsgi`."""

from jobwatch.server.deploy.wsgi import *  # noqa: F403
from jobwatch.server.deploy.wsgi import __all__ as __all__  # noqa: PLC0414
