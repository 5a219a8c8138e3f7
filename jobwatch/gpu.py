"""Gpu sampling: a documented import path, kept; the code lives in :mod:`jobwatch.report.gpu`."""

from jobwatch.report.gpu import *  # noqa: F403
from jobwatch.report.gpu import __all__ as __all__  # noqa: PLC0414
