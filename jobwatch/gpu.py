"""Gpu sampling: a documented import path, kept; the code lives in :mod:`jobwatch.report.gpu`."""

from jobwatch.report.gpu import *  # noqa: F403
