"""The fleet followed for a view: a thread reads ``subscribe:jobs`` and keeps a
:class:`~jobwatch.view.fleet.FleetState` current (the notebook's
:class:`~jobwatch.notebook.jobs_table.JobsTable`, ``jobwatch top``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobwatch.view.fleet import FleetState

if TYPE_CHECKING:
    from jobwatch.client.rest import Client

__all__ = ["FleetFollower"]

log = logging.getLogger(__name__)


class FleetFollower:
    """A :class:`~jobwatch.view.fleet.FleetState` kept current by a thread that follows the fleet.

    Parameters
    ----------
    client:
        The server to follow (its URL and token).
    status:
        Follow only jobs of this status (``None``: all).
    on_change:
        Called (from the reading thread, without :attr:`lock`) after each
        message applied and each change of :attr:`connection`; it should only
        wake the view that renders.

    Read :attr:`state` under :attr:`lock`. :attr:`connection` is
    ``"connecting"``, ``"live"``, ``"reconnecting"``, ``"closed"`` or
    ``"offline"`` (the stream stopped on an error, kept in :attr:`error`).

    Raises
    ------
    ValueError
        ``status`` is not a job status.
    """

    def __init__(
        self,
        client: Client,
        status: str | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.state = FleetState(status)
        self.lock = threading.Lock()
        self.connection = "connecting"
        self.error: Exception | None = None
        self._on_change = on_change
        self._subscription = client.subscribe_jobs(status, on_state=self._set_connection)
        self._thread = threading.Thread(target=self._read, name="jobwatch-fleet-read", daemon=True)

    def start(self) -> FleetFollower:
        """Start following; returns ``self``."""
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop following (the socket closes and the thread ends); idempotent."""
        self._subscription.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _read(self) -> None:
        try:
            for message in self._subscription:
                with self.lock:
                    self.state.apply(message)
                self._notify()
        except Exception as exc:  # a refused or broken stream: the view says so
            log.warning("jobwatch: the fleet stream stopped: %s", exc)
            self.error = exc
            self._set_connection("offline")

    def _set_connection(self, state: str) -> None:
        self.connection = state
        self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("jobwatch: a fleet view's on_change failed")
