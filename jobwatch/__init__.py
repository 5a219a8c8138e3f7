"""jobwatch: watch machine-learning jobs live from Jupyter.

Public names are listed in ``__all__``; every other module is private and may change.
"""

from jobwatch._version import __version__
from jobwatch.client import Client
from jobwatch.errors import (
    APIError,
    ConnectionError,
    JobFinished,
    JobNotFound,
    JobwatchError,
    ValidationError,
    WorkerMismatch,
)
from jobwatch.reporter import Reporter

__all__ = [
    "APIError",
    "Client",
    "ConnectionError",
    "JobFinished",
    "JobNotFound",
    "JobwatchError",
    "Reporter",
    "ValidationError",
    "WorkerMismatch",
    "__version__",
]
