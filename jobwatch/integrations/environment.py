"""The Reporter behind a framework callback: given, or made from ``JOBWATCH_*``
variables so that a callback needs no arguments (``Trainer(callbacks=[JobwatchCallback])``,
as transformers' ``KubeflowCallback`` is configured from the environment alone).

The Reporter is made when training starts and only on the process that
reports (rank 0), so that the other ranks of a distributed run make no job.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from collections.abc import Mapping
from typing import Any

from jobwatch.contract.basics import valid_job_id
from jobwatch.report.env_defaults import currency_from_env, price_from_env
from jobwatch.report.reporter import Reporter

_log = logging.getLogger("jobwatch.integrations")

ENVIRONMENT = {
    "JOBWATCH_URL": "the server (default http://127.0.0.1:8765)",
    "JOBWATCH_TOKEN": "the bearer token, where the server asks for one",
    "JOBWATCH_JOB": "the job id (default <framework>-<date>-<time>-<6 hex digits>, new each run)",
    "JOBWATCH_JOB_NAME": "the job's display name (default the run's name where the framework has one)",
    "JOBWATCH_PRICE_PER_HOUR": "the machine's price per hour, a number >= 0, for the cost",
    "JOBWATCH_CURRENCY": "the price's currency (default QUBIC)",
}
"""The variables a callback made without a Reporter reads, and what each means
(docs/python.md, "Frameworks", lists them from here)."""


class ReporterSource:
    """Where a callback's :class:`~jobwatch.Reporter` comes from: one given, or
    one made on first use from a job id, options and ``JOBWATCH_*`` variables.

    Parameters
    ----------
    reporter:
        A Reporter to use as it is; a job id; or ``None``: ``$JOBWATCH_JOB``,
        else a new id ``<framework>-<YYYYmmdd-HHMMSS>-<6 hex digits>``.
    options:
        Keyword arguments of :class:`~jobwatch.Reporter` (``capture_output``
        defaults to ``True`` here: what training prints is the job's log); each one left out is
        read from its variable (``price_per_hour`` from
        ``$JOBWATCH_PRICE_PER_HOUR``, ``name`` from ``$JOBWATCH_JOB_NAME``,
        ``currency`` from ``$JOBWATCH_CURRENCY``; ``url`` and ``token`` the
        Reporter reads itself from ``$JOBWATCH_URL`` and ``$JOBWATCH_TOKEN``).
    framework:
        The first part of a made-up job id (``"transformers"``).

    Raises
    ------
    ValueError
        ``reporter`` is neither a Reporter, a job id nor ``None``; options come
        with a Reporter; the job id is not one the server takes; or
        ``$JOBWATCH_PRICE_PER_HOUR`` is not a number >= 0. Checked here, before
        training starts; the other options are checked by the Reporter when it
        is made.
    """

    def __init__(
        self, reporter: Reporter | str | None, options: Mapping[str, Any], framework: str
    ) -> None:
        self._reporter: Reporter | None = None
        if isinstance(reporter, Reporter):
            if options:
                raise ValueError(
                    "options of a new Reporter are given with a Reporter: "
                    f"{', '.join(sorted(options))}; pass a job id instead, or neither"
                )
            self._reporter = reporter
            self.job_id = reporter.job_id
            self._options: dict[str, Any] = {}
            return
        if reporter is not None and not isinstance(reporter, str):
            raise ValueError(f"reporter must be a Reporter, a job id or None, got {reporter!r}")
        job_id = reporter or os.environ.get("JOBWATCH_JOB") or _new_job_id(framework)
        if not valid_job_id(job_id):
            where = "" if reporter else " ($JOBWATCH_JOB)"
            raise ValueError(
                f"job id{where} must be 1-128 letters, digits and . _ : @ -, starting with "
                f"a letter or digit; got {job_id!r}"
            )
        self.job_id = job_id
        self._options = {**_from_environment(), **options}

    @property
    def made(self) -> Reporter | None:
        """The Reporter, once given or made; ``None`` before."""
        return self._reporter

    def get(self, name: str | None = None) -> Reporter:
        """The Reporter, made now on the first call.

        Parameters
        ----------
        name:
            The job's display name where neither an option nor
            ``$JOBWATCH_JOB_NAME`` gives one (the framework's run name).

        Raises
        ------
        ValueError
            An option is invalid (see :class:`~jobwatch.Reporter`).
        """
        if self._reporter is None:
            options = dict(self._options)
            options.setdefault("capture_output", True)  # what training prints is its log
            if name and not options.get("name"):
                options["name"] = name[:1024]
            self._reporter = Reporter(self.job_id, **options)
        return self._reporter


def log_config(reporter: Reporter, config: Mapping[str, Any]) -> None:
    """Report a run's configuration (hyperparameters, training arguments) as the
    job's ``config`` (:meth:`Reporter.update_config`, merged over what it has).

    The one place a configuration leaves an integration. Values JSON cannot
    hold are sent as their ``str()``, NaN and infinities as ``null``; a
    configuration over the 64 KiB limit is left out with a warning (logger
    ``jobwatch.integrations``) rather than raised into training.

    Parameters
    ----------
    reporter:
        The Reporter to send it through.
    config:
        ``{name: value}``; an empty mapping sends nothing.
    """
    if not config:
        return
    plain = json.loads(json.dumps(_plain(config), default=str))
    try:
        reporter.update_config(plain)
    except ValueError as exc:
        _log.warning("jobwatch: the run's configuration is left out: %s", exc)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _from_environment() -> dict[str, Any]:
    options: dict[str, Any] = {}
    price = price_from_env()  # checked here, before training starts
    if price is not None:
        options["price_per_hour"] = price
    if os.environ.get("JOBWATCH_JOB_NAME"):
        options["name"] = os.environ["JOBWATCH_JOB_NAME"]
    currency = currency_from_env()
    if currency is not None:
        options["currency"] = currency
    return options


def _new_job_id(framework: str) -> str:
    return f"{framework}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
