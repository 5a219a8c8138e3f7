"""jobwatch: watch machine-learning jobs live from Jupyter.

Public names are listed in ``__all__``; every other module is private and may change.
"""

from typing import TYPE_CHECKING

from jobwatch._version import __version__
from jobwatch.errors import (
    APIError,
    ConnectionError,
    JobFinished,
    JobNotFound,
    JobwatchError,
    MissingExtra,
    ValidationError,
    WorkerMismatch,
)
from jobwatch.report.reporter import Reporter
from jobwatch.track import track

if TYPE_CHECKING:
    from jobwatch.client.rest import Client
    from jobwatch.notebook import JobMonitor
    from jobwatch.notebook.compare import compare
    from jobwatch.notebook.jobs_table import JobsTable
    from jobwatch.server.deploy.run import serve

__all__ = [
    "APIError",
    "Client",
    "ConnectionError",
    "JobFinished",
    "JobMonitor",
    "JobNotFound",
    "JobsTable",
    "JobwatchError",
    "MissingExtra",
    "Reporter",
    "ValidationError",
    "WorkerMismatch",
    "__version__",
    "compare",
    "serve",
    "track",
]


def __getattr__(name: str) -> object:
    # The client, notebook and server parts load on first use (PEP 562): a
    # training script that only reports never imports requests, pydantic,
    # flask, ipywidgets or bqplot at ``import jobwatch``.
    if name == "Client":
        from jobwatch.client.rest import Client

        return Client
    if name == "gpu":  # a submodule, as ``jobwatch.report.gpu.sample()`` in the docs
        import jobwatch.report.gpu

        return jobwatch.report.gpu
    if name == "JobMonitor":
        from jobwatch.notebook import JobMonitor

        return JobMonitor
    if name == "JobsTable":
        from jobwatch.notebook.jobs_table import JobsTable

        return JobsTable
    if name == "compare":
        from jobwatch.extras import require

        require("notebook", "jobwatch.compare()")
        from jobwatch.notebook.compare import compare

        return compare
    if name == "serve":
        from jobwatch.extras import require

        require("server", "jobwatch.serve()")
        from jobwatch.server.deploy.run import serve

        return serve
    raise AttributeError(f"module 'jobwatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the ones loaded on first use included."""
    return sorted(set(globals()) | set(__all__))
