"""The gunicorn worker of ``jobwatch serve``: gevent, with guards against slow and idle clients.

A gevent worker serves thousands of connections in one process, and so can
be starved by clients that hold connections without finishing a request
(slowloris) or by more idle connections than the process may open files.
:class:`GuardedGeventWorker` adds, before any request reaches the app:

- a cap on connections per client address and in total, answered at once
  with a short JSON refusal (429 ``too_many_connections`` or 503
  ``server_busy``) instead of waiting in the accept queue;
- a deadline for the request head (gunicorn's ``keepalive`` seconds, idle or
  trickling) and one for the body (``JOBWATCH_BODY_TIMEOUT``, 30 s);
  the caps and deadlines are rows of :data:`jobwatch.server.deploy.settings.SETTINGS`;
- the body read whole before the app runs, chunked or not: over
  :data:`~jobwatch.contract.requests.MAX_BODY_BYTES` answers 413;
- at start, the open-files soft limit raised to the hard limit, with a
  warning when even that is low, and glibc's mmap threshold fixed so memory
  freed after a burst goes back to the system; then, every
  :data:`TRIM_INTERVAL` seconds, the heap's free pages given back too.

The total cap leaves :data:`FD_RESERVE` descriptors for the database, Redis
and logs, so ``accept()`` never fails with "Too many open files".
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import resource
import socket
from typing import Any

import gevent
import orjson
from gunicorn.workers.ggevent import GeventWorker

from jobwatch.contract.requests import MAX_BODY_BYTES
from jobwatch.server.deploy.settings import SETTINGS, env_values

log = logging.getLogger(__name__)

WORKER_SETTINGS = tuple(s.name for s in SETTINGS if s.config_key is None)
"""The rows of :data:`~jobwatch.server.deploy.settings.SETTINGS` this class reads from
its ``JOBWATCH_*`` variables (``jobwatch serve`` sets them from its flags)."""

FD_RESERVE = 128
"""File descriptors kept for everything but client connections: the listening
socket, database and Redis pools (10 + 10 overflow each), logs, the WebSocket
machinery's pipes."""
REFUSAL_ROOM = 256
"""Greenlets kept above the total cap, so refusals are answered while full."""
SEND_REFUSAL_TIMEOUT = 2.0
"""Seconds spent writing a refusal to a client before giving up on it."""
LOW_NOFILE = 4096
"""Below this open-files limit the server warns at start."""


def raise_nofile_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit; return the new soft limit.

    Warns (logging, ``jobwatch.server.deploy.gunicorn_worker``) when the result is below
    :data:`LOW_NOFILE`: each connection costs one descriptor, so a low limit
    caps the connections the server can hold. systemd's default is 1,024
    (``LimitNOFILE=`` raises it; see docs/deployment.md).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # some platforms cap the soft limit lower
            pass
    if soft < LOW_NOFILE:
        log.warning(
            "the open-files limit is %d: the server can hold about %d connections; "
            "raise it (ulimit -n, or LimitNOFILE= in a systemd unit) to serve more",
            soft,
            max(0, soft - FD_RESERVE),
        )
    return soft


MMAP_THRESHOLD = 128 * 1024
"""Bytes from which glibc's malloc takes memory straight from the kernel (mmap)."""


def fix_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at :data:`MMAP_THRESHOLD` (its initial value).

    glibc raises the threshold each time a large mmapped block is freed (up to
    32 MiB on 64-bit), after which large buffers (request bodies, JSON answers,
    replayed events) come from the heap, whose freed space is rarely given
    back: the worker would keep its peak size after an attack. Fixed, every
    buffer of 128 KiB or more goes back to the kernel when freed (mallopt(3),
    ``M_MMAP_THRESHOLD``). Returns whether it was set (glibc only).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h

TRIM_INTERVAL = 10.0
"""Seconds between two returns of freed heap memory to the system (:func:`trim_memory`)."""


def trim_memory() -> bool:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim(0)``).

    A burst of many small allocations (thousands of connections' buffers and
    greenlets, a replay's rows) leaves free pages scattered through glibc's
    heap and arenas, which ``free()`` alone does not return while anything
    above them is still in use; ``malloc_trim`` releases them (madvise), so
    the worker's resident size comes back after an attack. It runs in a
    thread, not on the event loop. Returns whether memory was released
    (``False`` also where glibc is absent).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def _trim_forever(interval: float) -> None:
    pool = gevent.get_hub().threadpool
    while True:
        gevent.sleep(interval)
        pool.spawn(trim_memory).get()


class ConnectionGuard:
    """Counts open connections per client address and in total (one worker process).

    Parameters
    ----------
    total:
        Most connections at once; more are refused.
    per_address:
        Most connections from one address at once; 0: no cap per address.
    """

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self.open = 0
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> tuple[int, str, str] | None:
        """Count one connection from ``address``; or return the refusal
        ``(status, code, message)`` without counting it."""
        held = self._by_address.get(address, 0)
        if self.per_address and held >= self.per_address:
            return (
                429,
                "too_many_connections",
                f"this address already has {held} connections open, the most allowed; "
                "close some and retry",
            )
        if self.open >= self.total:
            return (
                503,
                "server_busy",
                f"the server holds {self.open} connections, the most it can; retry shortly",
            )
        self.open += 1
        self._by_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
        """Forget one connection from ``address`` that :meth:`admit` counted."""
        self.open -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]


def refusal(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response closing the connection, with the API's error body."""
    body = orjson.dumps({"error": {"code": code, "message": message, "details": []}})
    reason = {408: "Request Timeout", 413: "Content Too Large", 429: "Too Many Requests"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Service Unavailable')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 5\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _send_and_close(sock: Any, response: bytes) -> None:
    """Send ``response``, then read and drop what the client still sends (for at
    most :data:`SEND_REFUSAL_TIMEOUT` seconds), so closing does not reset the
    connection before the client has read the answer."""
    with gevent.Timeout(SEND_REFUSAL_TIMEOUT, False):
        try:
            sock.sendall(response)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass


class GuardedGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with connection caps and request deadlines (see the module doc)."""

    guard: ConnectionGuard
    head_timeout: float
    body_timeout: float

    def init_process(self) -> None:
        """Size the connection caps from the settings and this process's open-files limit."""
        fix_mmap_threshold()
        soft = raise_nofile_limit()
        room = max(1, soft - FD_RESERVE)
        limits = env_values(os.environ, WORKER_SETTINGS)
        total = min(limits["max_connections"] or room, room)
        self.worker_connections = total + REFUSAL_ROOM
        self.guard = ConnectionGuard(total, limits["max_connections_per_address"])
        head_timeout = limits["head_timeout"]
        self.head_timeout = self.cfg.keepalive if head_timeout is None else head_timeout
        self.body_timeout = limits["body_timeout"]
        super().init_process()

    def run(self) -> None:
        """Serve (gunicorn's loop), trimming freed memory every :data:`TRIM_INTERVAL` s."""
        gevent.spawn(_trim_forever, TRIM_INTERVAL)
        super().run()

    def timeout_ctx(self) -> Any:
        """The deadline for the next request head (gunicorn calls it per request)."""
        return gevent.Timeout(self.head_timeout, False)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Serve one connection, or refuse it at once when a cap is reached."""
        address = addr[0] if isinstance(addr, tuple) else str(addr)
        refused = self.guard.admit(address)
        if refused is not None:
            _send_and_close(client, refusal(*refused))
            client.close()
            return
        try:
            super().handle(listener, client, addr)
        finally:
            self.guard.release(address)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        """Read the body whole, within the body deadline and the size limit, then serve."""
        body = b""
        with gevent.Timeout(self.body_timeout, False):
            body = req.body.read(MAX_BODY_BYTES + 1)
            req.body = io.BytesIO(body)
        if not isinstance(req.body, io.BytesIO):
            _send_and_close(
                sock,
                refusal(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {self.body_timeout:g} s",
                ),
            )
            raise StopIteration  # gunicorn ends the connection
        if len(body) > MAX_BODY_BYTES:
            _send_and_close(
                sock,
                refusal(
                    413,
                    "payload_too_large",
                    f"request body is larger than {MAX_BODY_BYTES} bytes (1 MiB)",
                ),
            )
            raise StopIteration
        return super().handle_request(listener_name, req, sock, addr)
