"""A job's event stream over the WebSocket that survives server restarts.

:class:`Subscription` is what :meth:`jobwatch.Client.subscribe` returns: an
iterator of the contract's events (``JOB_PROGRESS``, ``JOB_LOGS``,
``JOB_COMPLETED``, and the extensions ``JOB_STALLED``, ``JOB_RESUMED``,
``JOB_ALERT``). When the connection drops it reconnects with exponential
backoff and full jitter and resubscribes with ``since`` = the last ``seq`` it
delivered, so no event is lost and none is repeated. An error answer that
says "retry later" (``store_unavailable`` while the server's database is
away, ``server_busy``) is retried the same way, before or after the
``subscribed`` answer; any other error ends the iteration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import websocket

from jobwatch.client.own_io import doing_io
from jobwatch.contract.answers import JobEvent
from jobwatch.contract.backoff import Backoff
from jobwatch.errors import (
    APIError,
    ConnectionError,
    JobwatchError,
    RetryLater,
    error_from_envelope,
)

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

M = TypeVar("M")

__all__ = ["Backoff", "Subscription"]

EVENT_TYPES = frozenset(
    {"JOB_PROGRESS", "JOB_LOGS", "JOB_COMPLETED", "JOB_STALLED", "JOB_RESUMED", "JOB_ALERT"}
)
STATES = ("connecting", "live", "reconnecting", "closed")


class _TryAgain(Exception):
    """The server answered an error that says "retry later"; ``error`` is it."""

    def __init__(self, error: APIError) -> None:
        super().__init__(str(error))
        self.error = error


def _answer_error(message: dict[str, Any]) -> APIError:
    """The :class:`APIError` of an ``error`` message (its HTTP status as the REST
    answer would have it)."""
    error = error_from_envelope(400, {"error": message.get("error")})
    if error.code == "job_not_found":
        error.status = 404
    elif isinstance(error, RetryLater):
        error.status = type(error).status
    return error


class _Resuming(Generic[M]):
    """The WebSocket of :class:`Subscription` and of the fleet's subscription: it
    connects with backoff, subscribes, and on a lost connection reconnects and
    subscribes again from ``last_seq``. Subclasses say what to send
    (:meth:`_request`), what the answer means (:meth:`_subscribed`) and which
    messages to deliver (:meth:`_accept`); their docstrings give the parameters.
    """

    def __init__(
        self,
        ws_url: str,
        job_id: str,
        *,
        since: int | None = None,
        token: str | None = None,
        idle_timeout: float = 60.0,
        backoff: Backoff | None = None,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        if since is not None and (not isinstance(since, int) or since < 0):
            raise ValueError(f"since must be a seq number >= 0 or None, got {since!r}")
        self.ws_url = ws_url
        self.job_id = job_id
        self.last_seq = since
        self.token = token
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff()
        self.on_state = on_state
        self.state = "connecting"
        self.reconnects = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._ws: websocket.WebSocket | None = None
        self._finished = False

    # -- public ---------------------------------------------------------------

    def __iter__(self) -> Iterator[M]:
        return self

    def __next__(self) -> M:
        with doing_io():  # what websocket-client logs meanwhile is not the user's to ship
            return self._next()

    def _next(self) -> M:
        while not self._finished and not self._closed.is_set():
            ws = self._connection()
            if ws is None:
                break
            try:
                raw = ws.recv()
            except (websocket.WebSocketException, OSError) as exc:
                self._drop(f"connection lost: {exc}")
                continue
            except UnicodeDecodeError as exc:  # a broken frame, as websocket-client's check says
                self._drop(f"the server sent text that is not UTF-8: {exc}")
                continue
            if not ws.connected:  # the server closed the connection (recv returned its close frame)
                self._drop("the server closed the connection")
                continue
            message = self._decode(raw)
            if message.get("type") == "error":  # the server dropped the subscription
                error = _answer_error(message)
                if not isinstance(error, RetryLater):
                    self._close_socket()
                    raise error
                self._drop(f"the server cannot serve the stream now ({error})")
                self._closed.wait(self.backoff.next_delay())
                continue
            event = self._accept(message)
            if event is not None:
                return event
        self._set_state("closed")
        self._close_socket()
        raise StopIteration

    def close(self) -> None:
        """Stop iterating (from any thread); a blocked ``next()`` returns at once."""
        self._closed.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            ws.abort()  # type: ignore[no-untyped-call]  # wakes a thread blocked in recv(); that thread closes the socket

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection -----------------------------------------------------------

    def _connection(self) -> websocket.WebSocket | None:
        """The live socket, connecting (with backoff) while needed; ``None`` once closed."""
        while self._ws is None and not self._closed.is_set():
            try:
                self._connect()
            except JobwatchError:
                self._close_socket()
                raise
            except (websocket.WebSocketException, OSError, UnicodeDecodeError, _TryAgain) as exc:
                self._close_socket()
                delay = self.backoff.next_delay()
                log.info(
                    "jobwatch: %s unreachable (%s); retrying in %.1f s", self.ws_url, exc, delay
                )
                self._set_state("reconnecting")
                self._closed.wait(delay)
        return self._ws

    def _connect(self) -> None:
        headers = [f"Authorization: Bearer {self.token}"] if self.token else None
        # skip_utf8_validation: websocket-client checks UTF-8 in pure Python (a sixth
        # of a following notebook kernel's CPU); recv() decodes the text in C, which
        # checks it as well (UnicodeDecodeError, handled in _next).
        ws = websocket.create_connection(
            self.ws_url, timeout=10, header=headers, skip_utf8_validation=True
        )
        with self._lock:
            if self._closed.is_set():
                ws.close()
                return
            self._ws = ws
        ws.send(json.dumps(self._request()))
        while True:
            raw = ws.recv()
            if not ws.connected:  # closed before its answer (recv returned the close frame)
                raise websocket.WebSocketConnectionClosedException(
                    "the server closed the connection before answering the subscription"
                )
            message = self._decode(raw)
            if message.get("type") == "error":
                error = _answer_error(message)
                if isinstance(error, RetryLater):
                    raise _TryAgain(error)
                raise error
            if message.get("type") == "subscribed":
                break
        ws.settimeout(self.idle_timeout)
        self._subscribed(message)
        self.backoff.reset()
        if self.state == "reconnecting":
            self.reconnects += 1
        self._set_state("live")

    def _request(self) -> dict[str, Any]:
        """The subscribe message sent on each connection (with ``since`` on a resume)."""
        raise NotImplementedError

    def _subscribed(self, answer: dict[str, Any]) -> None:
        """Take the ``subscribed`` answer of a connection."""
        raise NotImplementedError

    def _accept(self, message: dict[str, Any]) -> M | None:
        """The message to deliver, or ``None`` (a duplicate, or not for delivery)."""
        raise NotImplementedError

    def _drop(self, why: str) -> None:
        self._close_socket()
        if not self._closed.is_set():
            log.info("jobwatch: %s; reconnecting to %s", why, self.ws_url)
            self._set_state("reconnecting")

    def _close_socket(self) -> None:
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close(timeout=1)

    # -- messages -------------------------------------------------------------

    @staticmethod
    def _decode(raw: Any) -> dict[str, Any]:
        try:
            message = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise ConnectionError(
                f"the server sent a message that is not JSON: {raw!r:.80}"
            ) from exc
        if not isinstance(message, dict):
            raise ConnectionError(f"the server sent a message that is not an object: {raw!r:.80}")
        return message

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                log.exception("jobwatch: on_state callback failed")


class Subscription(_Resuming[JobEvent]):
    """Iterate over one job's events; reconnects and resumes by itself.

    Parameters
    ----------
    ws_url:
        The server's WebSocket URL (``ws://host:port/ws``).
    job_id:
        The job to follow.
    since:
        Deliver events after this ``seq`` (e.g. the ``seq`` of ``/monitor``);
        ``None`` starts with the events after subscribing.
    token:
        Bearer token for the handshake, or ``None``.
    idle_timeout:
        Seconds without any frame (the server pings every 25 s) after which
        the connection is taken as dead and replaced.
    backoff:
        Reconnection policy (default: 0.25 s doubling to 30 s, full jitter).
    on_state:
        Called with ``"connecting"``, ``"live"``, ``"reconnecting"`` or
        ``"closed"`` whenever the state changes (from the iterating thread).

    Iteration yields event dicts ``{type, jobId, seq, data}`` in ``seq`` order
    and stops after ``JOB_COMPLETED`` or :meth:`close`.

    Raises
    ------
    jobwatch.errors.JobNotFound
        From iteration, when the server does not know the job (not retried).
        A ``store_unavailable`` answer (the server's database is away) is
        retried with backoff, like a lost connection.
    """

    _view: dict[str, Any] = {}  # a default: replaced by change_view, never changed in place

    def change_view(
        self, *, log_rank: int | None = None, log_node: str | None = None, progress: str = "all"
    ) -> None:
        """Ask for another view of the job (docs/api.md "Streaming"): only the log lines
        of ``log_rank`` and/or ``log_node``, and with ``progress="changes"`` only the
        progress events that change what a viewer shows. From any thread: on a live
        connection the job is subscribed again at once, from the last ``seq``
        delivered, and the server replays what came since through the new view
        (nothing is missed, nothing delivered twice).

        Raises
        ------
        ValueError
            ``progress`` is neither ``"all"`` nor ``"changes"``.
        """
        if progress not in ("all", "changes"):
            raise ValueError(f"progress must be 'all' or 'changes', got {progress!r}")
        view: dict[str, Any] = {}
        logs = {k: v for k, v in (("rank", log_rank), ("node", log_node)) if v is not None}
        if logs:
            view["logs"] = logs
        if progress != "all":
            view["progress"] = progress
        with self._lock:
            if view == self._view:
                return
            self._view = view
            ws = self._ws
            if ws is None or not ws.connected:
                return  # the next connection asks for it
            request = self._request()
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.send(json.dumps(request))  # a lost connection resubscribes with the view

    def _subscribed(self, answer: dict[str, Any]) -> None:
        """Take the ``subscribed`` answer: a first connection starts after its ``seq``.

        An answer whose ``seq`` is below the one asked for comes from a server that
        never reached it (its database was replaced or restored): it replays the
        job from its start, which is delivered as the job's history from then on.
        """
        seq = int(answer.get("seq", 0))
        if self.last_seq is None:
            self.last_seq = seq
        elif seq < self.last_seq:
            self.last_seq = 0

    def _request(self) -> dict[str, Any]:
        """The subscribe message sent on each connection (with ``since`` on a resume, and
        the view asked for)."""
        request: dict[str, Any] = {"type": "subscribe:job", "subscriptionId": self.job_id}
        if self.last_seq is not None:
            request["since"] = self.last_seq
        request.update(self._view)
        return request

    def _accept(self, message: dict[str, Any]) -> JobEvent | None:
        """The message as an event to deliver, or ``None`` (duplicate or not an event)."""
        if message.get("type") not in EVENT_TYPES or message.get("jobId") != self.job_id:
            return None
        seq = message.get("seq")
        if not isinstance(seq, int):
            return None
        if message["type"] == "JOB_COMPLETED":
            # A finished job sends its completion after every ack, even one
            # whose seq already covers it: that is the end of the stream.
            self._finished = True
        elif self.last_seq is not None and seq <= self.last_seq:
            return None
        self.last_seq = max(seq, self.last_seq or 0)
        return cast(JobEvent, message)
