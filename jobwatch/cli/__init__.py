"""The ``jobwatch`` command: :func:`main` is the console script's entry point."""

from jobwatch.cli.main import main

__all__ = ["main"]
