"""The wire's request types and limits: a documented import path, kept; the code lives in :mod:`jobwatch.contract.requests`."""

from jobwatch.contract.requests import *  # noqa: F403
