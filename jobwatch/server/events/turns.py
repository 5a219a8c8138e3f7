"""Turns for the other requests of this process during a long read.

Under gunicorn's gevent worker every request is a greenlet of one thread, so a
request that reads and encodes for a long time (a Prometheus scrape of large
jobs, a fleet subscription's first pages) holds every other request for that
long. Such work is cut into parts (a job, a page) and calls
:func:`let_others_run` between parts.
"""

from __future__ import annotations

import time

__all__ = ["TURN", "let_others_run"]

TURN = 0.0001
"""Seconds a long read sleeps between its parts. Positive on purpose: gevent's
``sleep(0)`` runs the greenlets already ready but "can prevent greenlets that are
ready to do I/O from being scheduled" (gevent's ``sleep`` docstring), because the
event loop does not poll for I/O before the sleeper runs again; a request waiting
on its socket then waits for the whole read. A positive sleep waits for a timer,
which the loop runs only after one poll. Measured: a health check behind one
fleet subscription of 1,700 jobs waited 641 ms with ``sleep(0)``."""


def let_others_run() -> None:
    """Give every other request of this process a turn (those waiting on their
    sockets included), then return; about :data:`TURN` seconds when nothing else
    is ready.

    Under gevent ``time.sleep`` is gevent's (see :data:`TURN`); in a threaded
    server it lets other threads take the interpreter lock.
    """
    time.sleep(TURN)
