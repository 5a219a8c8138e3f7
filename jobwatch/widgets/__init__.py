"""Notebook front-ends: :class:`JobMonitor` and its parts."""

from jobwatch.widgets.monitor import JobMonitor

__all__ = ["JobMonitor"]
