"""One writer at a time on a WebSocket's socket.

simple-websocket writes from two threads: our session's sender (every
message) and its own reader thread (pings every ``ping_interval``, pongs and
close answers), each with a bare ``socket.send``. Two frames written at once
can interleave, and ``send`` may write only part of a large frame, which
corrupts the stream (seen: a "cannot decode" text frame when a ping fell
inside a large message blocked on a slow reader). :class:`LockedSocket` makes
every write whole (``sendall``) and one at a time.

The broker's fan-out writes an event straight to an idle connection with
:meth:`LockedSocket.try_send`, which never waits: what the socket's buffer
cannot take is kept and written before anything else on the connection.
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class LockedSocket:
    """A socket whose ``send`` writes the whole buffer under a lock; everything
    else is the wrapped socket's.

    Parameters
    ----------
    sock:
        The connection's socket (``ws.sock`` of a simple-websocket ``Server``).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # gevent's socket waits for room in the buffer; the OS socket under it does not
        self._raw: socket.socket = getattr(sock, "_sock", sock)
        self._lock = threading.Lock()
        self._pending = b""

    def send(self, data: bytes) -> int:
        """Write all of ``data`` (after any remainder :meth:`try_send` kept) before
        any other writer; returns ``len(data)``.

        Raises
        ------
        OSError
            The connection failed (as ``socket.sendall`` raises).
        """
        with self._lock:
            self._write_pending()
            self._sock.sendall(data)
        return len(data)

    def try_send(self, data: bytes) -> bool | None:
        """Write ``data`` without waiting, as one whole frame.

        Returns ``True`` when all of it went into the socket's buffer, ``False``
        when the buffer took only part: the remainder is kept and written first
        by the next :meth:`send` or :meth:`flush` (the caller must make sure one
        comes), and ``None`` when nothing was written because another write is
        under way, a remainder is still kept, or the connection failed.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._pending:
                return None
            try:
                sent = self._raw.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return None  # the sender meets the same error and ends the connection
            if sent < len(data):
                self._pending = data[sent:]
                return False
            return True
        finally:
            self._lock.release()

    def flush(self) -> None:
        """Write the remainder :meth:`try_send` kept, waiting as long as it takes.

        Raises
        ------
        OSError
            The connection failed.
        """
        with self._lock:
            self._write_pending()

    def pending(self) -> int:
        """Bytes kept by :meth:`try_send` and not written yet."""
        return len(self._pending)

    def _write_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, b""
            self._sock.sendall(pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
