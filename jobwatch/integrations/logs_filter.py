"""Turn a framework's logs dict into training metrics for a Reporter, leaving out
what the server would refuse instead of raising into training."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jobwatch.contract.basics import SCALAR_NAME_RULE, valid_scalar_name
from jobwatch.report.reporter import Reporter

_log = logging.getLogger("jobwatch.integrations")


class MetricsFilter:
    """Logs training metrics through one :class:`~jobwatch.Reporter`, leaving out
    (with one warning per name) what cannot be a jobwatch metric.

    Frameworks put more than numbers in their logs (a per-class array, a
    string, a name with a space); a callback must never stop training for
    that, so such entries are left out here rather than raising in
    :meth:`Reporter.log_metrics`.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._left_out: set[str] = set()
        self._allowed: set[str] = set()  # names checked already: no pattern match each step

    def numbers(self, logs: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float]:
        """The entries of ``logs`` that are single numbers under allowed names.

        Parameters
        ----------
        logs:
            ``{name: value}`` as the framework gives it; ``None`` is empty.
        prefix:
            Put before each name (``"batch/"``).

        Returns
        -------
        dict
            ``{prefix + name: float}``; NaN and infinity are kept (the Reporter
            leaves them out with its own warning). Entries whose value is not
            one number (``float()`` fails: arrays, strings, booleans) or whose
            name is not allowed are left out, with one warning per name.
        """
        found: dict[str, float] = {}
        allowed = self._allowed
        for key, value in (logs or {}).items():
            name = f"{prefix}{key}"
            if name in self._left_out:
                continue
            number = value if type(value) is float else _number(value)
            if number is None:
                self._leave_out(name, f"its value {value!r:.80} is not one number")
            elif name in allowed:
                found[name] = number
            elif not valid_scalar_name(name):
                self._leave_out(name, f"metric names are {SCALAR_NAME_RULE}")
            else:
                allowed.add(name)
                found[name] = number
        return found

    def log(self, logs: Mapping[str, Any] | None, step: int | None, prefix: str = "") -> None:
        """Log the numbers of ``logs`` (see :meth:`numbers`) at ``step`` (>= 0;
        ``None``: the Reporter's own counter, one past its last step).

        Past the server's limit of names per job, the new names are left out
        (one warning each) and the known ones still logged.
        """
        self.send(self.numbers(logs, prefix), step)

    def send(self, values: dict[str, float], step: int | None) -> None:
        """Log ``values``, the result of :meth:`numbers`, at ``step``, as :meth:`log` does
        (for a caller that needed the numbers itself: they are not filtered twice)."""
        if not values:
            return
        try:
            self.reporter.log_metrics(values, step=step)
        except ValueError:  # a name past the job's limit: keep every name that fits
            for name, value in values.items():
                try:
                    self.reporter.log_metrics({name: value}, step=step)
                except ValueError as exc:
                    self._leave_out(name, str(exc))

    def _leave_out(self, name: str, why: str) -> None:
        self._left_out.add(name)
        _log.warning("jobwatch: training metric %r is left out: %s", name, why)


def _number(value: object) -> float | None:
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
