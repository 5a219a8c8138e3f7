"""A server in a child process: a documented import path, kept; the code lives in :mod:`jobwatch.server.deploy.process`."""

from jobwatch.server.deploy.process import *  # noqa: F403
from jobwatch.server.deploy.process import __all__ as __all__  # noqa: PLC0414
