"""How the store talks to PostgreSQL: every wait on the server is bounded.

A PostgreSQL that is frozen (a stopped process, a full host) or cut off
without the connection closing (a partition, a stuck proxy) must not hold a
request: it answers 503 within seconds. Each bound is the driver's own:

- ``connect_timeout`` (libpq): the most a new connection may take, TCP and
  start-up exchange included;
- TCP keepalive (libpq's ``keepalives``, ``keepalives_idle``,
  ``keepalives_interval``, ``keepalives_count``) and ``tcp_user_timeout``: a
  peer that stops acknowledging (a real network partition, a host that died)
  breaks the connection after ``timeout`` seconds plus three probes a second
  apart, instead of the kernel's 15 minutes of retransmissions;
- ``statement_timeout`` (PostgreSQL's ``-c statement_timeout``): a server that
  is up but slow cancels the statement itself (lock waits included);
- SQLAlchemy's ``pool_pre_ping`` and ``pool_timeout``: a pooled connection is
  checked before use, and a request waits that long for a free one;
- the deadline of psycopg's wait functions (their ``timeout`` argument), for
  an answer that never comes while the connection stays open: a stopped
  server's kernel still acknowledges every packet and every keepalive probe,
  so neither TCP nor the server's own ``statement_timeout`` can end that wait.
  psycopg passes no deadline for queries, so :class:`DeadlineConnection` does
  (the statement timeout plus :data:`ANSWER_MARGIN`) and closes the connection
  when it expires; SQLAlchemy then drops it from the pool (a closed
  connection is a disconnect) and the request answers 503.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.connection import _WAIT_INTERVAL

log = logging.getLogger(__name__)

ANSWER_MARGIN = 1.0
"""Seconds past ``statement_timeout`` the process waits for any answer before it
drops the connection, so a live server's own cancellation arrives first."""
KEEPALIVE_INTERVAL = 1
"""Seconds between TCP keepalive probes once the connection has been idle ``timeout`` s."""
KEEPALIVE_COUNT = 3
"""Unanswered keepalive probes after which the kernel breaks the connection."""
WARNING_EVERY = 10.0
"""Seconds between two warnings that PostgreSQL did not answer in time."""

_last_warning = -math.inf


def connect_args(timeout: float | None) -> dict[str, Any]:
    """libpq parameters bounding every wait by ``timeout`` seconds (``None``: no bound,
    for maintenance such as ``jobwatch prune``), for SQLAlchemy's ``connect_args``."""
    if timeout is None:
        return {}
    whole = max(1, math.ceil(timeout))  # libpq takes whole seconds here
    return {
        "connect_timeout": whole,
        "keepalives": 1,
        "keepalives_idle": whole,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": int(timeout * 1000),
    }


def engine_options(timeout: float | None) -> dict[str, Any]:
    """``create_engine`` keyword arguments for PostgreSQL with waits bounded by
    ``timeout`` seconds (see the module doc)."""
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10}
    args = connect_args(timeout)
    if timeout is not None:
        options["pool_timeout"] = timeout
    if args:
        options["connect_args"] = args
    return options


def install_deadline(engine: Any, timeout: float | None) -> None:
    """Make ``engine`` open :class:`DeadlineConnection` objects answering within
    ``timeout`` + :data:`ANSWER_MARGIN` seconds, with PostgreSQL's
    ``statement_timeout`` set to ``timeout`` (``None``: neither)."""
    if timeout is None:
        return
    from sqlalchemy import event

    answer_timeout = timeout + ANSWER_MARGIN
    statement_timeout = f"-c statement_timeout={int(timeout * 1000)}"

    def do_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # Added to the URL's own ``options`` (a search_path, say), not instead of them.
        cparams["options"] = f"{cparams.get('options', '')} {statement_timeout}".strip()
        conn = DeadlineConnection.connect(*cargs, **cparams)
        conn.answer_timeout = answer_timeout
        return conn

    event.listen(engine, "do_connect", do_connect)


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server ends after
    ``answer_timeout`` seconds (``None``: never); then the connection is closed
    and :class:`psycopg.OperationalError` raised."""

    answer_timeout: float | None = None

    def wait(self, gen: Any, interval: float = _WAIT_INTERVAL, timeout: float | None = None) -> Any:
        """psycopg's wait for ``gen``, with :attr:`answer_timeout` as its deadline."""
        deadline = self.answer_timeout if timeout is None else timeout
        try:
            return super().wait(gen, interval=interval, timeout=deadline)
        except pg_errors._WaitTimeout:
            self.pgconn.finish()  # closed: SQLAlchemy treats it as a disconnect
            _warn(deadline)
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {deadline:g} s; connection closed"
            ) from None


def _warn(deadline: float | None) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARNING_EVERY:
        _last_warning = now
        log.warning(
            "PostgreSQL did not answer within %g s (frozen or cut off?); closed the"
            " connection, requests answer 503 until it answers again",
            deadline,
        )
