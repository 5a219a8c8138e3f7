"""The one exception tree of jobwatch.

::

    JobwatchError
     +-- APIError(status, code, message, details)      an error answer of the contract
     |    +-- ValidationError        400 validation_error / invalid_json
     |    |    +-- UnsupportedMediaType 415 unsupported_media_type
     |    +-- AuthenticationError    401 unauthorized
     |    |    +-- HostNotAllowed    403 host_not_allowed
     |    |    +-- OriginNotAllowed  403 origin_not_allowed
     |    +-- WorkerMismatch         403 worker_mismatch
     |    +-- Forbidden              403 forbidden
     |    +-- JobNotFound            404 job_not_found
     |    +-- NotFound               404 not_found
     |    +-- MethodNotAllowed       405 method_not_allowed
     |    +-- Conflict               409 job_exists
     |    |    +-- JobFinished       409 job_finished
     |    +-- PayloadTooLarge        413 payload_too_large
     |    +-- UpgradeRequired        426 upgrade_required
     |    +-- TooManySubscriptions   429 too_many_subscriptions
     |    +-- QuotaExceeded          507 quota_exceeded
     |    +-- RetryLater             an answer with ``retry_after`` seconds
     |         +-- RequestTimeout    408 request_timeout
     |         +-- RateLimited       429 rate_limited
     |         +-- TooManyConnections 429 too_many_connections
     |         +-- ServerBusy        503 server_busy
     |         +-- StoreUnavailable  503 store_unavailable
     |         +-- BrokerUnavailable 503 broker_unavailable (also a RuntimeError)
     +-- ConnectionError             the server could not be reached or answered garbage
     +-- MissingExtra                a part of jobwatch needs an extra that is not installed
     +-- SettingsError               a server setting holds a value the server cannot use
     |    +-- UnsafeDatabasePath     the database would live where other users may write
     +-- StoreClosed                 the server's store was closed; the write was not applied

The server raises the :class:`APIError` kinds and turns them into the contract's error envelope
``{"error": {"code", "message", "details"}}``; the client turns an envelope
back into the same class with :func:`error_from_envelope`. Each class declares
its ``code`` (and ``other_codes``, where several codes share one class); the
mapping back is built from those declarations, so a code has exactly one class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "APIError",
    "AuthenticationError",
    "BrokerUnavailable",
    "Conflict",
    "ConnectionError",
    "Forbidden",
    "HostNotAllowed",
    "JobFinished",
    "JobNotFound",
    "JobwatchError",
    "MethodNotAllowed",
    "MissingExtra",
    "NotFound",
    "OriginNotAllowed",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "RetryLater",
    "ServerBusy",
    "SettingsError",
    "StoreClosed",
    "StoreUnavailable",
    "TooManyConnections",
    "TooManySubscriptions",
    "UnsafeDatabasePath",
    "UnsupportedMediaType",
    "UpgradeRequired",
    "ValidationError",
    "WorkerMismatch",
    "error_from_envelope",
]


class JobwatchError(Exception):
    """Root of every exception jobwatch raises on purpose."""


class APIError(JobwatchError):
    """An error answer of the jobwatch HTTP API.

    Parameters
    ----------
    message:
        What was wrong and what is allowed, for a person.
    status:
        HTTP status code (400, 401, 403, 404, 405, 408, 409, 413, 415, 426, 429,
        503 or 507).
    code:
        Machine-readable code, e.g. ``"validation_error"``.
    details:
        For validation errors, one ``{"field": "metrics.gpuUtilization",
        "message": "..."}`` per bad field (JSON path on the wire); else empty.
    headers:
        HTTP headers the answer carries besides the envelope (``Accept-Encoding``
        of a 415 for a content coding, ``Upgrade`` of a 426); the server sends them.
    """

    status: int = 400
    code: str = "bad_request"
    other_codes: ClassVar[tuple[str, ...]] = ()
    """Further codes that this class stands for (its ``code`` is the one it raises by default)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details: list[dict[str, str]] = details or []
        self.headers: dict[str, str] = dict(headers or {})

    def to_envelope(self) -> dict[str, Any]:
        """Return the contract's error body: ``{"error": {code, message, details}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def __str__(self) -> str:
        # a detail the message already says (e.g. "invalid token request: no
        # tenant named 'x'" with that same detail) is said once
        details = [d for d in self.details if d.get("message", "") not in self.message]
        if not details:
            return f"{self.message} ({self.status} {self.code})"
        fields = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return f"{self.message} ({self.status} {self.code}): {fields}"


class ValidationError(APIError):
    """400: the request was malformed or a field was out of range."""

    status = 400
    code = "validation_error"
    other_codes: ClassVar[tuple[str, ...]] = ("invalid_json",)


class UnsupportedMediaType(ValidationError):
    """415: a request body whose ``Content-Type`` is not ``application/json``, or
    that comes in a content coding other than identity (``Content-Encoding:
    gzip``; RFC 9110, section 15.5.16); a :class:`ValidationError`, as every bad
    input is."""

    status = 415
    code = "unsupported_media_type"
    other_codes = ()


class AuthenticationError(APIError):
    """401: a token is required and was missing or wrong; its subclasses are the
    other refusals of who may connect at all."""

    status = 401
    code = "unauthorized"


class HostNotAllowed(AuthenticationError):
    """403: a server without a token was asked under a name other than
    ``localhost``, ``127.0.0.1``, ``[::1]`` or an ``--allowed-host`` (a guard
    against DNS rebinding)."""

    status = 403
    code = "host_not_allowed"


class OriginNotAllowed(AuthenticationError):
    """403: a WebSocket from a browser origin the server does not allow (``--cors-origin``)."""

    status = 403
    code = "origin_not_allowed"


class WorkerMismatch(APIError):
    """403: the job is bound to another worker."""

    status = 403
    code = "worker_mismatch"


class Forbidden(APIError):
    """403: this token may not do this, whatever the job (so nothing about one is told)."""

    status = 403
    code = "forbidden"


class JobNotFound(APIError):
    """404: no job has this id."""

    status = 404
    code = "job_not_found"


class NotFound(APIError):
    """404: no such route."""

    status = 404
    code = "not_found"


class MethodNotAllowed(APIError):
    """405: the route exists but not with this HTTP method."""

    status = 405
    code = "method_not_allowed"


class Conflict(APIError):
    """409: the request conflicts with stored state (e.g. the job id exists)."""

    status = 409
    code = "job_exists"


class JobFinished(Conflict):
    """409: the job has completed, failed or been cancelled; it takes no more updates."""

    code = "job_finished"


class PayloadTooLarge(APIError):
    """413: the request body is over the limit (1 MiB)."""

    status = 413
    code = "payload_too_large"


class UpgradeRequired(APIError):
    """426: ``/ws`` asked without a WebSocket upgrade (a plain ``GET``), or for a
    WebSocket version other than 13; the answer's ``Upgrade: websocket`` header
    says what to ask for (RFC 9110, section 15.5.22; RFC 6455, section 4.2.2)."""

    status = 426
    code = "upgrade_required"


class QuotaExceeded(APIError):
    """507: storing this would pass one of the server's quotas; nothing was stored."""

    status = 507
    code = "quota_exceeded"


class RetryLater(APIError):
    """An answer that says when to try again: ``retry_after`` seconds (the
    ``Retry-After`` header; ``default_retry_after`` when the answer had none)."""

    default_retry_after = 1.0

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class RequestTimeout(RetryLater):
    """408: the request body did not arrive in time (``jobwatch serve``: 30 s);
    the server closed the connection."""

    status = 408
    code = "request_timeout"


class RateLimited(RetryLater):
    """429: too many requests from this worker."""

    status = 429
    code = "rate_limited"


class TooManySubscriptions(APIError):
    """429 (a WebSocket ``error``): this connection already holds the most job
    subscriptions allowed; unsubscribe from one or open another connection.
    Waiting does not help, so it is no :class:`RetryLater`."""

    status = 429
    code = "too_many_subscriptions"


class TooManyConnections(RetryLater):
    """429: this client address already holds the most connections the server
    allows it; the server closed this one at once."""

    status = 429
    code = "too_many_connections"


class ServerBusy(RetryLater):
    """503: the server holds the most connections it can."""

    status = 503
    code = "server_busy"


class StoreUnavailable(RetryLater):
    """503: the server cannot reach its database right now; nothing was written."""

    status = 503
    code = "store_unavailable"
    default_retry_after = 2.0


class BrokerUnavailable(RetryLater, RuntimeError):
    """503: the server's subscription to Redis is down (``/api/ready``); events of
    other server processes reach this one's viewers only through the database."""

    status = 503
    code = "broker_unavailable"
    default_retry_after = 2.0


class ConnectionError(JobwatchError):
    """The server could not be reached, timed out, or answered something that is not the API."""


def _classes_by_code() -> dict[str, type[APIError]]:
    """Each code that an :class:`APIError` subclass declares, to that class.

    Raises
    ------
    TypeError
        Two classes declare the same code.
    """
    by_code: dict[str, type[APIError]] = {}
    pending = list(APIError.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        own = vars(cls)
        declared = ((own["code"],) if "code" in own else ()) + own.get("other_codes", ())
        for code in declared:
            if code in by_code:
                raise TypeError(
                    f"{cls.__name__} and {by_code[code].__name__} both declare {code!r}"
                )
            by_code[code] = cls
    return by_code


_BY_CODE = _classes_by_code()


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (drivers add pages of context), or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_from_envelope(status: int, body: Any, retry_after: float | None = None) -> APIError:
    """Build the matching :class:`APIError` subclass from an error answer.

    Parameters
    ----------
    status:
        The HTTP status of the answer.
    body:
        The decoded JSON body; anything not in the contract's envelope shape
        gives a plain :class:`APIError` with the status as its message.
    retry_after:
        Seconds from a ``Retry-After`` header, for 429 answers.

    Returns
    -------
    APIError
        Never raises.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return APIError(f"HTTP {status} without an error body", status=status, code="http_error")
    code = str(error.get("code", "http_error"))
    message = str(error.get("message", f"HTTP {status}"))
    raw_details = error.get("details")
    details = (
        [d for d in raw_details if isinstance(d, dict)] if isinstance(raw_details, list) else []
    )
    cls = _BY_CODE.get(code, APIError)
    if issubclass(cls, RetryLater):
        return cls(
            message, retry_after=retry_after or 1.0, status=status, code=code, details=details
        )
    return cls(message, status=status, code=code, details=details)


class MissingExtra(JobwatchError, ImportError):
    """A part of jobwatch needs packages of an extra that is not installed.

    Its message is one line naming the ``pip install "jobwatch[extra]"`` to
    run; IPython shows that line alone instead of a traceback.

    Parameters
    ----------
    what:
        What needs it, e.g. ``"jobwatch.serve()"``.
    extra:
        The extra that brings the package, e.g. ``"server"``.
    module:
        The missing top-level module, e.g. ``"flask"``.
    """

    def __init__(self, what: str, extra: str, module: str) -> None:
        super().__init__(
            f'{what} needs {module}, which is not installed: pip install "jobwatch[{extra}]"',
            name=module,
        )
        self.extra = extra

    def _render_traceback_(self) -> list[str]:
        # IPython's hook for exceptions that draw themselves: one line, no traceback.
        return [f"{type(self).__name__}: {self}"]


class SettingsError(JobwatchError, ValueError):
    """A server setting (a ``jobwatch serve`` flag, a ``JOBWATCH_*`` variable or a
    :func:`jobwatch.serve` argument) holds a value the server cannot use; the
    message names the setting as the user gave it and says what is allowed."""


class UnsafeDatabasePath(SettingsError):
    """The database would live in a directory that other users may write to
    (another user could replace the file)."""


class StoreClosed(JobwatchError):
    """The server's store was closed while a write waited; the write was not applied."""
