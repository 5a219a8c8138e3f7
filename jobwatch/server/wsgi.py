"""The wsgi entry point: a documented import path, kept; the code lives in :mod:`jobwatch.server.deploy.wsgi`."""

from jobwatch.server.deploy.wsgi import *  # noqa: F403
