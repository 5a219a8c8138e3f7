"""The digits training of ``jobwatch demo``: a documented import path, kept; the code lives in :mod:`jobwatch.cli.demo`."""

from jobwatch.cli.demo import *  # noqa: F403
