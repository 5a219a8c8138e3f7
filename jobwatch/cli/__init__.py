"""The ``jobwatch`` command: :func:`main` is the console script's entry point."""

from jobwatch.cli.commands import main

__all__ = ["main"]
