"""Which extra brings which part of jobwatch, and the one line that says what to install.

The core install (``pip install jobwatch``) reports and watches; the server,
the notebook widgets and the demo come with extras (``pyproject.toml``).
"""

from __future__ import annotations

import importlib.util

from jobwatch.errors import MissingExtra

EXTRAS: dict[str, tuple[str, ...]] = {
    "server": (
        "flask",
        "flask_sock",
        "sqlalchemy",
        "orjson",
        "flask_cors",
        "limits",
        "prometheus_client",
    ),
    "notebook": ("ipywidgets", "anywidget", "bqplot", "numpy"),
    "top": ("textual",),
    "demo": (
        "sklearn",
        "flask",
        "flask_sock",
        "sqlalchemy",
        "orjson",
        "flask_cors",
        "limits",
        "prometheus_client",
    ),
}
"""extra -> the top-level modules jobwatch imports from it."""


def install_hint(extra: str) -> str:
    """``'pip install "jobwatch[extra]"'``."""
    return f'pip install "jobwatch[{extra}]"'


def require(extra: str, what: str) -> None:
    """Check that the modules of ``extra`` are installed, without importing them.

    Parameters
    ----------
    extra:
        A key of :data:`EXTRAS`.
    what:
        What needs them, for the message (``"jobwatch serve"``).

    Raises
    ------
    jobwatch.errors.MissingExtra
        Naming the first missing module and the ``pip install`` that brings it.
    """
    for module in EXTRAS[extra]:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(what, extra, module)
