"""Notebook front-ends: :class:`JobMonitor` and its parts."""

from jobwatch.notebook.monitor import JobMonitor

__all__ = ["JobMonitor"]
