"""A server in a child process: a documented import path, kept; the code lives in :mod:`jobwatch.server.deploy.process`."""

from jobwatch.server.deploy.process import *  # noqa: F403
