"""Turns for the other requests of this process during a long read.

Under gunicorn's gevent worker every request is a greenlet of one thread, so a
request that reads and encodes for a long time (a Prometheus scrape of large
jobs, a fleet subscription's first pages) holds every other request for that
long. Such work is cut into parts (a job, a page) and calls
:func:`let_others_run` between parts.
"""

from __future__ import annotations

import time

__all__ = ["let_others_run"]


def let_others_run() -> None:
    """Give every other ready request of this process a turn, then return.

    Under gevent ``time.sleep`` is gevent's, and ``sleep(0)`` runs every ready
    greenlet (gevent's documented way to yield); in a threaded server it lets
    other threads take the interpreter lock.
    """
    time.sleep(0)
