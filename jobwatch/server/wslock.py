"""One writer at a time on a WebSocket's socket.

simple-websocket writes from two threads: our session's sender (every
message) and its own reader thread (pings every ``ping_interval``, pongs and
close answers), each with a bare ``socket.send``. Two frames written at once
can interleave, and ``send`` may write only part of a large frame, which
corrupts the stream (seen: a "cannot decode" text frame when a ping fell
inside a large message blocked on a slow reader). :class:`LockedSocket` makes
every write whole (``sendall``) and one at a time.
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
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        """Write all of ``data`` before any other writer; returns ``len(data)``.

        Raises
        ------
        OSError
            The connection failed (as ``socket.sendall`` raises).
        """
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
