"""The WSGI entry point for running the server under your own gunicorn.

``gunicorn -c server/gunicorn.conf.py 'jobwatch.server.deploy.wsgi:app_from_env()'``
builds the app in each worker from ``JOBWATCH_*`` environment variables, the
same settings ``jobwatch serve`` takes as flags; the variables are listed in
:mod:`jobwatch.server.deploy.settings`, which reads and checks them.
"""

from __future__ import annotations

from typing import Any

from jobwatch.errors import SettingsError
from jobwatch.server.deploy.settings import config_from_env

__all__ = ["SettingsError", "app_from_env", "config_from_env"]


def app_from_env() -> Any:
    """The Flask app configured by :func:`~jobwatch.server.deploy.settings.config_from_env`
    (a gunicorn ``module:callable()``).

    Raises
    ------
    SettingsError
        A variable holds a value the server cannot use; the message names it.
    """
    from jobwatch.server.web.app import create_app

    return create_app(config_from_env())
