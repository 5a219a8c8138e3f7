"""Following the fleet over the WebSocket: ``subscribe:jobs`` on the client side.

:class:`FleetSubscription` is what :meth:`jobwatch.Client.subscribe_jobs`
returns: an iterator of ``JOBS_CHANGED`` messages that reconnects like a job
:class:`~jobwatch.client.subscription.Subscription` and resumes with ``since`` (the
server then resends the jobs changed since a little before it; summaries are
whole states, so a repeat is harmless).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from jobwatch.client.subscription import Backoff, _Resuming
from jobwatch.contract.answers import JobsChanged
from jobwatch.contract.basics import check_status

__all__ = ["FLEET", "FleetSubscription"]

log = logging.getLogger(__name__)

FLEET = "jobs"
"""The ``subscriptionId`` the server gives a fleet subscription."""


class FleetSubscription(_Resuming[JobsChanged]):
    """Iterate over ``JOBS_CHANGED`` messages of every job (or of one status).

    Parameters
    ----------
    ws_url:
        The server's WebSocket URL (``ws://host:port/ws``).
    status:
        Only jobs of this status (one of ``pending``, ``running``,
        ``completed``, ``failed``, ``cancelled``); ``None``: every job. A job
        that leaves that status is sent once more, with its new status.
    since:
        Server time in ms (a ``seq`` of an earlier ``JOBS_CHANGED``): start with
        the jobs changed after it. ``None``: every job first (newest first).
    token, idle_timeout, backoff, on_state:
        As :class:`~jobwatch.client.subscription.Subscription`.

    Iteration yields ``{type: "JOBS_CHANGED", seq (ms), data: {jobs: [summary]}}``
    (docs/api.md "The fleet") until :meth:`close`.

    Raises
    ------
    ValueError
        ``status`` or ``since`` is not allowed.
    jobwatch.errors.ValidationError
        From iteration, if the server refuses the subscription.
    """

    def __init__(
        self,
        ws_url: str,
        *,
        status: str | None = None,
        since: int | None = None,
        token: str | None = None,
        idle_timeout: float = 60.0,
        backoff: Backoff | None = None,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.status = check_status(status)
        super().__init__(
            ws_url,
            FLEET,
            since=since,
            token=token,
            idle_timeout=idle_timeout,
            backoff=backoff,
            on_state=on_state,
        )
        self._answered = 0  # the seq of this connection's "subscribed"

    def _request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"type": "subscribe:jobs"}
        if self.status is not None:
            request["status"] = self.status
        if self.last_seq is not None:
            request["since"] = self.last_seq
        return request

    def _subscribed(self, answer: dict[str, Any]) -> None:
        # The first pages (every job, or those changed since) carry the answer's
        # seq. Resuming from it is safe only once they have all arrived, which
        # a later tick (a larger seq) shows; until then a reconnection asks for
        # the same pages again.
        seq = answer.get("seq")
        self._answered = seq if isinstance(seq, int) else 0

    def _accept(self, message: dict[str, Any]) -> JobsChanged | None:
        seq = message.get("seq")
        if message.get("type") != "JOBS_CHANGED" or not isinstance(seq, int):
            return None
        if seq > self._answered:
            self.last_seq = max(seq, self.last_seq or 0)
        return cast(JobsChanged, message)
