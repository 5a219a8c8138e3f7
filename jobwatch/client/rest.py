"""Client: the REST API and the WebSocket stream, without knowing HTTP.

Every method returns decoded JSON (camelCase keys, as on the wire), typed by
the dicts of :mod:`jobwatch.contract.answers`, and raises
only :mod:`jobwatch.errors` exceptions: an error answer becomes the matching
:class:`~jobwatch.errors.APIError` subclass, and a network failure
:class:`~jobwatch.errors.ConnectionError`.
"""

from __future__ import annotations

import json

# requests imports netrc inside every request (requests.utils.get_netrc_auth).
# Imported here, it is never first imported by a reporter's sender thread: a
# fork() during that import would leave the module's import lock held in the
# child, whose own sender would then hang on its first request.
import netrc  # noqa: F401
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote, unquote

import requests

from jobwatch.client.fleet_subscription import FleetSubscription
from jobwatch.client.own_io import doing_io
from jobwatch.client.subscription import Subscription
from jobwatch.contract.answers import (
    AlertsPage,
    CostReport,
    Health,
    Job,
    JobList,
    LogsPage,
    Monitor,
    ProgressReply,
    Sample,
    ScalarValue,
    WorkersPage,
)
from jobwatch.contract.basics import check_keys
from jobwatch.errors import ConnectionError, ValidationError, error_from_envelope

__all__ = ["DEFAULT_URL", "Client", "default_url"]

DEFAULT_URL = "http://127.0.0.1:8765"
_JSON_HEADERS = {"Content-Type": "application/json"}


def default_url() -> str:
    """``$JOBWATCH_URL`` if set, else :data:`DEFAULT_URL`."""
    return os.environ.get("JOBWATCH_URL", DEFAULT_URL)


SHARE_MARK = "#share="
"""What a share link carries its token after (``<server>/jobs/<jobId>#share=<token>``)."""


def share_link_parts(link: str) -> tuple[str, str, str] | None:
    """``(server URL, job id, token)`` of a share link such as
    ``https://jw.example/jobs/acme:run-7#share=jws_...``, or ``None`` if ``link``
    is not one (a plain token, for instance)."""
    address, mark, token = link.partition(SHARE_MARK)
    head, jobs, job_path = address.rpartition("/jobs/")
    if not (mark and token and jobs and job_path) or "/" in job_path:
        return None
    if not head.startswith(("http://", "https://")):
        return None
    return head, unquote(job_path), token


class Client:
    """Talks to one jobwatch server.

    Parameters
    ----------
    url:
        Base URL of the server, e.g. ``http://127.0.0.1:8765`` (no ``/api``);
        default the share link's server when ``token`` is one, else
        ``$JOBWATCH_URL`` or ``http://127.0.0.1:8765``.
    token:
        Bearer token sent with every request (the admin's, a tenant's, a
        worker's, or a share link's token or the whole share link); default
        ``$JOBWATCH_TOKEN`` if set.
    timeout:
        Seconds to wait for each HTTP answer (connect and read).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, url: str | None = None, *, token: str | None = None, timeout: float = 10.0
    ) -> None:
        if url is not None and not isinstance(url, str):
            raise ValueError(f"url must be a string (http:// or https://), got {url!r}")
        if token is not None and not isinstance(token, str):
            raise ValueError(f"token must be a string, got {type(token).__name__}")
        shared = share_link_parts(token) if token else None
        if shared is not None:
            url, token = url or shared[0], shared[2]
        self.url = (url or default_url()).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.token = token if token is not None else os.environ.get("JOBWATCH_TOKEN") or None
        self.timeout = timeout
        self._session = requests.Session()
        if self.token:
            self._session.headers["Authorization"] = f"Bearer {self.token}"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL: ``ws://host:port/ws`` (``wss://`` for https)."""
        return "ws" + self.url[len("http") :] + "/ws"

    # -- plumbing -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        json_data: bytes | None = None,
    ) -> Any:
        """Send one request to ``path`` (starting with ``/api``) and return the decoded body.

        ``json_body`` is encoded as JSON; ``json_data`` is a body already encoded
        (UTF-8 JSON bytes, sent as they are: a reporter's composed requests), at
        most one of the two.

        Raises
        ------
        APIError
            The server answered an error (subclass by its ``code``).
        ConnectionError
            The server could not be reached, timed out or answered non-JSON.
        ValueError
            ``json_body`` holds a mapping key that is not a string (JSON would
            write ``1`` as ``"1"``, and two such keys would become one), or both
            ``json_body`` and ``json_data`` were given; nothing is sent.
        """
        if json_body is not None and json_data is not None:
            raise ValueError("give json_body or json_data, not both")
        check_keys(json_body, "the request body")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        headers = None if json_data is None else _JSON_HEADERS
        try:
            with doing_io():  # what urllib3 logs meanwhile is not the user's to ship
                response = self._session.request(
                    method,
                    self.url + path,
                    json=json_body,
                    data=json_data,
                    headers=headers,
                    params=query,
                    timeout=self.timeout,
                )
        except requests.RequestException as exc:
            raise ConnectionError(f"{method} {self.url}{path} failed: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise ConnectionError(
                f"{method} {self.url}{path} answered HTTP {response.status_code} "
                "that is not JSON; is this a jobwatch server?"
            ) from exc
        if response.status_code >= 400:
            raise error_from_envelope(
                response.status_code, body, _retry_after(response.headers.get("Retry-After"))
            )
        return body

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -----------------------------------------------------------------

    def health(self) -> Health:
        """``{"status": "ok", "version": ...}``."""
        return cast(Health, self._dict(self.request("GET", "/api/health")))

    def create_job(
        self,
        *,
        job_id: str | None = None,
        name: str | None = None,
        worker_id: str | None = None,
        price_per_hour: float | None = None,
        currency: str | None = None,
        provider_id: str | None = None,
    ) -> Job:
        """Create a job and return it (the wire job object).

        ``price_per_hour`` is in ``currency`` per hour (default QUBIC).

        Raises
        ------
        jobwatch.errors.Conflict
            ``job_id`` is taken (409).
        """
        body = _job_body(job_id, name, worker_id, price_per_hour, currency, provider_id)
        return cast(Job, self._dict(self.request("POST", "/api/jobs", json_body=body)["job"]))

    def ensure_job(
        self,
        job_id: str,
        *,
        name: str | None = None,
        worker_id: str | None = None,
        price_per_hour: float | None = None,
        currency: str | None = None,
        provider_id: str | None = None,
        world_size: int | None = None,
        budget: float | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Job:
        """Create the job ``job_id`` or update the given fields (idempotent PUT); return it.

        ``world_size`` makes it a distributed job of that many ranks (each rank
        then reports with its ``rank``; docs/api.md "Distributed jobs").
        ``budget`` (>= 0, in the job's currency) is the most it should cost
        (docs/api.md "Budgets").
        ``config`` (a JSON object of at most 64 KiB) replaces the job's config.

        A bound job is changed only with its ``worker_id``, a finished one not
        at all (docs/api.md "Who may change a job"); giving the values it
        already has is no change.

        Raises
        ------
        jobwatch.errors.WorkerMismatch
            The job is bound to another worker, or would be changed without its
            ``worker_id`` (403).
        jobwatch.errors.JobFinished
            The job has finished and the call would change it (409).
        """
        body = _job_body(None, name, worker_id, price_per_hour, currency, provider_id)
        if world_size is not None:
            body["worldSize"] = world_size
        if budget is not None:
            body["budget"] = budget
        if config is not None:
            body["config"] = dict(config)
        answer = self.request("PUT", f"/api/jobs/{_path(job_id)}", json_body=body)
        return cast(Job, self._dict(answer["job"]))

    def get_job(self, job_id: str) -> Job:
        """The job object. Raises :class:`~jobwatch.errors.JobNotFound` (404)."""
        return cast(Job, self._dict(self.request("GET", f"/api/jobs/{_path(job_id)}")["job"]))

    def list_jobs(self, *, status: str | None = None, limit: int = 100, offset: int = 0) -> JobList:
        """``{"jobs", "total", "limit", "offset"}``, newest first; ``limit`` 1-1000."""
        params = {"status": status, "limit": limit, "offset": offset}
        return cast(JobList, self._dict(self.request("GET", "/api/jobs", params=params)))

    def report_progress(
        self,
        job_id: str,
        worker_id: str,
        progress: float,
        operation: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        logs: Sequence[Mapping[str, Any]] | None = None,
        timestamp: str | None = None,
        *,
        update_id: str | None = None,
        scalars: Sequence[Mapping[str, Any]] | None = None,
        alerts: Sequence[Mapping[str, Any]] | None = None,
        resumed_from: float | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        local_rank: int | None = None,
        node: str | None = None,
        node_price_per_hour: float | None = None,
    ) -> ProgressReply:
        """Send one progress update (synchronously) and return the server's reply.

        Parameters
        ----------
        progress:
            Percent done, 0-100.
        operation:
            The current operation, e.g. ``"Training epoch 5/10"``.
        metrics:
            The contract's metrics dict (see :func:`jobwatch.report.gpu.sample`), or ``None``.
        logs:
            Log lines ``{"level": "info"|"warning"|"error", "message": str}``, at most 1000.
        timestamp:
            The worker's ISO 8601 time of this update, used only to order updates.
        update_id:
            1-64 characters, unique per update of this worker: sending the same
            update again (a retry) is then applied once and answered as the first time.
        scalars:
            Training metrics: ``[{"step": int, "values": {name: float}}]``, at most
            1,000 values in all (see :meth:`scalars`).
        alerts:
            ``[{"title": str, "text": str | None, "level": "info"|"warning"|"error"}]``,
            at most 100 (see :meth:`alerts`).
        resumed_from:
            Percent, 0-100: this worker started part-way, at this progress (a run
            resumed from a checkpoint). Above 0 the job's time remaining waits
            until progress moves (docs/api.md "Estimates").
        rank, world_size, local_rank, node, node_price_per_hour:
            This worker's place in a distributed job (``rank`` and ``world_size``
            together), its node's name and the node's own price per hour
            (docs/api.md "Distributed jobs"); ``None``: not sent.

        Returns
        -------
        ``{success, jobId, status, progress, timeRemaining (s), costSoFar, currency, seq}``.
        """
        body: dict[str, Any] = {"workerId": worker_id, "progress": progress}
        if operation is not None:
            body["currentOperation"] = operation
        if metrics is not None:
            body["metrics"] = dict(metrics)
        if logs:
            body["logLines"] = [dict(line) for line in logs]
        if timestamp is not None:
            body["timestamp"] = timestamp
        if update_id is not None:
            body["updateId"] = update_id
        if scalars:
            body["scalars"] = [dict(point) for point in scalars]
        if alerts:
            body["alerts"] = [dict(alert) for alert in alerts]
        if resumed_from is not None:
            body["resumedFrom"] = resumed_from
        for name, value in (
            ("rank", rank),
            ("worldSize", world_size),
            ("localRank", local_rank),
            ("node", node),
            ("nodePricePerHour", node_price_per_hour),
        ):
            if value is not None:
                body[name] = value
        return cast(
            ProgressReply,
            self._dict(self.request("POST", f"/api/jobs/{_path(job_id)}/progress", json_body=body)),
        )

    def complete_job(
        self,
        job_id: str,
        worker_id: str,
        status: str = "completed",
        result: Any = None,
        error: str | None = None,
    ) -> Job:
        """Finish a job as ``completed``, ``failed`` or ``cancelled``; return the job.

        ``result`` is any JSON value; ``error`` a message for failures.

        Raises
        ------
        jobwatch.errors.JobFinished
            The job had already finished (409).
        """
        body: dict[str, Any] = {"workerId": worker_id, "status": status}
        if result is not None:
            body["result"] = result
        if error is not None:
            body["error"] = error
        answer = self.request("POST", f"/api/jobs/{_path(job_id)}/complete", json_body=body)
        return cast(Job, self._dict(answer["job"]))

    # -- reading --------------------------------------------------------------

    def monitor(self, job_id: str) -> Monitor:
        """``{job, metrics: {latest, history}, logs, timeRemaining, costSoFar,
        estimatedTotalCost, currency, seq}`` (history: last 60 s; logs: last 100)."""
        return cast(Monitor, self._dict(self.request("GET", f"/api/jobs/{_path(job_id)}/monitor")))

    def metrics(
        self, job_id: str, time_range: float = 60, max_points: int | None = None
    ) -> list[Sample]:
        """Samples of the last ``time_range`` seconds, oldest first, at most
        ``max_points`` (2-10,000) when given."""
        params = {"timeRange": time_range, "maxPoints": max_points}
        body = self.request("GET", f"/api/jobs/{_path(job_id)}/metrics", params=params)
        return list(body["metrics"])

    def scalars(
        self,
        job_id: str,
        names: Sequence[str] | None = None,
        time_range: float | None = None,
        max_points: int | None = None,
    ) -> dict[str, list[ScalarValue]]:
        """Training metrics (from :meth:`jobwatch.Reporter.log_metrics`) by name.

        Parameters
        ----------
        names:
            The metric names to read (at most 100); default all of the job's.
        time_range:
            Seconds back from now (or from the job's end once finished); default
            the whole job.
        max_points:
            Most points per name (2-10,000); a longer series is downsampled with
            each span's minimum and maximum kept.

        Returns
        -------
        ``{name: [{"step": int, "timestamp": str, "value": float}]}``, oldest first.

        Raises
        ------
        ValidationError
            A name outside the allowed characters, or a bad range (400).
        JobNotFound
            No such job (404).
        """
        params = {
            "names": None if names is None else ",".join(names),
            "timeRange": time_range,
            "maxPoints": max_points,
        }
        body = self.request("GET", f"/api/jobs/{_path(job_id)}/scalars", params=params)
        return dict(body["scalars"])

    def share_job(
        self, job_id: str, expires_in: float | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """Share a job read-only: ``{share, secret, url}``. ``url`` opens the job's page
        and ``secret`` reads its API and stream (pass it as ``token=`` to a
        :class:`Client`, :class:`~jobwatch.JobMonitor` or ``jobwatch watch``) until
        ``expires_in`` seconds pass (default a week, at most a year) or it is revoked.
        Needs the job's tenant write token (or the admin token).

        Raises
        ------
        APIError
            404 for a job this token cannot see, 403 ``forbidden`` for a read token.
        """
        body: dict[str, Any] = {}
        if expires_in is not None:
            body["expiresIn"] = expires_in
        if label is not None:
            body["label"] = label
        return self._dict(self.request("POST", f"/api/jobs/{_path(job_id)}/shares", json_body=body))

    def alerts(self, job_id: str, limit: int = 100, offset: int = 0) -> AlertsPage:
        """``{jobId, alerts: [{seq, timestamp, level, title, text, source}], total, limit,
        offset}``: the job's alerts oldest first (``source``: worker, rule, failed or
        stalled), ``limit`` 1-1000 from ``offset``.

        Raises
        ------
        JobNotFound
            No such job (404).
        """
        params = {"limit": limit, "offset": offset}
        answer = self.request("GET", f"/api/jobs/{_path(job_id)}/alerts", params=params)
        return cast(AlertsPage, self._dict(answer))

    def costs(self, since: str = "7d", by: str | None = None, tz: str = "UTC") -> CostReport:
        """Spend per day and per group over the jobs this client's token may read
        (``GET /api/costs``): ``since`` ``"<N>d"`` or ``"YYYY-MM-DD"``, ``by``
        ``"provider"``, ``"tenant"``, ``"name"`` or ``None``, ``tz`` the zone whose
        midnights cut the days (docs/api.md "Spend across jobs").

        Raises
        ------
        ValidationError
            A bad ``since``, ``by`` or ``tz`` (400; its details say what is allowed).
        Forbidden
            A worker or share token (403).
        """
        params = {"since": since, "by": by, "tz": tz}
        return cast(CostReport, self._dict(self.request("GET", "/api/costs", params=params)))

    def logs(
        self,
        job_id: str,
        level: str | None = None,
        limit: int = 100,
        offset: int = 0,
        before_id: int | None = None,
        *,
        rank: int | None = None,
        node: str | None = None,
    ) -> LogsPage:
        """``{jobId, logs, total, limit, offset}``: log lines oldest first, one
        ``level`` (info, warning, error) or all, ``limit`` 1-1000 from ``offset``;
        with ``before_id``, the ``limit`` lines just before that line id; with
        ``rank`` and/or ``node``, only the lines of that rank or node of a
        distributed job (``total`` counts only those)."""
        params = {
            "level": level,
            "limit": limit,
            "offset": offset,
            "beforeId": before_id,
            "rank": rank,
            "node": node,
        }
        answer = self.request("GET", f"/api/jobs/{_path(job_id)}/logs", params=params)
        return cast(LogsPage, self._dict(answer))

    def workers(self, job_id: str) -> WorkersPage:
        """``{jobId, worldSize, workers}``: the job's workers by rank (each ``{workerId,
        node, rank, localRank, status, lastUpdateAt, progress, currentOperation, rate,
        straggler, ...}``); a job of one worker lists that worker (docs/api.md
        "Distributed jobs").

        Raises
        ------
        JobNotFound
            No such job (404).
        """
        answer = self.request("GET", f"/api/jobs/{_path(job_id)}/workers")
        return cast(WorkersPage, self._dict(answer))

    def subscribe(
        self,
        job_id: str,
        since: int | None = None,
        *,
        on_state: Callable[[str], None] | None = None,
        idle_timeout: float = 60.0,
        log_rank: int | None = None,
        log_node: str | None = None,
        progress: str = "all",
    ) -> Subscription:
        """Follow a job's events over the WebSocket.

        Parameters
        ----------
        job_id:
            The job to follow.
        since:
            Deliver what happened after this ``seq`` (take it from
            :meth:`monitor`, so nothing between the two is missed); ``None``:
            events from now on.
        on_state:
            Called with ``"connecting"``, ``"live"``, ``"reconnecting"``, ``"closed"``.
        idle_timeout:
            Seconds of silence (the server pings every 25 s) before the
            connection is replaced.
        log_rank, log_node:
            Only the log lines of this rank and/or node of a distributed job in
            ``JOB_LOGS`` (the server leaves out the others, and an event left
            without a line); change them later with :meth:`Subscription.change_view`.
        progress:
            ``"changes"``: only the ``JOB_PROGRESS`` events that carry a GPU sample
            or training metrics, change the status, progress or operation, or come
            a second after the last one (a distributed job's other ranks repeat
            rank 0's figures); ``"all"`` (default): every one. See docs/api.md
            "Streaming".

        Returns
        -------
        Subscription
            An iterator of event dicts ``{type, jobId, seq, data}`` that
            reconnects with exponential backoff and jitter, resumes with
            ``since`` (no event lost or repeated across a server restart) and
            stops after ``JOB_COMPLETED`` or ``close()``.

        Raises
        ------
        jobwatch.errors.JobNotFound
            While iterating, if the server does not know the job.
        """
        subscription = Subscription(
            self.ws_url,
            job_id,
            since=since,
            token=self.token,
            on_state=on_state,
            idle_timeout=idle_timeout,
        )
        subscription.change_view(log_rank=log_rank, log_node=log_node, progress=progress)
        return subscription

    def subscribe_jobs(
        self,
        status: str | None = None,
        since: int | None = None,
        *,
        on_state: Callable[[str], None] | None = None,
        idle_timeout: float = 60.0,
    ) -> FleetSubscription:
        """Follow every job's summary over the WebSocket (``subscribe:jobs``).

        Parameters
        ----------
        status:
            Only jobs of this status (``pending``, ``running``, ``completed``,
            ``failed``, ``cancelled``); ``None``: all. A job that leaves that
            status is sent once more with its new one.
        since:
            Server time in ms (the ``seq`` of a ``JOBS_CHANGED``): start with the
            jobs changed after it; ``None``: every job first, newest first.
        on_state, idle_timeout:
            As :meth:`subscribe`.

        Returns
        -------
        FleetSubscription
            An iterator of ``{type: "JOBS_CHANGED", seq (ms), data: {jobs:
            [summary]}}`` (summaries as in docs/api.md "The fleet"), each job at
            most 4 times a second; reconnects and resumes with ``since`` by
            itself, until ``close()``.

        Raises
        ------
        ValueError
            ``status`` or ``since`` is not allowed.
        """
        return FleetSubscription(
            self.ws_url,
            status=status,
            since=since,
            token=self.token,
            on_state=on_state,
            idle_timeout=idle_timeout,
        )

    @staticmethod
    def _dict(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ConnectionError(
                f"expected a JSON object from the server, got {json.dumps(value)[:80]}"
            )
        return value


def _path(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id:
        raise ValidationError("job_id must be a non-empty string")
    return quote(job_id, safe="")


def _job_body(
    job_id: str | None,
    name: str | None,
    worker_id: str | None,
    price_per_hour: float | None,
    currency: str | None,
    provider_id: str | None,
) -> dict[str, Any]:
    fields = {
        "id": job_id,
        "name": name,
        "workerId": worker_id,
        "pricePerHour": price_per_hour,
        "currency": currency,
        "providerId": provider_id,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _retry_after(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None
