"""The wire's request types and limits: a documented import path, kept; the code lives in :mod:`jobwatch.contract.requests`."""

from jobwatch.contract.requests import *  # noqa: F403
from jobwatch.contract.requests import __all__ as __all__  # noqa: PLC0414
