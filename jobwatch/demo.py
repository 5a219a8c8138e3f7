"""The digits training of ``jobwatch demo``: a documented import path, kept; the code lives in :mod:`jobwatch.cli.demo`."""

from jobwatch.cli.demo import *  # noqa: F403
from jobwatch.cli.demo import __all__ as __all__  # noqa: PLC0414
